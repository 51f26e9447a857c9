//! Tests of the transit backend through its request interface, success and failure paths.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kura_logical::{
    BackendConfig, LogicalBackend, Map, MemoryStorage, MountInfo, Operation, Request, Response,
    SystemView,
};
use serde_json::{json, Value};

use super::TransitBackend;

struct TestSystem;

impl SystemView for TestSystem {
    fn default_lease_ttl(&self) -> Duration {
        Duration::from_secs(768 * 3600)
    }
    fn max_lease_ttl(&self) -> Duration {
        Duration::from_secs(768 * 3600)
    }
    fn is_standby(&self) -> bool {
        false
    }
}

fn backend_over(storage: Arc<MemoryStorage>) -> TransitBackend {
    TransitBackend::new(BackendConfig {
        mount: MountInfo {
            uuid: "00000000-0000-0000-0000-000000000001".into(),
            path: "transit/".into(),
            backend_type: "transit".into(),
            accessor: "transit_00000001".into(),
            options: BTreeMap::new(),
        },
        storage,
        system: Arc::new(TestSystem),
    })
}

fn backend() -> (TransitBackend, Arc<MemoryStorage>) {
    let s = Arc::new(MemoryStorage::new());
    (backend_over(s.clone()), s)
}

fn req(op: Operation, path: &str, body: Value) -> Request {
    let data: Map = match body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut r = Request::new(op, format!("transit/{path}")).with_data(data);
    r.mount_point = "transit/".into();
    r.relative_path = path.into();
    r
}

async fn call(b: &TransitBackend, op: Operation, path: &str, body: Value) -> Option<Response> {
    b.handle(&req(op, path, body)).await.unwrap()
}

async fn write(b: &TransitBackend, path: &str, body: Value) -> Value {
    let r = call(b, Operation::Update, path, body).await.unwrap();
    Value::Object(r.data.unwrap_or_default())
}

async fn err(b: &TransitBackend, path: &str, body: Value) -> (u16, String) {
    let e = b
        .handle(&req(Operation::Update, path, body))
        .await
        .unwrap_err();
    (e.status(), e.to_string())
}

const HELLO: &str = "aGVsbG8="; // "hello"

#[tokio::test]
async fn create_read_list_delete() {
    let (b, _) = backend();
    let created = write(&b, "keys/k1", json!({})).await;
    assert_eq!(created["type"], "aes256-gcm96");
    assert_eq!(created["latest_version"], 1);
    assert_eq!(created["min_decryption_version"], 1);
    assert_eq!(created["supports_encryption"], true);
    assert_eq!(created["supports_signing"], false);
    assert!(created["keys"]["1"].is_i64());
    write(&b, "keys/e1", json!({"type": "ed25519"})).await;
    let read = call(&b, Operation::Read, "keys/e1", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["keys"]["1"]["name"], "ed25519");
    assert_eq!(read["supports_signing"], true);
    assert!(call(&b, Operation::Read, "keys/none", json!({}))
        .await
        .is_none());
    let list = call(&b, Operation::List, "keys/", json!({})).await.unwrap();
    assert_eq!(list.data.unwrap()["keys"], json!(["e1", "k1"]));

    // Deletion needs deletion_allowed.
    let e = b
        .handle(&req(Operation::Delete, "keys/k1", json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("deletion is not allowed"));
    write(&b, "keys/k1/config", json!({"deletion_allowed": true})).await;
    assert!(call(&b, Operation::Delete, "keys/k1", json!({}))
        .await
        .is_none());
    assert!(call(&b, Operation::Read, "keys/k1", json!({}))
        .await
        .is_none());
    let e = b
        .handle(&req(Operation::Delete, "keys/k1", json!({})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not found"));
}

#[tokio::test]
async fn create_validates() {
    let (b, _) = backend();
    assert_eq!(
        err(&b, "keys/x", json!({"type": "kitty"})).await,
        (400, "unknown key type kitty".into())
    );
    let (s, m) = err(&b, "keys/x", json!({"convergent_encryption": true})).await;
    assert_eq!(
        (s, m.as_str()),
        (
            400,
            "convergent encryption requires derivation to be enabled"
        )
    );
    let (s, m) = err(&b, "keys/x", json!({"type": "rsa-2048", "derived": true})).await;
    assert_eq!(s, 400);
    assert!(m.contains("not supported for keys of type rsa-2048"));
    let (_, m) = err(&b, "keys/x", json!({"auto_rotate_period": "10m"})).await;
    assert!(m.contains("at least an hour"));
    let (_, m) = err(&b, "keys/x", json!({"key_size": 8})).await;
    assert!(m.contains("key_size is not valid"));
    write(&b, "keys/t", json!({})).await;
    assert!(err(&b, "keys/t/trim", json!({"min_available_version": 1}))
        .await
        .1
        .contains("minimum encryption version is not set"));
    let cfg = write(&b, "keys/t/config", json!({"allow_plaintext_backup": true})).await;
    assert_eq!(cfg["allow_plaintext_backup"], true);
    let cfg = write(
        &b,
        "keys/t/config",
        json!({"allow_plaintext_backup": false}),
    )
    .await;
    assert_eq!(cfg["allow_plaintext_backup"], true, "cannot be turned off");
    let h = write(&b, "keys/h", json!({"type": "hmac", "key_size": 64})).await;
    assert_eq!(h["key_size"], 64);
    assert!(h.get("keys").is_none());
}

#[tokio::test]
async fn encrypt_decrypt_and_upsert() {
    let (b, _) = backend();
    // Encrypting with an unknown key creates it.
    let out = write(&b, "encrypt/k", json!({"plaintext": HELLO})).await;
    let ct = out["ciphertext"].as_str().unwrap().to_string();
    assert!(ct.starts_with("vault:v1:"));
    assert_eq!(out["key_version"], 1);
    let pt = write(&b, "decrypt/k", json!({"ciphertext": ct})).await;
    assert_eq!(pt["plaintext"], HELLO);

    assert_eq!(
        err(&b, "encrypt/k", json!({})).await.1,
        "missing plaintext to encrypt"
    );
    assert_eq!(
        err(&b, "decrypt/k", json!({})).await.1,
        "missing ciphertext to decrypt"
    );
    assert_eq!(
        err(&b, "decrypt/nokey", json!({"ciphertext": ct})).await.1,
        "encryption key not found"
    );
    // A tampered ciphertext fails authentication.
    let mut raw = crate::util::unb64(&ct["vault:v1:".len()..]).unwrap();
    raw[13] ^= 0x40;
    let tampered = crate::util::versioned(1, &raw);
    assert_eq!(
        err(&b, "decrypt/k", json!({"ciphertext": tampered})).await,
        (400, "cipher: message authentication failed".into())
    );
    assert_eq!(
        err(&b, "decrypt/k", json!({"ciphertext": "garbage"}))
            .await
            .1,
        "invalid ciphertext: no prefix"
    );
    assert_eq!(
        err(&b, "decrypt/k", json!({"ciphertext": "vault:v9:AAAA"}))
            .await
            .1,
        "invalid ciphertext: version is too new"
    );
    assert_eq!(
        err(&b, "encrypt/k", json!({"plaintext": "!!"})).await.1,
        "illegal base64 data at input byte 0"
    );
    // Upsert can be turned off.
    write(&b, "config/keys", json!({"disable_upsert": true})).await;
    assert_eq!(
        err(&b, "encrypt/new", json!({"plaintext": HELLO})).await.1,
        "encryption key not found"
    );
}

#[tokio::test]
async fn every_encryption_type_round_trips() {
    let (b, _) = backend();
    for t in ["aes128-gcm96", "chacha20-poly1305", "rsa-2048"] {
        write(&b, &format!("keys/{t}"), json!({"type": t})).await;
        let ct = write(&b, &format!("encrypt/{t}"), json!({"plaintext": HELLO})).await;
        let pt = write(
            &b,
            &format!("decrypt/{t}"),
            json!({"ciphertext": ct["ciphertext"]}),
        )
        .await;
        assert_eq!(pt["plaintext"], HELLO, "{t}");
    }
    write(&b, "keys/ed", json!({"type": "ed25519"})).await;
    assert_eq!(
        err(&b, "encrypt/ed", json!({"plaintext": HELLO})).await.1,
        "message encryption not supported for key type ed25519"
    );
}

#[tokio::test]
async fn derived_keys_need_the_right_context() {
    let (b, _) = backend();
    write(&b, "keys/d", json!({"derived": true})).await;
    write(
        &b,
        "keys/de",
        json!({"type": "ed25519", "derived": true, "exportable": true}),
    )
    .await;
    let pk = b
        .handle(&req(Operation::Read, "export/public-key/de", json!({})))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        pk["keys"]["1"].as_str().unwrap().len(),
        44,
        "base public key exported"
    );
    let sign = write(&b, "sign/de", json!({"input": HELLO, "context": "YWJj"})).await;
    assert!(sign["public_key"].is_string());
    assert_ne!(sign["public_key"], pk["keys"]["1"]);
    let (_, m) = err(&b, "encrypt/d", json!({"plaintext": HELLO})).await;
    assert!(m.starts_with("missing 'context' for key derivation"));
    let ct = write(
        &b,
        "encrypt/d",
        json!({"plaintext": HELLO, "context": "YWJj"}),
    )
    .await["ciphertext"]
        .clone();
    assert_eq!(
        err(
            &b,
            "decrypt/d",
            json!({"ciphertext": ct, "context": "YWJk"})
        )
        .await
        .1,
        "cipher: message authentication failed"
    );
    let ok = write(
        &b,
        "decrypt/d",
        json!({"ciphertext": ct, "context": "YWJj"}),
    )
    .await;
    assert_eq!(ok["plaintext"], HELLO);
    let read = call(&b, Operation::Read, "keys/d", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["kdf"], "hkdf_sha256");

    // Convergent: same input, same ciphertext.
    write(
        &b,
        "keys/c",
        json!({"derived": true, "convergent_encryption": true}),
    )
    .await;
    let a = write(
        &b,
        "encrypt/c",
        json!({"plaintext": HELLO, "context": "YWJj"}),
    )
    .await;
    let a2 = write(
        &b,
        "encrypt/c",
        json!({"plaintext": HELLO, "context": "YWJj"}),
    )
    .await;
    assert_eq!(a["ciphertext"], a2["ciphertext"]);
    // A key created on first use with a context is derived.
    write(
        &b,
        "encrypt/auto",
        json!({"plaintext": HELLO, "context": "YWJj"}),
    )
    .await;
    let read = call(&b, Operation::Read, "keys/auto", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(read["derived"], true);
}

#[tokio::test]
async fn batches_report_per_item_errors() {
    let (b, _) = backend();
    write(&b, "keys/k", json!({})).await;
    let r = call(
        &b,
        Operation::Update,
        "encrypt/k",
        json!({"batch_input": [
            {"plaintext": HELLO},
            {"plaintext": "!!"},
            {"plaintext": HELLO, "reference": "r3"}
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, Some(400), "a failed item makes the batch 400");
    let results = r.data.unwrap()["batch_results"].clone();
    assert!(results[0]["ciphertext"].is_string());
    assert_eq!(results[1]["error"], "illegal base64 data at input byte 0");
    assert_eq!(results[2]["reference"], "r3");
    let ct = results[0]["ciphertext"].clone();

    let r = call(
        &b,
        Operation::Update,
        "decrypt/k",
        json!({"batch_input": [{"ciphertext": ct}, {"ciphertext": "bad"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, Some(400));
    let results = r.data.unwrap()["batch_results"].clone();
    assert_eq!(results[0]["plaintext"], HELLO);
    assert_eq!(results[1]["error"], "invalid ciphertext: no prefix");

    // All good: no status override.
    let r = call(
        &b,
        Operation::Update,
        "decrypt/k",
        json!({"batch_input": [{"ciphertext": ct}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, None);

    // Sign batches answer 200 with the error inside.
    write(&b, "keys/e", json!({"type": "ed25519"})).await;
    let r = call(
        &b,
        Operation::Update,
        "sign/e",
        json!({"batch_input": [{"input": HELLO}, {"input": "!!"}]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, None);
    let results = r.data.unwrap()["batch_results"].clone();
    assert!(results[0]["signature"].is_string());
    assert!(results[1]["error"].as_str().unwrap().contains("base64"));
}

#[tokio::test]
async fn rotation_min_versions_and_rewrap() {
    let (b, _) = backend();
    write(&b, "keys/k", json!({})).await;
    let old = write(&b, "encrypt/k", json!({"plaintext": HELLO})).await["ciphertext"].clone();
    for _ in 0..3 {
        write(&b, "keys/k/rotate", json!({})).await;
    }
    let rewrapped = write(&b, "rewrap/k", json!({"ciphertext": old})).await;
    assert!(rewrapped["ciphertext"]
        .as_str()
        .unwrap()
        .starts_with("vault:v4:"));
    let cfg = write(
        &b,
        "keys/k/config",
        json!({"min_decryption_version": 2, "min_encryption_version": 3}),
    )
    .await;
    assert_eq!(cfg["min_decryption_version"], 2);
    assert_eq!(
        cfg["keys"].as_object().unwrap().len(),
        3,
        "versions 2..=4 shown"
    );
    // A ciphertext below min_decryption_version is refused.
    assert_eq!(
        err(&b, "decrypt/k", json!({"ciphertext": old})).await.1,
        "ciphertext or signature version is disallowed by policy (too old)"
    );
    assert!(err(
        &b,
        "encrypt/k",
        json!({"plaintext": HELLO, "key_version": 2})
    )
    .await
    .1
    .contains("less than the minimum encryption key version"));
    let v3 = write(
        &b,
        "encrypt/k",
        json!({"plaintext": HELLO, "key_version": 3}),
    )
    .await;
    assert_eq!(v3["key_version"], 3);
    // Config validation.
    assert!(
        err(&b, "keys/k/config", json!({"min_decryption_version": 9}))
            .await
            .1
            .contains("latest key version is 4")
    );
    assert!(
        err(&b, "keys/k/config", json!({"min_encryption_version": 1}))
            .await
            .1
            .contains("must be greater than or equal to min decryption version")
    );
    assert!(err(&b, "keys/zz/config", json!({}))
        .await
        .1
        .contains("no existing key named zz"));
    // Trim.
    assert!(err(&b, "keys/e/trim", json!({"min_available_version": 1}))
        .await
        .1
        .contains("invalid key name"));
    assert!(err(&b, "keys/k/trim", json!({"min_available_version": 3}))
        .await
        .1
        .contains("greater than minimum decryption version"));
    let t = write(&b, "keys/k/trim", json!({"min_available_version": 2})).await;
    assert_eq!(t["min_available_version"], 2);
    assert!(err(&b, "keys/k/trim", json!({"min_available_version": 1}))
        .await
        .1
        .contains("decremented"));
    assert_eq!(
        err(&b, "keys/zz/rotate", json!({})).await.1,
        "key not found"
    );
}

#[tokio::test]
async fn sign_and_verify_every_signing_type() {
    let (b, _) = backend();
    for t in [
        "ed25519",
        "ecdsa-p256",
        "ecdsa-p384",
        "ecdsa-p521",
        "rsa-2048",
    ] {
        write(&b, &format!("keys/{t}"), json!({"type": t})).await;
        for (path, extra) in [
            (format!("sign/{t}"), json!({})),
            (format!("sign/{t}/sha2-512"), json!({})),
            (format!("sign/{t}"), json!({"marshaling_algorithm": "jws"})),
            (
                format!("sign/{t}"),
                json!({"signature_algorithm": "pkcs1v15"}),
            ),
        ] {
            let mut body = json!({"input": HELLO});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let sig = write(&b, &path, body.clone()).await["signature"].clone();
            assert!(sig.as_str().unwrap().starts_with("vault:v1:"), "{path}");
            let vpath = path.replacen("sign/", "verify/", 1);
            body["signature"] = sig.clone();
            assert_eq!(
                write(&b, &vpath, body.clone()).await["valid"],
                true,
                "{vpath} {extra}"
            );
            body["input"] = json!("d29ybGQ=");
            assert_eq!(
                write(&b, &vpath, body).await["valid"],
                false,
                "{vpath} {extra}"
            );
        }
    }
    // Key types that cannot sign.
    write(&b, "keys/aes", json!({})).await;
    assert_eq!(
        err(&b, "sign/aes", json!({"input": HELLO})).await,
        (400, "key type aes256-gcm96 does not support signing".into())
    );
    assert_eq!(
        err(&b, "sign/nokey", json!({"input": HELLO})).await.1,
        "signing key not found"
    );
    assert_eq!(
        err(
            &b,
            "sign/ed25519",
            json!({"input": HELLO, "hash_algorithm": "meow"})
        )
        .await
        .1,
        "invalid hash algorithm \"meow\""
    );
    assert!(err(
        &b,
        "sign/ed25519",
        json!({"input": HELLO, "salt_length": "foobar"})
    )
    .await
    .1
    .contains("neither 'auto', 'hash', nor an int"));
    assert_eq!(
        err(&b, "verify/ed25519", json!({"input": HELLO})).await.1,
        "neither a 'signature' nor an 'hmac' were given to verify"
    );
    assert_eq!(
        err(
            &b,
            "verify/ed25519",
            json!({"input": HELLO, "signature": "vault:v2:AAAA"})
        )
        .await
        .1,
        "invalid signature: version is too new"
    );
    assert!(err(
        &b,
        "sign/ecdsa-p256",
        json!({"input": HELLO, "marshaling_algorithm": "foo"})
    )
    .await
    .1
    .contains("invalid marshaling type"));
}

#[tokio::test]
async fn rsa_salt_lengths() {
    let (b, _) = backend();
    write(&b, "keys/r", json!({"type": "rsa-2048"})).await;
    for salt in ["auto", "hash", "-1", "0", "1", "32"] {
        let sig = write(&b, "sign/r", json!({"input": HELLO, "salt_length": salt})).await
            ["signature"]
            .clone();
        let v = write(
            &b,
            "verify/r",
            json!({"input": HELLO, "signature": sig, "salt_length": salt}),
        )
        .await;
        assert_eq!(v["valid"], true, "salt {salt}");
    }
    assert!(err(
        &b,
        "verify/r",
        json!({"input": HELLO, "signature": "vault:v1:AAAA", "salt_length": "-2"})
    )
    .await
    .1
    .contains("salt length is invalid: -2"));
}

#[tokio::test]
async fn hmac_generate_and_verify() {
    let (b, _) = backend();
    write(&b, "keys/k", json!({})).await;
    let mac = write(&b, "hmac/k", json!({"input": HELLO})).await["hmac"].clone();
    let v = write(&b, "verify/k", json!({"input": HELLO, "hmac": mac})).await;
    assert_eq!(v["valid"], true);
    let v = write(
        &b,
        "verify/k/sha2-512",
        json!({"input": HELLO, "hmac": mac}),
    )
    .await;
    assert_eq!(v["valid"], false);
    let m512 = write(&b, "hmac/k/sha2-512", json!({"input": HELLO})).await["hmac"].clone();
    assert!(m512.as_str().unwrap().len() > mac.as_str().unwrap().len());
    assert_eq!(
        err(&b, "hmac/k/meow", json!({"input": HELLO})).await.1,
        "unsupported algorithm meow"
    );
    assert_eq!(
        err(&b, "hmac/k", json!({})).await.1,
        "missing input for HMAC"
    );
    assert_eq!(
        err(&b, "hmac/none", json!({"input": HELLO})).await.1,
        "encryption key not found"
    );
    assert_eq!(
        err(
            &b,
            "verify/k",
            json!({"input": HELLO, "signature": "vault:v1:AAAA"})
        )
        .await
        .1,
        "key type aes256-gcm96 does not support verification"
    );
}

#[tokio::test]
async fn datakey_random_hash() {
    let (b, _) = backend();
    write(&b, "keys/k", json!({})).await;
    let dk = write(&b, "datakey/plaintext/k", json!({})).await;
    let pt = write(&b, "decrypt/k", json!({"ciphertext": dk["ciphertext"]})).await;
    assert_eq!(pt["plaintext"], dk["plaintext"]);
    assert_eq!(
        crate::util::unb64(dk["plaintext"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    let wrapped = write(&b, "datakey/wrapped/k", json!({"bits": 128})).await;
    assert!(wrapped.get("plaintext").is_none());
    assert_eq!(
        err(&b, "datakey/foo/k", json!({})).await.1,
        "Invalid path, must be 'plaintext' or 'wrapped'"
    );
    assert_eq!(
        err(&b, "datakey/plaintext/k", json!({"bits": 100})).await.1,
        "invalid bit length"
    );

    let r = write(&b, "random", json!({})).await;
    assert_eq!(
        crate::util::unb64(r["random_bytes"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    let r = write(&b, "random/16", json!({"format": "hex"})).await;
    assert_eq!(r["random_bytes"].as_str().unwrap().len(), 32);
    let r = write(&b, "random/platform/8", json!({})).await;
    assert_eq!(
        crate::util::unb64(r["random_bytes"].as_str().unwrap())
            .unwrap()
            .len(),
        8
    );
    assert!(err(&b, "random/abc", json!({}))
        .await
        .1
        .contains("error parsing url-set byte count"));
    let r = write(&b, "random/seal", json!({})).await;
    assert!(r["random_bytes"].is_string());
    assert!(err(&b, "random/foo/8", json!({}))
        .await
        .1
        .contains("unsupported entropy source"));
    assert_eq!(
        err(&b, "random", json!({"bytes": 0})).await.1,
        "'bytes' cannot be less than 1"
    );
    assert!(err(&b, "random", json!({"format": "kitty"}))
        .await
        .1
        .contains("unsupported encoding format"));

    let h = write(&b, "hash", json!({"input": HELLO})).await;
    assert_eq!(
        h["sum"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let h = write(
        &b,
        "hash/sha2-512",
        json!({"input": HELLO, "format": "base64"}),
    )
    .await;
    assert_eq!(
        crate::util::unb64(h["sum"].as_str().unwrap())
            .unwrap()
            .len(),
        64
    );
    assert_eq!(
        err(&b, "hash", json!({"input": HELLO, "algorithm": "meow"}))
            .await
            .1,
        "unsupported algorithm meow"
    );
    assert_eq!(err(&b, "hash", json!({})).await.1, "input missing");
}

#[tokio::test]
async fn export_backup_restore() {
    let (b, _) = backend();
    write(&b, "keys/x", json!({"exportable": true})).await;
    write(&b, "keys/ne", json!({})).await;
    let read = |p: &'static str| {
        let b = &b;
        async move { b.handle(&req(Operation::Read, p, json!({}))).await }
    };
    let e = read("export/encryption-key/x")
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert_eq!(e["keys"].as_object().unwrap().len(), 1);
    assert_eq!(e["name"], "x");
    assert!(read("export/hmac-key/x/latest").await.unwrap().is_some());
    assert_eq!(
        read("export/kitty/x").await.unwrap_err().to_string(),
        "invalid export type: kitty"
    );
    assert_eq!(
        read("export/encryption-key/ne")
            .await
            .unwrap_err()
            .to_string(),
        "private key material is not exportable"
    );
    assert_eq!(
        read("export/signing-key/x").await.unwrap_err().to_string(),
        "signing not supported for the key"
    );
    assert_eq!(
        read("export/encryption-key/x/5")
            .await
            .unwrap_err()
            .to_string(),
        "version does not exist or cannot be found"
    );
    write(
        &b,
        "keys/ec",
        json!({"type": "ecdsa-p256", "exportable": true}),
    )
    .await;
    let k = read("export/signing-key/ec")
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert!(k["keys"]["1"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let k = read("export/public-key/ec")
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert!(k["keys"]["1"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    write(
        &b,
        "keys/rs",
        json!({"type": "rsa-2048", "exportable": true}),
    )
    .await;
    let k = read("export/signing-key/rs")
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    assert!(k["keys"]["1"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));

    // Backups need allow_plaintext_backup.
    let e = read("backup/x").await.unwrap_err();
    assert_eq!(
        (e.status(), e.to_string().as_str()),
        (500, "plaintext backup is disallowed on the policy")
    );
    write(&b, "keys/x/config", json!({"allow_plaintext_backup": true})).await;
    let ct = write(&b, "encrypt/x", json!({"plaintext": HELLO})).await["ciphertext"].clone();
    let backup = read("backup/x").await.unwrap().unwrap().data.unwrap()["backup"].clone();
    let (s, m) = err(&b, "restore", json!({"backup": backup})).await;
    assert_eq!(s, 500);
    assert!(m.contains("already exists"));
    assert!(call(
        &b,
        Operation::Update,
        "restore/y",
        json!({"backup": backup})
    )
    .await
    .is_none());
    assert!(call(
        &b,
        Operation::Update,
        "restore/y",
        json!({"backup": backup, "force": true})
    )
    .await
    .is_none());
    let pt = write(&b, "decrypt/y", json!({"ciphertext": ct})).await;
    assert_eq!(
        pt["plaintext"], HELLO,
        "restored key decrypts the original's ciphertexts"
    );
    let y = call(&b, Operation::Read, "keys/y", json!({}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(y["restore_info"].is_object() && y["backup_info"].is_object());
    assert_eq!(
        err(&b, "restore", json!({})).await.1,
        "'backup' must be supplied"
    );
    assert_eq!(err(&b, "restore", json!({"backup": "!!"})).await.0, 500);
}

#[tokio::test]
async fn cache_follows_writes_and_invalidations() {
    let storage = Arc::new(MemoryStorage::new());
    let active = backend_over(storage.clone());
    let standby = backend_over(storage.clone());
    write(&active, "keys/k", json!({})).await;
    let ct1 = write(&standby, "encrypt/k", json!({"plaintext": HELLO})).await;
    assert_eq!(ct1["key_version"], 1, "standby caches version 1");
    write(&active, "keys/k/rotate", json!({})).await;
    // Without the invalidation the standby still uses its cached key…
    let stale = write(&standby, "encrypt/k", json!({"plaintext": HELLO})).await;
    assert_eq!(stale["key_version"], 1);
    // …and after it, the new version.
    standby.invalidate("policy/k").await;
    let fresh = write(&standby, "encrypt/k", json!({"plaintext": HELLO})).await;
    assert_eq!(fresh["key_version"], 2);

    // A standby that must create a key reports the typed read-only error (so the core forwards).
    storage.set_read_only(true);
    let e = standby
        .handle(&req(
            Operation::Update,
            "encrypt/new",
            json!({"plaintext": HELLO}),
        ))
        .await
        .unwrap_err();
    assert!(e.is_read_only());
}

#[tokio::test]
async fn key_material_is_not_stored_in_clear_text_fields() {
    let (b, s) = backend();
    write(&b, "keys/k", json!({"exportable": true})).await;
    let exported = b
        .handle(&req(Operation::Read, "export/encryption-key/k", json!({})))
        .await
        .unwrap()
        .unwrap()
        .data
        .unwrap();
    let key = exported["keys"]["1"].as_str().unwrap().to_string();
    // The record is JSON inside the barrier; the key is there base64-encoded, once.
    let raw = kura_logical::Storage::get(&*s, "policy/k")
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert_eq!(text.matches(&key).count(), 1);
    // Unknown fields are warned about, as OpenBao does.
    let r = call(&b, Operation::Update, "keys/k/rotate", json!({"foo": 1}))
        .await
        .unwrap();
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [foo]"]
    );
}
