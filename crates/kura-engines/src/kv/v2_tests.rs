//! Tests of the KV v2 backend over `MemoryStorage`, with a controllable clock.

use std::sync::atomic::{AtomicI64, Ordering};

use kura_logical::MemoryStorage;
use serde_json::json;

use super::super::testutil::{config, req};
use super::*;

/// 2026-01-01T00:00:00.123456789Z in Unix nanoseconds.
const T0: i64 = 1_767_225_600_123_456_789;
const SEC: i64 = 1_000_000_000;

struct Fixture {
    b: Arc<KvV2Backend>,
    s: Arc<MemoryStorage>,
    clock: Arc<AtomicI64>,
}

impl Fixture {
    fn new() -> Self {
        Self::over(Arc::new(MemoryStorage::new()))
    }

    fn over(s: Arc<MemoryStorage>) -> Self {
        let clock = Arc::new(AtomicI64::new(T0));
        let c = clock.clone();
        let b = KvV2Backend::new(config(Some("2"), s.clone()))
            .with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        Fixture {
            b: Arc::new(b),
            s,
            clock,
        }
    }

    fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs * SEC, Ordering::SeqCst);
    }

    async fn call(&self, op: Operation, path: &str, body: Value) -> Result<Option<Response>> {
        self.b.handle(&req(op, path, body)).await
    }

    /// A successful call that returns a response; its `data` as JSON.
    async fn ok(&self, op: Operation, path: &str, body: Value) -> Value {
        let r = self
            .call(op, path, body)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e}"))
            .unwrap_or_else(|| panic!("{op:?} {path}: no response"));
        assert_eq!(r.status, None, "{op:?} {path}: unexpected status");
        r.data.map(Value::Object).unwrap_or(Value::Null)
    }

    /// A successful call without a response (204 / 404 on reads).
    async fn none(&self, op: Operation, path: &str, body: Value) {
        let r = self
            .call(op, path, body)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e}"));
        assert!(
            r.is_none(),
            "{op:?} {path}: expected no response, got {r:?}"
        );
    }

    /// A failing call; its error.
    async fn err(&self, op: Operation, path: &str, body: Value) -> LogicalError {
        match self.call(op, path, body).await {
            Err(e) => e,
            Ok(r) => panic!("{op:?} {path}: expected an error, got {r:?}"),
        }
    }

    /// A response with an explicit status.
    async fn status(&self, op: Operation, path: &str, body: Value) -> (u16, Response) {
        let r = self
            .call(op, path, body)
            .await
            .unwrap_or_else(|e| panic!("{op:?} {path}: {e}"))
            .unwrap_or_else(|| panic!("{op:?} {path}: no response"));
        (r.status.unwrap_or(200), r)
    }

    async fn write(&self, path: &str, data: Value) -> Value {
        self.ok(
            Operation::Update,
            &format!("data/{path}"),
            json!({ "data": data }),
        )
        .await
    }

    async fn stored_keys(&self, prefix: &str) -> Vec<String> {
        self.s.list_recursive(prefix).await.unwrap()
    }
}

use Operation::{Create, Delete, List, Patch, Read, Update};

#[tokio::test]
async fn write_then_read_latest_and_old_versions() {
    let fx = Fixture::new();
    let w = fx.write("foo", json!({"a": 1, "b": {"c": "d"}})).await;
    assert_eq!(
        w,
        json!({
            "created_time": "2026-01-01T00:00:00.123456789Z",
            "custom_metadata": null,
            "deletion_time": "",
            "destroyed": false,
            "version": 1
        })
    );
    fx.advance(1);
    let w2 = fx.write("foo", json!({"a": 2})).await;
    assert_eq!(w2["version"], 2);
    assert_eq!(w2["created_time"], "2026-01-01T00:00:01.123456789Z");

    let r = fx.ok(Read, "data/foo", json!({})).await;
    assert_eq!(r["data"], json!({"a": 2}));
    assert_eq!(r["metadata"]["version"], 2);
    let r1 = fx.ok(Read, "data/foo", json!({"version": "1"})).await;
    assert_eq!(r1["data"], json!({"a": 1, "b": {"c": "d"}}));
    assert_eq!(r1["metadata"]["version"], 1);
    // version=0 and negative mean "current".
    let r0 = fx.ok(Read, "data/foo", json!({"version": 0})).await;
    assert_eq!(r0["metadata"]["version"], 2);
    fx.none(Read, "data/foo", json!({"version": 99})).await;
    fx.none(Read, "data/nope", json!({})).await;
    fx.none(Read, "data/", json!({})).await;
    let e = fx.err(Read, "data/foo", json!({"version": "abc"})).await;
    assert_eq!(e.status(), 400);
}

#[tokio::test]
async fn write_input_errors() {
    let fx = Fixture::new();
    let e = fx
        .err(Update, "data/foo", json!({"options": {"cas": 0}}))
        .await;
    assert_eq!(e.to_string(), "no data provided");
    let e = fx.err(Update, "data/foo", json!({"data": "notamap"})).await;
    assert_eq!(e.status(), 400);
    assert!(e.to_string().contains("field \"data\""), "{e}");
    let e = fx
        .err(Update, "data/foo", json!({"data": {}, "options": "x"}))
        .await;
    assert_eq!(e.status(), 400);
    let e = fx.err(Update, "data/dir/", json!({"data": {"a": 1}})).await;
    assert_eq!(e.to_string(), "cannot write to a path ending in '/'");
    // Unknown fields are ignored with OpenBao's warning.
    let r = fx
        .call(
            Create,
            "data/foo",
            json!({"data": {"a": 1}, "extra": 5, "zz": 1}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [extra zz]"]
    );
    // `data: null` is stored and read back as null.
    fx.ok(Update, "data/null", json!({"data": null})).await;
    let r = fx.ok(Read, "data/null", json!({})).await;
    assert_eq!(r["data"], Value::Null);
}

#[tokio::test]
async fn check_and_set() {
    let fx = Fixture::new();
    let cas = |c: Value| json!({"data": {"x": 1}, "options": {"cas": c}});
    let e = fx.err(Update, "data/c", cas(json!(1))).await;
    assert_eq!(e.to_string(), CAS_MISMATCH);
    assert_eq!(e.status(), 400);
    assert_eq!(fx.ok(Update, "data/c", cas(json!(0))).await["version"], 1);
    assert_eq!(fx.ok(Update, "data/c", cas(json!("1"))).await["version"], 2);
    let e = fx.err(Update, "data/c", cas(json!(0))).await;
    assert_eq!(e.to_string(), CAS_MISMATCH);
    for bad in [json!("abc"), json!(2.5), json!(2.0), json!([1])] {
        let e = fx.err(Update, "data/c", cas(bad)).await;
        assert_eq!(e.to_string(), CAS_PARSE);
    }
    // true weakly decodes to 1, which is not the current version.
    let e = fx.err(Update, "data/c", cas(json!(true))).await;
    assert_eq!(e.to_string(), CAS_MISMATCH);
    // null decodes to 0: it matches only a missing key.
    fx.ok(Update, "data/fresh", cas(json!(null))).await;

    // Mount-level cas_required.
    fx.none(Update, "config", json!({"cas_required": true}))
        .await;
    let e = fx.err(Update, "data/c", json!({"data": {"x": 1}})).await;
    assert_eq!(e.to_string(), CAS_REQUIRED);
    let e = fx
        .err(Update, "data/c", json!({"data": {"x": 1}, "options": {}}))
        .await;
    assert_eq!(e.to_string(), CAS_REQUIRED);
    assert_eq!(fx.ok(Update, "data/c", cas(json!(2))).await["version"], 3);
    fx.none(Update, "config", json!({"cas_required": false}))
        .await;

    // Key-level cas_required.
    fx.none(Update, "metadata/k", json!({"cas_required": true}))
        .await;
    let e = fx.err(Update, "data/k", json!({"data": {"x": 1}})).await;
    assert_eq!(e.to_string(), CAS_REQUIRED);
    fx.ok(Update, "data/k", cas(json!(0))).await;
    // Other keys are unaffected.
    fx.write("other", json!({"x": 1})).await;
}

#[tokio::test]
async fn max_versions_trims_old_versions_and_their_data() {
    let fx = Fixture::new();
    fx.none(Update, "metadata/t1", json!({"max_versions": 2}))
        .await;
    for i in 1..=4 {
        fx.write("t1", json!({ "i": i })).await;
    }
    let m = fx.ok(Read, "metadata/t1", json!({})).await;
    assert_eq!(m["current_version"], 4);
    assert_eq!(m["oldest_version"], 3);
    let versions: Vec<&String> = m["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, vec!["3", "4"]);
    fx.none(Read, "data/t1", json!({"version": 1})).await;
    fx.none(Read, "data/t1", json!({"version": 2})).await;
    assert_eq!(
        fx.ok(Read, "data/t1", json!({"version": 3})).await["data"],
        json!({"i": 3})
    );
    // Only version 3 lives at a version key; version 4 is inline in the record.
    assert_eq!(fx.stored_keys("versions/").await, vec!["t1/3"]);

    // Lowering max_versions trims on the next write.
    fx.none(Update, "metadata/t1", json!({"max_versions": 1}))
        .await;
    let m = fx.ok(Read, "metadata/t1", json!({})).await;
    assert_eq!(m["versions"].as_object().unwrap().len(), 2);
    fx.write("t1", json!({"i": 5})).await;
    let m = fx.ok(Read, "metadata/t1", json!({})).await;
    assert_eq!(m["oldest_version"], 5);
    assert_eq!(m["versions"].as_object().unwrap().len(), 1);
    assert!(fx.stored_keys("versions/").await.is_empty());

    // The larger of the mount's and the key's maximum wins, as in OpenBao.
    fx.none(Update, "config", json!({"max_versions": 5})).await;
    fx.none(Update, "metadata/t2", json!({"max_versions": 2}))
        .await;
    for i in 1..=4 {
        fx.write("t2", json!({ "i": i })).await;
    }
    let m = fx.ok(Read, "metadata/t2", json!({})).await;
    assert_eq!(m["oldest_version"], 0);
    assert_eq!(m["versions"].as_object().unwrap().len(), 4);

    // Default: 10 versions.
    fx.none(Update, "config", json!({"max_versions": 0})).await;
    for i in 1..=12 {
        fx.write("t3", json!({ "i": i })).await;
    }
    let m = fx.ok(Read, "metadata/t3", json!({})).await;
    assert_eq!(m["oldest_version"], 3);
    assert_eq!(m["versions"].as_object().unwrap().len(), 10);
    assert_eq!(
        fx.stored_keys("versions/t3/").await.len(),
        9,
        "nine older versions at version keys, the current one inline"
    );
}

#[tokio::test]
async fn soft_delete_undelete_destroy() {
    let fx = Fixture::new();
    for i in 1..=3 {
        fx.write("foo", json!({ "i": i })).await;
    }
    // DELETE data/ soft-deletes the latest version.
    fx.advance(1);
    fx.none(Delete, "data/foo", json!({})).await;
    fx.advance(1);
    let (status, r) = fx.status(Read, "data/foo", json!({})).await;
    assert_eq!(status, 404);
    let d = Value::Object(r.data.unwrap());
    assert_eq!(d["data"], Value::Null);
    assert_eq!(d["metadata"]["version"], 3);
    assert_eq!(
        d["metadata"]["deletion_time"],
        "2026-01-01T00:00:01.123456789Z"
    );
    assert_eq!(d["metadata"]["destroyed"], false);
    // Deleting again changes nothing.
    fx.none(Delete, "data/foo", json!({})).await;
    let m = fx.ok(Read, "metadata/foo", json!({})).await;
    assert_eq!(
        m["versions"]["3"]["deletion_time"],
        "2026-01-01T00:00:01.123456789Z"
    );

    fx.none(Update, "undelete/foo", json!({"versions": [3]}))
        .await;
    assert_eq!(
        fx.ok(Read, "data/foo", json!({})).await["data"],
        json!({"i": 3})
    );

    // delete/ with a comma-separated list.
    fx.none(Update, "delete/foo", json!({"versions": "1,2"}))
        .await;
    fx.advance(1);
    assert_eq!(
        fx.status(Read, "data/foo", json!({"version": 1})).await.0,
        404
    );
    assert_eq!(
        fx.status(Read, "data/foo", json!({"version": 2})).await.0,
        404
    );
    fx.none(Update, "undelete/foo", json!({"versions": [1]}))
        .await;
    assert_eq!(
        fx.ok(Read, "data/foo", json!({"version": 1})).await["data"],
        json!({"i": 1})
    );

    // destroy/: permanent, data removed from storage; unknown versions ignored.
    fx.none(Update, "destroy/foo", json!({"versions": [2, 50]}))
        .await;
    let (status, r) = fx.status(Read, "data/foo", json!({"version": 2})).await;
    assert_eq!(status, 404);
    assert_eq!(r.data.unwrap()["metadata"]["destroyed"], true);
    assert_eq!(fx.stored_keys("versions/").await, vec!["foo/1"]);
    fx.none(Update, "undelete/foo", json!({"versions": [2]}))
        .await;
    assert_eq!(
        fx.status(Read, "data/foo", json!({"version": 2})).await.0,
        404
    );

    // Destroying the current version drops the inline data.
    fx.none(Update, "destroy/foo", json!({"versions": [3]}))
        .await;
    assert_eq!(fx.status(Read, "data/foo", json!({})).await.0, 404);
    let rec: KeyRecord = fx.s.get_json("metadata/foo").await.unwrap().unwrap();
    assert!(rec.data.is_none());
    // A deleted current version is not deleted again by DELETE data/.
    fx.none(Delete, "data/foo", json!({})).await;

    // Missing versions parameter.
    let e = fx.err(Update, "delete/foo", json!({})).await;
    assert_eq!(e.to_string(), "No version number provided");
    let e = fx
        .err(Update, "undelete/foo", json!({"versions": []}))
        .await;
    assert_eq!(e.to_string(), "No version number provided");
    let e = fx.err(Update, "destroy/foo", json!({})).await;
    assert_eq!(e.to_string(), "no version number provided");
    let e = fx
        .err(Update, "destroy/foo", json!({"versions": ["x"]}))
        .await;
    assert_eq!(e.status(), 400);
    // Missing keys answer 204.
    fx.none(Update, "delete/nope", json!({"versions": [1]}))
        .await;
    fx.none(Update, "undelete/nope", json!({"versions": [1]}))
        .await;
    fx.none(Update, "destroy/nope", json!({"versions": [1]}))
        .await;
    fx.none(Delete, "data/nope", json!({})).await;
}

#[tokio::test]
async fn delete_version_after() {
    let fx = Fixture::new();
    fx.none(Update, "config", json!({"delete_version_after": "2s"}))
        .await;
    assert_eq!(
        fx.ok(Read, "config", json!({})).await["delete_version_after"],
        "2s"
    );
    let w = fx.write("d1", json!({"i": 1})).await;
    assert_eq!(w["deletion_time"], "2026-01-01T00:00:02.123456789Z");
    fx.ok(Read, "data/d1", json!({})).await;
    fx.advance(3);
    let (status, r) = fx.status(Read, "data/d1", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(r.data.unwrap()["data"], Value::Null);
    // Deleting an expired version changes nothing; undeleting reschedules it.
    fx.none(Delete, "data/d1", json!({})).await;
    fx.none(Update, "undelete/d1", json!({"versions": [1]}))
        .await;
    let r = fx.ok(Read, "data/d1", json!({})).await;
    assert_eq!(
        r["metadata"]["deletion_time"],
        "2026-01-01T00:00:05.123456789Z"
    );

    // The smaller non-zero of mount and key settings wins.
    fx.none(Update, "metadata/d2", json!({"delete_version_after": "1s"}))
        .await;
    let w = fx.write("d2", json!({"i": 1})).await;
    assert_eq!(w["deletion_time"], "2026-01-01T00:00:04.123456789Z");
    fx.none(Update, "metadata/d3", json!({"delete_version_after": "1h"}))
        .await;
    let w = fx.write("d3", json!({"i": 1})).await;
    assert_eq!(w["deletion_time"], "2026-01-01T00:00:05.123456789Z");

    // A negative mount setting disables it everywhere, and reads back as -1s.
    fx.none(Update, "config", json!({"delete_version_after": "-5s"}))
        .await;
    assert_eq!(
        fx.ok(Read, "config", json!({})).await["delete_version_after"],
        "-1s"
    );
    let w = fx.write("d2", json!({"i": 2})).await;
    assert_eq!(w["deletion_time"], "");
    // Zero clears the mount setting; the key setting applies alone.
    fx.none(Update, "config", json!({"delete_version_after": 0}))
        .await;
    let w = fx.write("d2", json!({"i": 3})).await;
    assert_eq!(w["deletion_time"], "2026-01-01T00:00:04.123456789Z");
    assert_eq!(
        fx.ok(Read, "metadata/d2", json!({})).await["delete_version_after"],
        "1s"
    );
    // Metadata refuses negative values with OpenBao's message.
    let e = fx
        .err(
            Update,
            "metadata/d2",
            json!({"delete_version_after": "-1h"}),
        )
        .await;
    assert_eq!(
        e.to_string(),
        "error converting input for field \"delete_version_after\": cannot provide negative value '-3600'"
    );
}

#[tokio::test]
async fn patch_merges_the_latest_version() {
    let fx = Fixture::new();
    fx.write("pp", json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}))
        .await;
    let w = fx
        .ok(
            Patch,
            "data/pp",
            json!({"data": {"a": null, "b": {"c": null, "x": 9}, "e": [3], "n": null}}),
        )
        .await;
    assert_eq!(w["version"], 2);
    let r = fx.ok(Read, "data/pp", json!({})).await;
    assert_eq!(r["data"], json!({"b": {"d": 3, "x": 9}, "e": [3]}));
    // The previous version is intact.
    assert_eq!(
        fx.ok(Read, "data/pp", json!({"version": 1})).await["data"],
        json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]})
    );
    // cas on patch.
    let e = fx
        .err(
            Patch,
            "data/pp",
            json!({"options": {"cas": 1}, "data": {"z": 1}}),
        )
        .await;
    assert_eq!(e.to_string(), CAS_MISMATCH);
    fx.ok(
        Patch,
        "data/pp",
        json!({"options": {"cas": 2}, "data": {"z": 1}}),
    )
    .await;
    fx.none(Update, "config", json!({"cas_required": true}))
        .await;
    let e = fx.err(Patch, "data/pp", json!({"data": {"z": 2}})).await;
    assert_eq!(e.to_string(), CAS_REQUIRED);
    fx.none(Update, "config", json!({"cas_required": false}))
        .await;

    let e = fx
        .err(Patch, "data/pp", json!({"options": {"cas": 3}}))
        .await;
    assert_eq!(e.to_string(), "no data provided");
    let e = fx.err(Patch, "data/nope", json!({"data": {"z": 1}})).await;
    assert!(matches!(e, LogicalError::NotFound));

    // A deleted latest version answers 404 with its metadata, flat.
    fx.none(Delete, "data/pp", json!({})).await;
    fx.advance(1);
    let (status, r) = fx.status(Patch, "data/pp", json!({"data": {"z": 1}})).await;
    assert_eq!(status, 404);
    let d = r.data.unwrap();
    assert_eq!(d["version"], 3);
    assert!(d.contains_key("deletion_time") && !d.contains_key("metadata"));

    // A null patch replaces the document with null; patching null data then fails as in
    // OpenBao.
    fx.write("n", json!({"a": 1})).await;
    fx.ok(Patch, "data/n", json!({"data": null})).await;
    assert_eq!(fx.ok(Read, "data/n", json!({})).await["data"], Value::Null);
    let e = fx.err(Patch, "data/n", json!({"data": {"x": 1}})).await;
    assert_eq!(e.status(), 500);
}

#[tokio::test]
async fn subkeys_with_depth() {
    let fx = Fixture::new();
    fx.write(
        "sk",
        json!({"a": 1, "b": {"c": {"d": 1}, "e": {}}, "f": [1, {"g": 1}], "h": null}),
    )
    .await;
    let r = fx.ok(Read, "subkeys/sk", json!({})).await;
    assert_eq!(
        r["subkeys"],
        json!({"a": null, "b": {"c": {"d": null}, "e": null}, "f": null, "h": null})
    );
    assert_eq!(r["metadata"]["version"], 1);
    let r = fx.ok(Read, "subkeys/sk", json!({"depth": 1})).await;
    assert_eq!(
        r["subkeys"],
        json!({"a": null, "b": null, "f": null, "h": null})
    );
    let r = fx.ok(Read, "subkeys/sk", json!({"depth": "2"})).await;
    assert_eq!(
        r["subkeys"],
        json!({"a": null, "b": {"c": null, "e": null}, "f": null, "h": null})
    );
    let r = fx.ok(Read, "subkeys/sk", json!({"depth": -1})).await;
    assert_eq!(r["subkeys"]["b"], Value::Null);
    fx.write("sk", json!({"only": {"x": 1}})).await;
    let r = fx.ok(Read, "subkeys/sk", json!({"version": 1})).await;
    assert!(r["subkeys"].as_object().unwrap().contains_key("a"));
    fx.none(Read, "subkeys/sk", json!({"version": 5})).await;
    fx.none(Read, "subkeys/nope", json!({})).await;
    fx.none(Delete, "data/sk", json!({})).await;
    fx.advance(1);
    let (status, r) = fx.status(Read, "subkeys/sk", json!({})).await;
    assert_eq!(status, 404);
    let d = r.data.unwrap();
    assert_eq!(d["subkeys"], Value::Null);
    assert_eq!(d["metadata"]["version"], 2);
    let e = fx.err(Update, "subkeys/sk", json!({})).await;
    assert_eq!(e.status(), 405);
}

#[tokio::test]
async fn metadata_read_write_patch_delete() {
    let fx = Fixture::new();
    // Writing metadata first creates an empty key.
    fx.none(
        Create,
        "metadata/m1",
        json!({"max_versions": 3, "custom_metadata": {"k": "v", "n": 5, "b": true}}),
    )
    .await;
    let m = fx.ok(Read, "metadata/m1", json!({})).await;
    assert_eq!(
        m,
        json!({
            "cas_required": false,
            "created_time": "2026-01-01T00:00:00.123456789Z",
            "current_metadata_version": 1,
            "current_version": 0,
            "custom_metadata": {"b": "1", "k": "v", "n": "5"},
            "delete_version_after": "0s",
            "max_versions": 3,
            "metadata_cas_required": false,
            "oldest_version": 0,
            "updated_time": "2026-01-01T00:00:00.123456789Z",
            "versions": {}
        })
    );
    // No settings: nothing happens.
    fx.none(Update, "metadata/m1", json!({})).await;
    fx.none(Update, "metadata/m1", json!({"metadata_cas": 1}))
        .await;
    assert_eq!(
        fx.ok(Read, "metadata/m1", json!({})).await["current_metadata_version"],
        1
    );
    fx.advance(1);
    fx.none(
        Update,
        "metadata/m1",
        json!({"delete_version_after": "1h", "cas_required": true}),
    )
    .await;
    let m = fx.ok(Read, "metadata/m1", json!({})).await;
    assert_eq!(m["current_metadata_version"], 2);
    assert_eq!(m["delete_version_after"], "1h0m0s");
    assert_eq!(m["updated_time"], "2026-01-01T00:00:01.123456789Z");
    assert_eq!(m["created_time"], "2026-01-01T00:00:00.123456789Z");
    assert_eq!(
        m["custom_metadata"]["k"], "v",
        "unset fields keep their value"
    );

    // Data writes show the custom metadata and do not bump the metadata version.
    let w = fx
        .ok(
            Update,
            "data/m1",
            json!({"data": {"a": 1}, "options": {"cas": 0}}),
        )
        .await;
    assert_eq!(w["custom_metadata"]["k"], "v");
    let m = fx.ok(Read, "metadata/m1", json!({})).await;
    assert_eq!(m["current_metadata_version"], 2);
    assert_eq!(m["current_version"], 1);

    // PATCH: merge custom metadata, null resets a setting.
    fx.none(
        Patch,
        "metadata/m1",
        json!({"custom_metadata": {"k": null, "j": "x"}, "max_versions": null, "zz": 1}),
    )
    .await;
    let m = fx.ok(Read, "metadata/m1", json!({})).await;
    assert_eq!(m["custom_metadata"], json!({"b": "1", "j": "x", "n": "5"}));
    assert_eq!(m["max_versions"], 0);
    assert_eq!(m["cas_required"], true);
    assert_eq!(m["current_metadata_version"], 3);
    // Nothing patchable: nothing happens, not even for a missing key.
    fx.none(Patch, "metadata/m1", json!({"unknown": 2})).await;
    fx.none(Patch, "metadata/nope", json!({})).await;
    assert_eq!(
        fx.ok(Read, "metadata/m1", json!({})).await["current_metadata_version"],
        3
    );
    let e = fx
        .err(Patch, "metadata/nope", json!({"max_versions": 1}))
        .await;
    assert!(matches!(e, LogicalError::NotFound));
    fx.none(Patch, "metadata/m1", json!({"custom_metadata": null}))
        .await;
    assert_eq!(
        fx.ok(Read, "metadata/m1", json!({})).await["custom_metadata"],
        Value::Null
    );

    // Uint32 wrap of a negative max_versions, as OpenBao stores it.
    fx.none(Update, "metadata/m4", json!({"max_versions": -1}))
        .await;
    assert_eq!(
        fx.ok(Read, "metadata/m4", json!({})).await["max_versions"],
        4_294_967_295u32
    );

    // DELETE removes the record and every version.
    fx.none(Patch, "metadata/m1", json!({"cas_required": false}))
        .await;
    for i in 0..3 {
        fx.write("m1", json!({ "i": i })).await;
    }
    assert!(!fx.stored_keys("versions/m1/").await.is_empty());
    fx.none(Delete, "metadata/m1", json!({})).await;
    fx.none(Read, "metadata/m1", json!({})).await;
    fx.none(Read, "data/m1", json!({"version": 1})).await;
    assert!(fx.stored_keys("versions/m1/").await.is_empty());
    assert!(fx.s.get("metadata/m1").await.unwrap().is_none());
    fx.none(Delete, "metadata/m1", json!({})).await;
    // The key starts over.
    assert_eq!(fx.write("m1", json!({"a": 1})).await["version"], 1);
}

#[tokio::test]
async fn custom_metadata_validation() {
    let fx = Fixture::new();
    let e = fx
        .err(Update, "metadata/c", json!({"custom_metadata": {"": "x"}}))
        .await;
    assert_eq!(
        e.to_string(),
        "1 error occurred:\n\t* custom_metadata validation failed: length of key \"\" is 0 but must be 0 < len(key) <= 128\n\n"
    );
    let e = fx
        .err(Update, "metadata/c", json!({"custom_metadata": {"a": ""}}))
        .await;
    assert!(e.to_string().contains("length of value for key \"a\" is 0"));
    let e = fx
        .err(
            Update,
            "metadata/c",
            json!({"custom_metadata": {"a": null}}),
        )
        .await;
    assert!(e.to_string().contains("length of value for key \"a\" is 0"));
    let e = fx
        .err(
            Update,
            "metadata/c",
            json!({"custom_metadata": {"a": "x\u{1}", "": "y"}}),
        )
        .await;
    assert!(e.to_string().starts_with("2 errors occurred:"), "{e}");
    assert!(e.to_string().contains("unprintable"));
    let e = fx
        .err(
            Update,
            "metadata/c",
            json!({"custom_metadata": {"a": {"b": 1}}}),
        )
        .await;
    assert_eq!(
        e.to_string(),
        "custom_metadata validation failed: '' expected type 'string', got unconvertible type 'map[string]interface {}'"
    );
    let e = fx
        .err(Update, "metadata/c", json!({"custom_metadata": "a=b"}))
        .await;
    assert_eq!(e.status(), 400);
    let many: Map = (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let e = fx
        .err(Update, "metadata/c", json!({ "custom_metadata": many }))
        .await;
    assert!(e
        .to_string()
        .contains("payload must contain at most 64 keys, provided 65"));
    let long = "x".repeat(513);
    let e = fx
        .err(
            Update,
            "metadata/c",
            json!({"custom_metadata": {"a": long}}),
        )
        .await;
    assert!(e.to_string().contains("is 513 but must be"));
    fx.none(Read, "metadata/c", json!({})).await;
}

#[tokio::test]
async fn metadata_check_and_set() {
    let fx = Fixture::new();
    fx.none(
        Update,
        "metadata/m2",
        json!({"metadata_cas": 0, "max_versions": 2}),
    )
    .await;
    let e = fx
        .err(
            Update,
            "metadata/m2",
            json!({"metadata_cas": 5, "max_versions": 2}),
        )
        .await;
    assert_eq!(e.to_string(), METADATA_CAS_MISMATCH);
    let e = fx
        .err(
            Patch,
            "metadata/m2",
            json!({"metadata_cas": 5, "max_versions": 2}),
        )
        .await;
    assert_eq!(e.to_string(), METADATA_CAS_MISMATCH);
    let e = fx
        .err(
            Update,
            "metadata/m2",
            json!({"metadata_cas": "x", "max_versions": 2}),
        )
        .await;
    assert_eq!(e.status(), 400);

    // Key-level requirement: setting it needs no cas, later writes do.
    fx.none(
        Update,
        "metadata/m2",
        json!({"metadata_cas_required": true}),
    )
    .await;
    let e = fx
        .err(Update, "metadata/m2", json!({"max_versions": 4}))
        .await;
    assert_eq!(e.to_string(), METADATA_CAS_REQUIRED);
    fx.none(
        Update,
        "metadata/m2",
        json!({"max_versions": 4, "metadata_cas": 2}),
    )
    .await;
    let e = fx
        .err(Patch, "metadata/m2", json!({"max_versions": 5}))
        .await;
    assert_eq!(e.to_string(), METADATA_CAS_REQUIRED);
    fx.none(
        Patch,
        "metadata/m2",
        json!({"max_versions": 5, "metadata_cas": 3}),
    )
    .await;
    // Data writes and version operations ignore it and keep the metadata version.
    fx.write("m2", json!({"a": 1})).await;
    fx.none(Update, "delete/m2", json!({"versions": [1]})).await;
    let m = fx.ok(Read, "metadata/m2", json!({})).await;
    assert_eq!(m["current_metadata_version"], 4);
    assert_eq!(m["max_versions"], 5);
    // Deleting the metadata needs no cas.
    fx.none(Delete, "metadata/m2", json!({})).await;
    fx.none(Read, "metadata/m2", json!({})).await;

    // Mount-level requirements, with OpenBao's warnings when a key tries to opt out.
    fx.none(
        Update,
        "config",
        json!({"cas_required": true, "metadata_cas_required": true}),
    )
    .await;
    let c = fx.ok(Read, "config", json!({})).await;
    assert_eq!(c["metadata_cas_required"], true);
    let e = fx
        .err(Update, "metadata/m5", json!({"cas_required": false}))
        .await;
    assert_eq!(e.to_string(), METADATA_CAS_REQUIRED);
    let r = fx
        .call(
            Update,
            "metadata/m5",
            json!({"cas_required": false, "metadata_cas_required": false, "metadata_cas": 0}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.data, None);
    assert_eq!(r.warnings, vec![CAS_IGNORED, METADATA_CAS_IGNORED]);
    let r = fx
        .call(
            Patch,
            "metadata/m5",
            json!({"cas_required": false, "metadata_cas": 1}),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.warnings, vec![CAS_IGNORED]);
    // The data write still needs cas because the mount requires it.
    let e = fx.err(Update, "data/m5", json!({"data": {"a": 1}})).await;
    assert_eq!(e.to_string(), CAS_REQUIRED);
}

#[tokio::test]
async fn config_read_write() {
    let fx = Fixture::new();
    assert_eq!(
        fx.ok(Read, "config", json!({})).await,
        json!({
            "cas_required": false,
            "delete_version_after": "0s",
            "max_versions": 0,
            "metadata_cas_required": false
        })
    );
    fx.none(Update, "config", json!({})).await;
    fx.none(
        Create,
        "config",
        json!({"max_versions": "7", "delete_version_after": 3600}),
    )
    .await;
    let c = fx.ok(Read, "config", json!({})).await;
    assert_eq!(c["max_versions"], 7);
    assert_eq!(c["delete_version_after"], "1h0m0s");
    let e = fx
        .err(Update, "config", json!({"max_versions": "abc"}))
        .await;
    assert_eq!(e.status(), 400);
    let e = fx
        .err(Update, "config", json!({"delete_version_after": "soon"}))
        .await;
    assert_eq!(e.status(), 400);
    let e = fx.err(Delete, "config", json!({})).await;
    assert_eq!(e.status(), 405);
}

#[tokio::test]
async fn lists_with_folders_and_paging() {
    let fx = Fixture::new();
    for p in ["dir/a/b", "dir/c", "dir/a", "foo", "m1", "m4", "m5"] {
        fx.write(p, json!({"x": 1})).await;
    }
    let l = fx.ok(List, "metadata/dir/", json!({})).await;
    assert_eq!(l["keys"], json!(["a", "a/", "c"]));
    // Without the trailing slash (the core normally adds it).
    let l = fx.ok(List, "metadata/dir", json!({})).await;
    assert_eq!(l["keys"], json!(["a", "a/", "c"]));
    let l = fx.ok(List, "metadata/", json!({"list": "true"})).await;
    assert_eq!(l["keys"], json!(["dir/", "foo", "m1", "m4", "m5"]));
    let l = fx.ok(List, "metadata/", json!({"limit": 2})).await;
    assert_eq!(l["keys"], json!(["dir/", "foo"]));
    let l = fx
        .ok(List, "metadata/", json!({"after": "foo", "limit": "2"}))
        .await;
    assert_eq!(l["keys"], json!(["m1", "m4"]));
    fx.none(List, "metadata/", json!({"after": "m5"})).await;
    fx.none(List, "metadata/nothing/", json!({})).await;
    fx.none(List, "metadata/foo/", json!({})).await;

    let d = fx.ok(List, "detailed-metadata/dir/", json!({})).await;
    assert_eq!(d["keys"], json!(["a", "a/", "c"]));
    assert_eq!(d["key_info"]["a"]["current_version"], 1);
    assert_eq!(
        d["key_info"]["a/"]["current_version"], 1,
        "metadata of dir/a"
    );
    let d = fx.ok(List, "detailed-metadata/", json!({"limit": 2})).await;
    assert_eq!(d["keys"], json!(["dir/", "foo"]));
    assert_eq!(d["key_info"]["dir/"], json!({}));
    assert_eq!(d["key_info"]["foo"]["current_version"], 1);
    fx.none(List, "detailed-metadata/nothing/", json!({})).await;

    let e = fx.err(List, "data/", json!({})).await;
    assert_eq!(e.status(), 405);
    let e = fx.err(Read, "detailed-metadata/foo", json!({})).await;
    assert_eq!(e.status(), 405);
}

#[tokio::test]
async fn invalid_paths_answer_404_with_a_warning() {
    let fx = Fixture::new();
    for (op, path, sub) in [
        (Read, "foo", "get"),
        (Update, "foo", "put"),
        (Create, "foo", "put"),
        (Patch, "foo", "patch"),
        (Delete, "foo", "delete"),
        (List, "foo/", "list"),
        (Read, "config/x", "get"),
        (Read, "", "get"),
    ] {
        let (status, r) = fx.status(op, path, json!({"a": 1})).await;
        assert_eq!(status, 404, "{op:?} {path}");
        assert_eq!(r.data, None);
        assert_eq!(
            r.warnings,
            vec![format!(
                "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the OpenBao CLI, use 'bao kv {sub}' for this operation."
            )],
            "{op:?} {path}"
        );
    }
    for root in ["data", "metadata", "delete", "undelete", "destroy"] {
        let (status, r) = fx.status(Read, root, json!({})).await;
        assert_eq!(status, 404);
        assert_eq!(
            r.warnings,
            vec!["Non-listing operations on the root of a K/V v2 mount are not supported."]
        );
    }
}

#[tokio::test]
async fn existence_checks() {
    let fx = Fixture::new();
    let data = req(Update, "data/foo", json!({"data": {"a": 1}}));
    assert_eq!(fx.b.exists(&data).await.unwrap(), Some(false));
    let meta = req(Update, "metadata/foo", json!({"max_versions": 1}));
    assert_eq!(fx.b.exists(&meta).await.unwrap(), Some(false));
    fx.b.handle(&data).await.unwrap();
    assert_eq!(fx.b.exists(&data).await.unwrap(), Some(true));
    assert_eq!(fx.b.exists(&meta).await.unwrap(), Some(true));
    for no_check in ["config", "delete/foo", "destroy/foo", "undelete/foo", "foo"] {
        let r = req(Update, no_check, json!({}));
        assert_eq!(fx.b.exists(&r).await.unwrap(), None, "{no_check}");
    }
}

#[tokio::test]
async fn unknown_read_parameters_are_warned_about() {
    let fx = Fixture::new();
    fx.write("foo", json!({"a": 1})).await;
    let r = fx
        .call(Read, "data/foo", json!({"zzz": "1", "version": "1"}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        r.warnings,
        vec!["Endpoint ignored these unrecognized parameters: [zzz]"]
    );
    // A 204 carries no warning.
    fx.none(Update, "delete/foo", json!({"versions": [1], "zzz": 1}))
        .await;
}

#[tokio::test]
async fn read_only_storage_refuses_writes_but_serves_reads() {
    let fx = Fixture::new();
    fx.write("foo", json!({"a": 1})).await;
    fx.write("foo", json!({"a": 2})).await;
    fx.s.set_read_only(true);
    for (op, path, body) in [
        (Update, "data/foo", json!({"data": {"a": 3}})),
        (Create, "data/new", json!({"data": {"a": 3}})),
        (Patch, "data/foo", json!({"data": {"b": 1}})),
        (Delete, "data/foo", json!({})),
        (Update, "delete/foo", json!({"versions": [1]})),
        (Update, "destroy/foo", json!({"versions": [1]})),
        (Update, "metadata/foo", json!({"max_versions": 3})),
        (Patch, "metadata/foo", json!({"max_versions": 3})),
        (Delete, "metadata/foo", json!({})),
        (Update, "config", json!({"max_versions": 3})),
    ] {
        let e = fx.err(op, path, body).await;
        assert!(e.is_read_only(), "{op:?} {path}: {e:?}");
    }
    assert_eq!(fx.ok(Read, "data/foo", json!({})).await["data"]["a"], 2);
    assert_eq!(
        fx.ok(Read, "data/foo", json!({"version": 1})).await["data"]["a"],
        1
    );
    fx.ok(Read, "metadata/foo", json!({})).await;
    fx.ok(Read, "subkeys/foo", json!({})).await;
    fx.ok(Read, "config", json!({})).await;
    fx.ok(List, "metadata/", json!({})).await;
    assert_eq!(
        fx.b.exists(&req(Update, "data/foo", json!({})))
            .await
            .unwrap(),
        Some(true)
    );
}

#[tokio::test]
async fn invalidate_drops_the_cached_config() {
    let s = Arc::new(MemoryStorage::new());
    let active = Fixture::over(s.clone());
    let standby = Fixture::over(s);
    active
        .none(Update, "config", json!({"cas_required": true}))
        .await;
    // The standby loads and caches it.
    let e = standby.err(Update, "data/x", json!({"data": {}})).await;
    assert_eq!(e.to_string(), CAS_REQUIRED);
    active
        .none(Update, "config", json!({"cas_required": false}))
        .await;
    assert_eq!(
        standby.ok(Read, "config", json!({})).await["cas_required"],
        true,
        "still cached"
    );
    standby.b.invalidate("metadata/x").await;
    assert_eq!(
        standby.ok(Read, "config", json!({})).await["cas_required"],
        true
    );
    standby.b.invalidate("config").await;
    assert_eq!(
        standby.ok(Read, "config", json!({})).await["cas_required"],
        false
    );
}

#[tokio::test]
async fn storage_holds_each_version_once() {
    let fx = Fixture::new();
    fx.write("a/b", json!({"v": 1})).await;
    assert_eq!(fx.stored_keys("").await, vec!["metadata/a/b"]);
    fx.write("a/b", json!({"v": 2})).await;
    fx.write("a/b", json!({"v": 3})).await;
    assert_eq!(
        fx.stored_keys("").await,
        vec!["metadata/a/b", "versions/a/b/1", "versions/a/b/2"]
    );
    let v1: Value = fx.s.get_json("versions/a/b/1").await.unwrap().unwrap();
    assert_eq!(v1, json!({"v": 1}));
    let rec: KeyRecord = fx.s.get_json("metadata/a/b").await.unwrap().unwrap();
    assert_eq!(rec.data, Some(json!({"v": 3})));
    assert_eq!(rec.current_version, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_key_are_serialized() {
    let fx = Fixture::new();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let b = fx.b.clone();
        tasks.push(tokio::spawn(async move {
            b.handle(&req(Update, "data/hot", json!({"data": {"i": i}})))
                .await
                .unwrap()
                .unwrap()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        versions.push(r.data.unwrap()["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=20).collect::<Vec<_>>());
    let m = fx.ok(Read, "metadata/hot", json!({})).await;
    assert_eq!(m["current_version"], 20);
    assert_eq!(m["oldest_version"], 11);
    assert_eq!(fx.stored_keys("versions/hot/").await.len(), 9);
}

#[tokio::test]
async fn help_names_the_path() {
    let fx = Fixture::new();
    let r = fx.ok(Operation::Help, "data/foo", json!({})).await;
    assert_eq!(
        r["help"],
        "Write, Patch, Read, and Delete data in the Key-Value Store."
    );
}

#[tokio::test]
async fn warm_reads_come_from_the_record_cache_until_a_write_or_invalidation() {
    let s = Arc::new(MemoryStorage::new());
    let active = Fixture::over(s.clone());
    let standby = Fixture::over(s);
    active.write("k", json!({"v": 1})).await;
    assert_eq!(standby.ok(Read, "data/k", json!({})).await["data"]["v"], 1);
    // Another node writes: the standby's cached record is stale until invalidated.
    active.write("k", json!({"v": 2})).await;
    assert_eq!(
        standby.ok(Read, "data/k", json!({})).await["data"]["v"],
        1,
        "cached"
    );
    standby.b.invalidate("metadata/k").await;
    assert_eq!(standby.ok(Read, "data/k", json!({})).await["data"]["v"], 2);
    // Its own writes are seen at once, as are deletes and metadata changes.
    standby.write("k", json!({"v": 3})).await;
    assert_eq!(standby.ok(Read, "data/k", json!({})).await["data"]["v"], 3);
    standby.none(Delete, "metadata/k", json!({})).await;
    standby.none(Read, "data/k", json!({})).await;
    // An older version is read from its version key, not the cached current one.
    standby.write("k", json!({"v": "a"})).await;
    standby.write("k", json!({"v": "b"})).await;
    assert_eq!(
        standby.ok(Read, "data/k", json!({"version": 1})).await["data"]["v"],
        "a"
    );
    assert_eq!(
        standby.ok(Read, "data/k", json!({})).await["data"]["v"],
        "b"
    );
}
