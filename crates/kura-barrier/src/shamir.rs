//! Shamir secret sharing over GF(2^8), share-compatible with Vault / OpenBao.
//!
//! The field is GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b).
//! Every byte of the secret is the constant term of its own random polynomial of degree
//! `threshold - 1`; a share holds the polynomial values (one per secret byte) followed by the
//! share's x-coordinate in its **last** byte. X-coordinates are distinct, non-zero and drawn at
//! random. This is the layout `bao operator init` prints as `unseal_keys_hex`.
//!
//! Field arithmetic is constant time: multiplication is shift-and-xor with masks (no table
//! lookups, no branches on data), inversion is exponentiation to the 254th power.
//!
//! A single share (`parts == 1`, `threshold == 1`) is handled the way OpenBao handles a
//! one-share seal: the share *is* the secret (no x-coordinate byte), and combining one share
//! returns it unchanged. Any other threshold below 2 is rejected, as OpenBao rejects it
//! ("threshold must be greater than one for multiple shares").

use zeroize::{Zeroize, Zeroizing};

/// Errors from [`split`] and [`combine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// The secret to split is empty.
    #[error("cannot split an empty secret")]
    EmptySecret,
    /// `threshold` is larger than `parts`.
    #[error("threshold ({threshold}) cannot be larger than the number of parts ({parts})")]
    ThresholdExceedsParts {
        /// The requested threshold.
        threshold: u8,
        /// The requested number of parts.
        parts: u8,
    },
    /// `threshold` is below 2 while more than one part was requested (or is 0).
    #[error("threshold must be at least 2 when splitting into more than one part")]
    ThresholdTooLow,
    /// No shares were given to [`combine`].
    #[error("at least one share is required")]
    NoShares,
    /// A share is too short to hold a y-value and its x-coordinate.
    #[error("share {index} is too short")]
    ShareTooShort {
        /// Position of the offending share in the input.
        index: usize,
    },
    /// Shares do not all have the same length.
    #[error("share {index} has length {len}, expected {expected}")]
    LengthMismatch {
        /// Position of the offending share in the input.
        index: usize,
        /// Its length.
        len: usize,
        /// The length of the first share.
        expected: usize,
    },
    /// Two shares carry the same x-coordinate (the same share given twice).
    #[error("duplicate share (x-coordinate {0})")]
    DuplicateShare(u8),
    /// A share carries x-coordinate 0, which no valid share has.
    #[error("share {index} has x-coordinate 0")]
    ZeroCoordinate {
        /// Position of the offending share in the input.
        index: usize,
    },
    /// The random number generator failed.
    #[error("random number generator failure")]
    Random,
}

/// Result type of this module.
pub type Result<T> = std::result::Result<T, ShamirError>;

/// Multiplies in GF(2^8) mod 0x11b without branches or table lookups.
#[inline]
fn gf_mul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut b = b;
    let mut acc = 0u8;
    for _ in 0..8 {
        // mask = 0xff when the low bit of b is set, else 0x00.
        acc ^= a & 0u8.wrapping_sub(b & 1);
        // Multiply a by x, reducing by 0x1b when the high bit falls off.
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    acc
}

/// Inverts in GF(2^8) as a^254 (a fixed square-and-multiply chain); the inverse of 0 is 0.
#[inline]
fn gf_inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: a^2 * a^4 * ... * a^128.
    let mut sq = gf_mul(a, a); // a^2
    let mut acc = sq;
    for _ in 0..6 {
        sq = gf_mul(sq, sq); // a^4, a^8, ..., a^128
        acc = gf_mul(acc, sq);
    }
    acc
}

/// Evaluates the polynomial with coefficients `coeffs` (constant term first) at `x` (Horner).
#[inline]
fn eval(coeffs: &[u8], x: u8) -> u8 {
    let mut out = 0u8;
    for &c in coeffs.iter().rev() {
        out = gf_mul(out, x) ^ c;
    }
    out
}

/// Fills `buf` from aws-lc-rs's CSPRNG.
fn random(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| ShamirError::Random)
}

/// Draws `count` distinct random x-coordinates from 1..=255 (a partial Fisher–Yates shuffle).
fn random_coordinates(count: usize) -> Result<Vec<u8>> {
    let mut pool: Vec<u8> = (1..=255u8).collect();
    let mut bytes = [0u8; 64];
    let mut used = bytes.len();
    for i in 0..count {
        let span = (pool.len() - i) as u32; // choose uniformly in i..pool.len()
        let limit = 256 - (256 % span); // reject draws above the largest multiple of span
        let pick = loop {
            if used == bytes.len() {
                random(&mut bytes)?;
                used = 0;
            }
            let b = u32::from(bytes[used]);
            used += 1;
            if b < limit {
                break b % span;
            }
        };
        pool.swap(i, i + pick as usize);
    }
    pool.truncate(count);
    Ok(pool)
}

/// Splits `secret` into `parts` shares, any `threshold` of which recover it.
///
/// Each share is `secret.len() + 1` bytes: the y-values followed by the x-coordinate. With
/// `parts == 1 && threshold == 1` the only share is the secret itself, as in OpenBao.
pub fn split(secret: &[u8], parts: u8, threshold: u8) -> Result<Vec<Vec<u8>>> {
    if threshold > parts {
        return Err(ShamirError::ThresholdExceedsParts { threshold, parts });
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    if parts == 1 && threshold == 1 {
        return Ok(vec![secret.to_vec()]);
    }
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooLow);
    }

    let xs = random_coordinates(usize::from(parts))?;
    let mut shares: Vec<Vec<u8>> = xs
        .iter()
        .map(|&x| {
            let mut share = vec![0u8; secret.len() + 1];
            share[secret.len()] = x;
            share
        })
        .collect();

    let mut coeffs = Zeroizing::new(vec![0u8; usize::from(threshold)]);
    for (idx, &byte) in secret.iter().enumerate() {
        coeffs[0] = byte;
        random(&mut coeffs[1..])?;
        for (share, &x) in shares.iter_mut().zip(&xs) {
            share[idx] = eval(&coeffs, x);
        }
    }
    coeffs.zeroize();
    Ok(shares)
}

/// Recombines shares made by [`split`] (or by Vault / OpenBao) into the secret.
///
/// Exactly as many shares as the threshold are needed; fewer give a meaningless value (which
/// is not detectable here — the caller verifies the result, e.g. by unsealing). One share is
/// returned unchanged (OpenBao's one-share seal, where the share is the key).
pub fn combine(shares: &[&[u8]]) -> Result<Vec<u8>> {
    let first = shares.first().ok_or(ShamirError::NoShares)?;
    if shares.len() == 1 {
        if first.is_empty() {
            return Err(ShamirError::ShareTooShort { index: 0 });
        }
        return Ok(first.to_vec());
    }
    let len = first.len();
    if len < 2 {
        return Err(ShamirError::ShareTooShort { index: 0 });
    }
    let mut xs = Vec::with_capacity(shares.len());
    let mut seen = [false; 256];
    for (index, share) in shares.iter().enumerate() {
        if share.len() != len {
            return Err(ShamirError::LengthMismatch {
                index,
                len: share.len(),
                expected: len,
            });
        }
        // The x-coordinates are public (printed in every share); branching on them is fine.
        let x = share[len - 1];
        if x == 0 {
            return Err(ShamirError::ZeroCoordinate { index });
        }
        if seen[usize::from(x)] {
            return Err(ShamirError::DuplicateShare(x));
        }
        seen[usize::from(x)] = true;
        xs.push(x);
    }

    // Lagrange interpolation at x = 0: secret = sum_i y_i * prod_{j != i} x_j / (x_i - x_j).
    let mut secret = vec![0u8; len - 1];
    for (i, share) in shares.iter().enumerate() {
        let mut basis = 1u8;
        for (j, &xj) in xs.iter().enumerate() {
            if i != j {
                basis = gf_mul(basis, gf_mul(xj, gf_inv(xs[i] ^ xj)));
            }
        }
        for (out, &y) in secret.iter_mut().zip(&share[..len - 1]) {
            *out ^= gf_mul(y, basis);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Schoolbook carry-less multiply then reduce — a branchy reference for tests only.
    fn reference_mul(a: u8, b: u8) -> u8 {
        let mut product: u16 = 0;
        for bit in 0..8 {
            if b & (1 << bit) != 0 {
                product ^= u16::from(a) << bit;
            }
        }
        for bit in (8..16).rev() {
            if product & (1 << bit) != 0 {
                product ^= 0x11b << (bit - 8);
            }
        }
        product as u8
    }

    #[test]
    fn multiplication_matches_reference_exhaustively() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(gf_mul(a, b), reference_mul(a, b), "{a} * {b}");
            }
        }
        // Known AES field facts: {57} * {83} = {c1} (FIPS-197 §4.2).
        assert_eq!(gf_mul(0x57, 0x83), 0xc1);
    }

    #[test]
    fn inverse_is_inverse() {
        assert_eq!(gf_inv(0), 0);
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "inverse of {a}");
        }
        // 3 generates the multiplicative group of this field (order 255).
        let mut p = 1u8;
        for k in 1..=255u32 {
            p = gf_mul(p, 3);
            assert_eq!(p == 1, k == 255, "3^{k}");
        }
    }

    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize == k {
                out.push((0..n).filter(|i| mask & (1 << i) != 0).collect());
            }
        }
        out
    }

    fn combine_subset(shares: &[Vec<u8>], idx: &[usize]) -> Vec<u8> {
        let picked: Vec<&[u8]> = idx.iter().map(|&i| shares[i].as_slice()).collect();
        combine(&picked).expect("combine")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn split_then_combine_every_subset(
            secret in proptest::collection::vec(any::<u8>(), 1..48),
            parts in 2u8..=7,
            threshold_seed in any::<u8>(),
        ) {
            let threshold = 2 + threshold_seed % (parts - 1);
            let shares = split(&secret, parts, threshold).unwrap();
            prop_assert_eq!(shares.len(), usize::from(parts));
            let mut xs: Vec<u8> = shares.iter().map(|s| *s.last().unwrap()).collect();
            prop_assert!(shares.iter().all(|s| s.len() == secret.len() + 1));
            prop_assert!(xs.iter().all(|&x| x != 0));
            xs.sort_unstable();
            xs.dedup();
            prop_assert_eq!(xs.len(), usize::from(parts));

            for k in usize::from(threshold)..=usize::from(parts) {
                for idx in subsets(usize::from(parts), k) {
                    prop_assert_eq!(&combine_subset(&shares, &idx), &secret);
                }
            }
            // Below the threshold the result is unrelated to the secret (for long secrets the
            // chance of an accidental match is negligible).
            if threshold > 2 && secret.len() >= 16 {
                for idx in subsets(usize::from(parts), usize::from(threshold) - 1) {
                    prop_assert_ne!(&combine_subset(&shares, &idx), &secret);
                }
            }
        }
    }

    #[test]
    fn large_share_counts() {
        let secret: Vec<u8> = (0..32u8).collect();
        let shares = split(&secret, 255, 200).unwrap();
        let picked: Vec<&[u8]> = shares
            .iter()
            .rev()
            .take(200)
            .map(|s| s.as_slice())
            .collect();
        assert_eq!(combine(&picked).unwrap(), secret);
        let picked: Vec<&[u8]> = shares.iter().take(199).map(|s| s.as_slice()).collect();
        assert_ne!(combine(&picked).unwrap(), secret);
    }

    #[test]
    fn shares_are_randomised() {
        let secret = [7u8; 32];
        let a = split(&secret, 3, 2).unwrap();
        let b = split(&secret, 3, 2).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn parameter_errors() {
        assert_eq!(split(b"", 3, 2), Err(ShamirError::EmptySecret));
        assert_eq!(
            split(b"s", 2, 3),
            Err(ShamirError::ThresholdExceedsParts {
                threshold: 3,
                parts: 2
            })
        );
        assert_eq!(split(b"s", 3, 1), Err(ShamirError::ThresholdTooLow));
        assert_eq!(split(b"s", 3, 0), Err(ShamirError::ThresholdTooLow));
        assert_eq!(split(b"s", 0, 0), Err(ShamirError::ThresholdTooLow));
    }

    #[test]
    fn single_share_is_the_secret() {
        let secret = [9u8, 8, 7];
        let shares = split(&secret, 1, 1).unwrap();
        assert_eq!(shares, vec![secret.to_vec()]);
        assert_eq!(combine(&[&shares[0]]).unwrap(), secret.to_vec());
    }

    #[test]
    fn combine_errors() {
        assert_eq!(combine(&[]), Err(ShamirError::NoShares));
        assert_eq!(
            combine(&[&[]]),
            Err(ShamirError::ShareTooShort { index: 0 })
        );
        assert_eq!(
            combine(&[&[1], &[2]]),
            Err(ShamirError::ShareTooShort { index: 0 })
        );
        assert_eq!(
            combine(&[&[1, 2, 3], &[1, 4]]),
            Err(ShamirError::LengthMismatch {
                index: 1,
                len: 2,
                expected: 3
            })
        );
        assert_eq!(
            combine(&[&[1, 5], &[2, 5]]),
            Err(ShamirError::DuplicateShare(5))
        );
        assert_eq!(
            combine(&[&[1, 5], &[2, 0]]),
            Err(ShamirError::ZeroCoordinate { index: 1 })
        );
        let shares = split(b"secret", 3, 2).unwrap();
        assert_eq!(
            combine(&[&shares[1], &shares[1]]),
            Err(ShamirError::DuplicateShare(shares[1][6]))
        );
    }

    /// Shares printed by `bao operator init` (OpenBao 2.7.2), frozen in `testdata/`.
    fn openbao_fixture(name: &str) -> (usize, Vec<Vec<u8>>) {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/openbao-2.7.2-unseal-shares.json"))
                .unwrap();
        let set = &doc[name];
        let threshold = set["unseal_threshold"].as_u64().unwrap() as usize;
        let shares = set["unseal_keys_hex"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
            .collect();
        (threshold, shares)
    }

    fn check_openbao_set(name: &str) {
        let (threshold, shares) = openbao_fixture(name);
        let n = shares.len();
        assert!(shares.iter().all(|s| s.len() == 33));
        let mut secrets = Vec::new();
        for k in threshold..=n {
            for idx in subsets(n, k) {
                secrets.push(combine_subset(&shares, &idx));
            }
        }
        let expected = secrets[0].clone();
        assert_eq!(expected.len(), 32);
        assert!(
            secrets.iter().all(|s| *s == expected),
            "{name}: subsets disagree"
        );
        // One share fewer than the threshold recovers something else.
        if threshold > 2 {
            for idx in subsets(n, threshold - 1) {
                assert_ne!(combine_subset(&shares, &idx), expected);
            }
        }
        // And re-splitting the recovered key with our split recombines to it.
        let ours = split(&expected, n as u8, threshold as u8).unwrap();
        for idx in subsets(n, threshold) {
            assert_eq!(combine_subset(&ours, &idx), expected);
        }
    }

    #[test]
    fn openbao_five_shares_threshold_three() {
        check_openbao_set("five_of_three");
    }

    #[test]
    fn openbao_four_shares_threshold_two() {
        check_openbao_set("four_of_two");
    }

    #[test]
    fn mixing_shares_of_two_splits_fails_to_recover() {
        let (_, bao) = openbao_fixture("five_of_three");
        let secret = combine_subset(&bao, &[0, 1, 2]);
        // Two genuine shares plus one from an unrelated split do not give the secret.
        let other = split(&[0x42; 32], 3, 3).unwrap();
        let mixed: Vec<&[u8]> = vec![&bao[0], &bao[1], &other[2]];
        match combine(&mixed) {
            Ok(v) => assert_ne!(v, secret),
            Err(ShamirError::DuplicateShare(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}
