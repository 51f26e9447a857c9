//! The file `sys/storage/raft/snapshot` hands out, in the layout OpenBao's clients check: a
//! gzip-compressed tar of `meta.json`, `state.bin` (the raft layer's snapshot of every key and
//! value, still encrypted by the barrier), `SHA256SUMS` (of the two), and `SHA256SUMS.sealed`
//! (the sums encrypted by the barrier). `bao operator raft snapshot save` refuses a file without
//! a non-empty `SHA256SUMS.sealed`.

use std::io::{Read, Write};

use kura_logical::{LogicalError, Result};

const BLOCK: usize = 512;

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// The `SHA256SUMS` text of the archive's two data files.
pub(crate) fn sums(meta: &[u8], state: &[u8]) -> String {
    format!(
        "{}  meta.json\n{}  state.bin\n",
        sha256_hex(meta),
        sha256_hex(state)
    )
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    field[..width].copy_from_slice(&text.as_bytes()[text.len() - width..]);
    field[width] = 0;
}

fn tar_entry(out: &mut Vec<u8>, name: &str, data: &[u8], mtime: u64) {
    let mut header = [0u8; BLOCK];
    header[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut header[100..108], 0o600);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], data.len() as u64);
    octal(&mut header[136..148], mtime);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u64 = header.iter().map(|b| *b as u64).sum();
    let text = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(text.as_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// Builds the archive from its four files.
pub(crate) fn build(meta: &[u8], state: &[u8], sums: &[u8], sealed_sums: &[u8]) -> Result<Vec<u8>> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut tar = Vec::with_capacity(state.len() + 8 * BLOCK);
    tar_entry(&mut tar, "meta.json", meta, mtime);
    tar_entry(&mut tar, "state.bin", state, mtime);
    tar_entry(&mut tar, "SHA256SUMS", sums, mtime);
    tar_entry(&mut tar, "SHA256SUMS.sealed", sealed_sums, mtime);
    tar.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar)
        .and_then(|_| gz.finish())
        .map_err(|e| LogicalError::Internal(format!("compressing the snapshot: {e}")))
}

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::bad(format!("invalid snapshot: {}", msg.into()))
}

/// The files of an archive, by name.
pub(crate) fn files(archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(archive)
        .read_to_end(&mut tar)
        .map_err(|e| bad(format!("not a gzip archive: {e}")))?;
    let mut files = Vec::new();
    let mut at = 0;
    while at + BLOCK <= tar.len() {
        let header = &tar[at..at + BLOCK];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&header[..name_end]).into_owned();
        let size_text = String::from_utf8_lossy(&header[124..136]);
        let size = u64::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .map_err(|_| bad("bad tar header"))? as usize;
        let start = at + BLOCK;
        let end = start.checked_add(size).filter(|e| *e <= tar.len());
        let end = end.ok_or_else(|| bad("truncated tar archive"))?;
        files.push((name, tar[start..end].to_vec()));
        at = start + size.div_ceil(BLOCK) * BLOCK;
    }
    Ok(files)
}

/// The raft layer's snapshot inside an archive, after checking it against `SHA256SUMS`. A file
/// that is not an archive is taken as a raft-layer snapshot itself.
pub(crate) fn state_of(data: Vec<u8>) -> Result<Vec<u8>> {
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(data);
    }
    let files = files(&data)?;
    let get = |name: &str| {
        files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| bad(format!("{name} is missing")))
    };
    let (meta, state, listed) = (get("meta.json")?, get("state.bin")?, get("SHA256SUMS")?);
    if sums(meta, state).as_bytes() != listed {
        return Err(bad("the SHA256SUMS do not match the contents"));
    }
    Ok(state.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_round_trip_and_damage() {
        let meta = br#"{"index":7}"#;
        let state: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
        let s = sums(meta, &state);
        let archive = build(meta, &state, s.as_bytes(), b"sealed").unwrap();
        let names: Vec<String> = files(&archive).unwrap().into_iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            ["meta.json", "state.bin", "SHA256SUMS", "SHA256SUMS.sealed"]
        );
        assert_eq!(state_of(archive.clone()).unwrap(), state);
        // A raw raft-layer snapshot passes through.
        assert_eq!(state_of(b"KURASNAP...".to_vec()).unwrap(), b"KURASNAP...");
        // Sums that do not match are refused.
        let wrong = build(meta, &state, b"0000  state.bin\n", b"sealed").unwrap();
        assert!(state_of(wrong).is_err());
        // A truncated archive is refused.
        assert!(state_of(archive[..archive.len() / 2].to_vec()).is_err());
    }
}
