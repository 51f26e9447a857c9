use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use kura_logical::*;
struct Sys;
impl SystemView for Sys {
    fn default_lease_ttl(&self) -> Duration { Duration::from_secs(1) }
    fn max_lease_ttl(&self) -> Duration { Duration::from_secs(1) }
    fn is_standby(&self) -> bool { false }
}
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let s = Arc::new(MemoryStorage::new());
    let mut options = BTreeMap::new();
    options.insert("version".to_string(), "2".to_string());
    let cfg = BackendConfig { mount: MountInfo { options, ..Default::default() }, storage: s.clone(), system: Arc::new(Sys) };
    let b = kura_engines::kv_factory(cfg).unwrap();
    for i in 0..1000 {
        let mut r = Request::new(Operation::Update, "x");
        r.relative_path = format!("data/k{i}");
        r.data = serde_json::json!({"data": {"username": "admin", "password": "s3cr3t-value-0123456789", "n": i}}).as_object().unwrap().clone();
        b.handle(&r).await.unwrap();
        b.handle(&r).await.unwrap();
    }
    let n = 200_000;
    let reqs: Vec<Request> = (0..1000).map(|i| { let mut r = Request::new(Operation::Read, "x"); r.relative_path = format!("data/k{i}"); r }).collect();
    let t = Instant::now();
    for i in 0..n {
        let r = b.handle(&reqs[i % 1000]).await.unwrap().unwrap();
        std::hint::black_box(r);
    }
    let el = t.elapsed();
    println!("read: {:?}/op", el / n as u32);
    let t = Instant::now();
    for i in 0..n {
        let raw = s.get(&format!("metadata/k{}", i % 1000)).await.unwrap().unwrap();
        std::hint::black_box(raw);
    }
    println!("storage get alone: {:?}/op", t.elapsed() / n as u32);
    let t = Instant::now();
    let tbl_req = &reqs[5];
    for _ in 0..n {
        let mut r = tbl_req.clone(); r.operation = Operation::Help;
        std::hint::black_box(b.handle(&r).await.unwrap());
    }
    let raw = s.get("metadata/k5").await.unwrap().unwrap();
    println!("record bytes: {}", raw.len());
    let t = Instant::now();
    for _ in 0..n {
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        std::hint::black_box(v);
    }
    println!("decode as Value: {:?}/op", t.elapsed() / n as u32);
    let table = PathTable::new(vec![
        (PathSpec::new("config", &[Operation::Read], "c"), 0u8),
        (PathSpec::new("data/(?P<path>.*)", &[Operation::Read], "d").fields(vec![FieldSpec::new("path", FieldType::String, ""), FieldSpec::new("version", FieldType::Int, ""), FieldSpec::new("options", FieldType::Map, ""), FieldSpec::new("data", FieldType::Raw, "")]), 1u8),
    ]);
    let t = Instant::now();
    for i in 0..n {
        let r = table.route(&reqs[i % 1000]).unwrap();
        std::hint::black_box(r.fields.string("path").unwrap());
    }
    println!("route: {:?}/op", t.elapsed() / n as u32);
    println!("help (lookup only): {:?}/op", t.elapsed() / n as u32);
}
