//! The policy matrix. Cases marked "bao" were run against a real OpenBao 2.7.2 dev server
//! (`sys/capabilities` for capability lists, real requests for allow/deny) and the answers are
//! encoded here.

use super::*;
use crate::template::{TemplateAlias, TemplateEntity, TemplateOptions};
use serde_json::json;
use std::time::UNIX_EPOCH;

fn policy(name: &str, text: &str) -> Arc<Policy> {
    Arc::new(Policy::parse(name, text).unwrap())
}

fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<Arc<Policy>> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| policy(&format!("p{i}"), t))
        .collect();
    Acl::new(&policies)
}

/// Asserts `sys/capabilities` answers for many paths at once.
fn assert_caps(acl: &Acl, cases: &[(&str, &[&str])]) {
    for (path, want) in cases {
        assert_eq!(acl.capabilities(path), *want, "capabilities of {path:?}");
    }
}

fn data(v: serde_json::Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("request data must be an object"),
    }
}

fn allowed(acl: &Acl, path: &str, cap: Capability, body: Option<serde_json::Value>) -> bool {
    let body = body.map(data);
    acl.check(path, cap, body.as_ref()).allowed
}

const PRIORITY: &str = r#"
path "secret/*" { capabilities = ["read"] }
path "secret/foo/*" { capabilities = ["list"] }
path "secret/+/bar" { capabilities = ["update"] }
path "secret/foo/+" { capabilities = ["create"] }
path "secret/+/+" { capabilities = ["delete"] }
path "secret/fo*" { capabilities = ["patch"] }
path "secret/foo/b*" { capabilities = ["sudo"] }
path "secret/+/ba*" { capabilities = ["scan"] }
path "secret/exact/bar" { capabilities = ["read", "list"] }
path "+" { capabilities = ["read"] }
path "top/+bar/x" { capabilities = ["update"] }
path "a+/b" { capabilities = ["update"] }
path "/lead/x" { capabilities = ["update"] }
path "mid/*/y" { capabilities = ["update"] }
"#;

#[test]
fn bao_priority_between_globs_and_segments() {
    let acl = acl(&[PRIORITY]);
    assert_caps(
        &acl,
        &[
            ("secret/foo/bar", &["sudo"]),
            ("secret/foo/baz", &["sudo"]),
            ("secret/zip/bar", &["update"]),
            ("secret/zip/baz", &["delete"]),
            ("secret/zip/qux", &["delete"]),
            ("secret/foo", &["patch"]),
            ("secret/fox", &["patch"]),
            ("secret/foo/", &["create"]),
            ("secret/a/b/c", &["read"]),
            ("secret/exact/bar", &["list", "read"]),
            ("secret/exact/baz", &["delete"]),
            ("secret/exact/bar/", &["list", "read"]),
            ("x", &["read"]),
            ("secret", &["read"]),
            ("x/y", &["deny"]),
            ("top/+bar/x", &["update"]),
            ("top/zbar/x", &["deny"]),
            ("a+/b", &["update"]),
            ("a/b", &["deny"]),
            ("lead/x", &["update"]),
            ("/lead/x", &["update"]),
            ("mid/z/y", &["deny"]),
            ("mid/*/y", &["update"]),
            ("secret/foo/bar/baz", &["sudo"]),
            ("secret/zip/bar/", &["read"]),
            ("secret/zip/", &["delete"]),
        ],
    );
}

#[test]
fn bao_priority_segments_prefix_and_length() {
    let acl = acl(&[r#"
path "foo/+/bar/ba*" { capabilities = ["read"] }
path "foo/+/bar/b*" { capabilities = ["update"] }
path "foo/bar/+/baz" { capabilities = ["create"] }
path "foo/+/+/baz" { capabilities = ["delete"] }
path "foo/+/bar" { capabilities = ["list"] }
path "foo/+/ba*" { capabilities = ["patch"] }
path "foo/+" { capabilities = ["sudo"] }
path "foo/*" { capabilities = ["scan"] }
path "foo/a*" { capabilities = ["read", "list"] }
"#]);
    assert_caps(
        &acl,
        &[
            ("foo/x/bar/baz", &["delete"]),
            ("foo/x/bar/bzz", &["scan"]),
            ("foo/bar/x/baz", &["create"]),
            ("foo/y/x/baz", &["delete"]),
            ("foo/x/bar", &["list"]),
            ("foo/x/bax", &["scan"]),
            ("foo/x", &["sudo"]),
            ("foo/abc", &["list", "read"]),
            ("foo/x/y/z/w", &["scan"]),
            ("foo/", &["sudo"]),
            ("foo/x/", &["scan"]),
            ("foo/a/bar/baz", &["list", "read"]),
        ],
    );
}

#[test]
fn priority_ties_without_segment_rules_use_longest_prefix() {
    let acl = acl(&[r#"
path "a/*" { capabilities = ["read"] }
path "a/b*" { capabilities = ["update"] }
path "a/bc/*" { capabilities = ["list"] }
path "*" { capabilities = ["create"] }
"#]);
    assert_caps(
        &acl,
        &[
            ("a/x", &["read"]),
            ("a/b", &["update"]),
            ("a/bcd", &["update"]),
            ("a/bc/d", &["list"]),
            ("zzz", &["create"]),
            ("", &["create"]),
        ],
    );
}

#[test]
fn bao_deny_wins_across_policies() {
    let acl = acl(&[
        r#"
path "secret/*" { capabilities = ["read", "list"] }
path "secret/shared" { capabilities = ["read"] }
path "secret/merge/*" { capabilities = ["read"] }
path "sys/mounts" { policy = "sudo" }
path "old/read/*" { policy = "read" }
path "old/write/*" { policy = "write" }
path "+/+/denyseg" { capabilities = ["read"] }
"#,
        r#"
path "secret/locked" { capabilities = ["deny"] }
path "secret/shared" { capabilities = ["update"] }
path "secret/merge/*" { capabilities = ["update", "create"] }
path "secret/denyall/*" { capabilities = ["deny", "read"] }
path "old/deny/*" { policy = "deny" }
path "a/b/denyseg" { capabilities = ["deny"] }
"#,
    ]);
    assert_caps(
        &acl,
        &[
            ("secret/locked", &["deny"]),
            ("secret/shared", &["read", "update"]),
            ("secret/merge/x", &["create", "read", "update"]),
            ("secret/other", &["list", "read"]),
            ("secret/denyall/x", &["deny"]),
            (
                "sys/mounts",
                &["create", "delete", "list", "read", "sudo", "update"],
            ),
            ("old/read/x", &["list", "read"]),
            (
                "old/write/x",
                &["create", "delete", "list", "read", "update"],
            ),
            ("old/deny/x", &["deny"]),
            ("a/b/denyseg", &["deny"]),
            ("c/d/denyseg", &["read"]),
            ("secret/locked/", &["deny"]),
            ("secret/", &["list", "read"]),
        ],
    );
    let d = acl.check("secret/locked", Capability::READ, None);
    assert!(!d.allowed);
    assert_eq!(d.reason, Some(DenyReason::ExplicitDeny));
    assert_eq!(d.capabilities, Capability::DENY);
    assert!(acl.check("secret/other", Capability::READ, None).allowed);
    let d = acl.check("secret/other", Capability::UPDATE, None);
    assert_eq!(
        d.reason,
        Some(DenyReason::MissingCapability(Capability::UPDATE))
    );
}

#[test]
fn deny_wins_in_either_order_and_within_one_policy() {
    let allow = r#"path "s/x" { capabilities = ["read", "update"]
  allowed_parameters = { "a" = [] } }"#;
    let deny = r#"path "s/x" { capabilities = ["deny"] }"#;
    for order in [[allow, deny], [deny, allow]] {
        let acl = acl(&order);
        assert_eq!(acl.capabilities("s/x"), vec!["deny"]);
        assert!(!allowed(&acl, "s/x", Capability::READ, None));
    }
    // Two stanzas for the same path inside one policy merge the same way.
    let acl = acl(&[r#"path "s/x" { capabilities = ["read"] }
path "s/x" { capabilities = ["deny"] }"#]);
    assert_eq!(acl.capabilities("s/x"), vec!["deny"]);
}

#[test]
fn exact_path_beats_globs() {
    let acl = acl(&[r#"
path "secret/*" { capabilities = ["read", "update"] }
path "secret/+" { capabilities = ["list"] }
path "secret/special" { capabilities = ["delete"] }
"#]);
    assert_eq!(acl.capabilities("secret/special"), vec!["delete"]);
    assert!(!allowed(&acl, "secret/special", Capability::READ, None));
    assert!(allowed(&acl, "secret/special", Capability::DELETE, None));
    // Leading slashes of the request path are ignored.
    assert!(allowed(&acl, "//secret/special", Capability::DELETE, None));
    assert_eq!(acl.capabilities("secret/other"), vec!["list"]);
}

#[test]
fn bao_list_with_trailing_slash() {
    // An exact rule without the slash covers a LIST of the path with it.
    let acl1 = acl(&[r#"path "kv/list" { capabilities = ["list"] }
path "kv/dir/" { capabilities = ["read"] }"#]);
    assert!(allowed(&acl1, "kv/list/", Capability::LIST, None));
    assert!(!allowed(&acl1, "kv/list/", Capability::READ, None));
    assert_eq!(acl1.capabilities("kv/list/"), vec!["list"]);
    assert_eq!(acl1.capabilities("kv/dir"), vec!["deny"]);

    // bao: a `+` rule reached only once the slash is dropped.
    let l = acl(&[r#"path "kv/+/x" { capabilities = ["list"] }
path "kv/p/*" { capabilities = ["read", "update", "create"]
  required_parameters = ["foo"] }"#]);
    assert!(allowed(&l, "kv/a/x/", Capability::LIST, None));
    assert!(allowed(&l, "kv/a/x", Capability::LIST, None));
    assert_caps(&l, &[("kv/a/x/", &["list"]), ("kv/a/x", &["list"])]);

    // bao: the slash-less form is only a fallback: a glob matching the full path wins.
    let l2 = acl(&[r#"path "kv/*" { capabilities = ["read"] }
path "kv/+/x" { capabilities = ["list"] }"#]);
    assert!(!allowed(&l2, "kv/a/x/", Capability::LIST, None));
    // The HTTP layer appends the slash to every LIST path, which is why bao refused
    // `LIST kv/a/x` too; the ACL itself allows the slash-less path.
    assert!(allowed(&l2, "kv/a/x", Capability::LIST, None));
    assert_caps(&l2, &[("kv/a/x/", &["read"]), ("kv/a/x", &["list"])]);
}

#[test]
fn bao_globs_plus_and_legacy_mix() {
    let acl = acl(&[r#"path "x" { policy = "read"
 capabilities=["update"] }
path "y" { policy = "deny"
 capabilities=["update"] }
path "+/*" { capabilities=["create"] }
path "*" { capabilities = ["patch"] }"#]);
    assert_caps(
        &acl,
        &[
            ("x", &["list", "read", "update"]),
            ("y", &["deny"]),
            ("z", &["patch"]),
            ("z/q", &["patch"]),
            ("q/r/s", &["patch"]),
        ],
    );
}

#[test]
fn sudo_is_reported_even_when_the_operation_is_refused() {
    let acl = acl(&[r#"path "sys/audit/*" { capabilities = ["sudo", "read"] }
path "sys/mounts" { capabilities = ["read"] }"#]);
    let d = acl.check("sys/audit/file", Capability::UPDATE, None);
    assert!(!d.allowed);
    assert!(d.sudo);
    let d = acl.check("sys/audit/file", Capability::READ, None);
    assert!(d.allowed && d.sudo);
    assert_eq!(d.capabilities, Capability::SUDO | Capability::READ);
    let d = acl.check("sys/mounts", Capability::READ, None);
    assert!(d.allowed && !d.sudo);
    let d = acl.check("nothing/here", Capability::READ, None);
    assert!(!d.allowed && !d.sudo);
    assert_eq!(d.reason, Some(DenyReason::NoMatchingRule));
    assert!(d.capabilities.is_empty());
}

#[test]
fn root_acl_allows_everything() {
    let root = Acl::root();
    assert!(root.is_root());
    assert_eq!(root.capabilities("anything/at/all"), vec!["root"]);
    for cap in [
        Capability::READ,
        Capability::SUDO,
        Capability::DELETE,
        Capability::SCAN,
    ] {
        let d = root.check("sys/raw/x", cap, Some(&data(json!({"x": 1}))));
        assert!(d.allowed && d.sudo && d.is_root);
        assert_eq!(d.granting_policies, vec!["root"]);
    }
    assert!(root.has_mount_access("secret/"));
    // A policy named root yields the root ACL.
    let via_policy = Acl::new(&[policy("root", "")]);
    assert!(via_policy.is_root());
    // An ACL with no policies allows nothing.
    let empty = Acl::new(&[]);
    assert_eq!(empty.capabilities("secret/x"), vec!["deny"]);
    assert!(!allowed(&empty, "secret/x", Capability::READ, None));
}

#[test]
fn granting_policies_are_named() {
    let policies = vec![
        policy("reader", r#"path "s/*" { capabilities = ["read"] }"#),
        policy(
            "writer",
            r#"path "s/*" { capabilities = ["update", "read"] }"#,
        ),
    ];
    let acl = Acl::new(&policies);
    let d = acl.check("s/x", Capability::READ, None);
    assert_eq!(d.granting_policies, vec!["reader", "writer"]);
    let d = acl.check("s/x", Capability::UPDATE, None);
    assert_eq!(d.granting_policies, vec!["writer"]);
}

const PARAMS: &str = r#"
path "kv/al/*" {
  capabilities = ["create", "update", "read", "patch"]
  allowed_parameters = {
    "name" = ["alice", "bob*", "*suffix", "*mid*"]
    "Mixed" = []
    "n" = [5]
    "b" = [true]
    "f" = [1.5]
    "s5" = ["5"]
    "star" = ["*"]
  }
}
path "kv/den/*" {
  capabilities = ["create", "update"]
  denied_parameters = {
    "secret" = []
    "env" = ["prod*"]
    "n" = [5]
  }
}
path "kv/denall/*" {
  capabilities = ["create", "update"]
  denied_parameters = { "*" = [] }
}
path "kv/alall/*" {
  capabilities = ["create", "update"]
  allowed_parameters = { "*" = [], "env" = ["dev"] }
}
path "kv/alstar/*" {
  capabilities = ["create", "update"]
  allowed_parameters = { "*" = ["x"] }
}
path "kv/req/*" {
  capabilities = ["create", "update"]
  required_parameters = ["Foo", "bar"]
}
"#;

#[test]
fn bao_parameter_constraints() {
    let acl = acl(&[PARAMS]);
    let cases: &[(&str, serde_json::Value, bool)] = &[
        ("kv/al/1", json!({"name": "alice"}), true),
        ("kv/al/1", json!({"name": "Alice"}), false),
        ("kv/al/1", json!({"name": "bobby"}), true),
        ("kv/al/1", json!({"name": "xsuffix"}), true),
        ("kv/al/1", json!({"name": "xmidx"}), true),
        ("kv/al/1", json!({"name": "mi"}), false),
        ("kv/al/1", json!({"NAME": "alice"}), true),
        ("kv/al/1", json!({"mixed": "anything"}), true),
        ("kv/al/1", json!({"Mixed": "anything"}), true),
        ("kv/al/1", json!({"n": 5}), false),
        ("kv/al/1", json!({"n": "5"}), false),
        ("kv/al/1", json!({"b": true}), true),
        ("kv/al/1", json!({"b": "true"}), false),
        ("kv/al/1", json!({"f": 1.5}), false),
        ("kv/al/1", json!({"s5": "5"}), true),
        ("kv/al/1", json!({"s5": 5}), false),
        ("kv/al/1", json!({"star": "anything"}), false),
        ("kv/al/1", json!({"star": "*"}), true),
        ("kv/al/1", json!({"other": "x"}), false),
        ("kv/al/1", json!({"name": ["alice"]}), false),
        ("kv/al/1", json!({"name": null}), false),
        ("kv/al/1", json!({}), true),
        ("kv/den/1", json!({"secret": "x"}), false),
        ("kv/den/1", json!({"SECRET": "x"}), false),
        ("kv/den/1", json!({"env": "production"}), false),
        ("kv/den/1", json!({"env": "dev"}), true),
        ("kv/den/1", json!({"n": 5}), true),
        ("kv/den/1", json!({"other": 1}), true),
        ("kv/denall/1", json!({"a": 1}), false),
        ("kv/denall/1", json!({}), true),
        ("kv/alall/1", json!({"a": 1}), true),
        ("kv/alall/1", json!({"env": "dev"}), true),
        ("kv/alall/1", json!({"env": "prod"}), false),
        ("kv/alstar/1", json!({"a": "x"}), true),
        ("kv/alstar/1", json!({"a": "y"}), true),
        ("kv/req/1", json!({"foo": 1, "bar": 2}), true),
        ("kv/req/1", json!({"Foo": 1, "bar": 2}), false),
        ("kv/req/1", json!({"foo": 1}), false),
    ];
    for (path, body, want) in cases {
        assert_eq!(
            allowed(&acl, path, Capability::UPDATE, Some(body.clone())),
            *want,
            "update {path} with {body}"
        );
    }
    // No data at all passes allowed/denied lists (bao lets the request reach the backend).
    assert!(allowed(&acl, "kv/al/1", Capability::CREATE, None));
    assert!(allowed(&acl, "kv/denall/1", Capability::UPDATE, None));
    // But required parameters are checked first.
    let d = acl.check("kv/req/1", Capability::UPDATE, None);
    assert_eq!(
        d.reason,
        Some(DenyReason::MissingRequiredParameter("Foo".into()))
    );
    let d = acl.check(
        "kv/den/1",
        Capability::UPDATE,
        Some(&data(json!({"env": "prod-eu"}))),
    );
    assert_eq!(d.reason, Some(DenyReason::DeniedParameter("env".into())));
    let d = acl.check(
        "kv/al/1",
        Capability::UPDATE,
        Some(&data(json!({"zzz": "x"}))),
    );
    assert_eq!(
        d.reason,
        Some(DenyReason::ParameterNotAllowed("zzz".into()))
    );
}

#[test]
fn bao_required_parameters_apply_to_reads_not_deletes() {
    // bao: GET without the required query parameter is refused, with it allowed.
    let acl = acl(&[
        r#"path "kv/p/*" { capabilities = ["read", "update", "create", "delete", "list"]
  required_parameters = ["foo"] }"#,
    ]);
    assert!(!allowed(&acl, "kv/p/a", Capability::READ, None));
    assert!(allowed(
        &acl,
        "kv/p/a",
        Capability::READ,
        Some(json!({"foo": "1"}))
    ));
    assert!(allowed(
        &acl,
        "kv/p/a",
        Capability::UPDATE,
        Some(json!({"foo": "1"}))
    ));
    assert!(!allowed(
        &acl,
        "kv/p/a",
        Capability::UPDATE,
        Some(json!({"bar": "1"}))
    ));
    assert!(allowed(&acl, "kv/p/a", Capability::DELETE, None));
    assert!(allowed(&acl, "kv/p/", Capability::LIST, None));
}

#[test]
fn parameter_maps_merge_across_policies() {
    let acl = acl(&[
        r#"path "s/x" { capabilities = ["update"]
  allowed_parameters = { "a" = ["1"], "b" = ["1"], "c" = [] }
  denied_parameters = { "d" = ["1"] }
  required_parameters = ["a"] }"#,
        r#"path "s/x" { capabilities = ["create"]
  allowed_parameters = { "a" = ["2"], "b" = [], "c" = ["3"], "e" = ["5"] }
  denied_parameters = { "d" = ["2"] }
  required_parameters = ["a", "b"] }"#,
    ]);
    let rule = acl.rules().into_iter().find(|r| r.path == "s/x").unwrap();
    let p = rule.permissions;
    assert_eq!(p.allowed_parameters["a"], vec![json!("2"), json!("1")]);
    assert!(p.allowed_parameters["b"].is_empty(), "an empty list wins");
    assert!(p.allowed_parameters["c"].is_empty(), "an empty list wins");
    assert_eq!(p.allowed_parameters["e"], vec![json!("5")]);
    assert_eq!(p.denied_parameters["d"], vec![json!("2"), json!("1")]);
    assert_eq!(p.required_parameters, vec!["a", "b"]);
    assert_eq!(p.capabilities, Capability::UPDATE | Capability::CREATE);

    let ok = |body: serde_json::Value| allowed(&acl, "s/x", Capability::UPDATE, Some(body));
    assert!(ok(json!({"a": "1", "b": "anything"})));
    assert!(ok(json!({"a": "2", "b": "x", "c": "y", "e": "5"})));
    assert!(!ok(json!({"a": "3", "b": "x"})));
    assert!(!ok(json!({"a": "1"})), "b became required");
    assert!(!ok(json!({"a": "1", "b": "x", "d": "1"})));
    assert!(!ok(json!({"a": "1", "b": "x", "d": "2"})));
    assert!(
        !ok(json!({"a": "1", "b": "x", "d": "3"})),
        "d is not an allowed key"
    );
}

#[test]
fn deny_merge_wipes_parameter_maps_but_keeps_deny() {
    let acl = acl(&[
        r#"path "s/x" { capabilities = ["update"]
  allowed_parameters = { "a" = [] } }"#,
        r#"path "s/x" { capabilities = ["deny"] }"#,
        r#"path "s/x" { capabilities = ["read"] }"#,
    ]);
    let rule = acl.rules().into_iter().find(|r| r.path == "s/x").unwrap();
    assert_eq!(rule.permissions.capabilities, Capability::DENY);
    assert!(rule.permissions.allowed_parameters.is_empty());
}

#[test]
fn bao_wrapping_ttls() {
    let w1 = r#"path "kv/w/*" { capabilities = ["read"]
  min_wrapping_ttl = 60
  max_wrapping_ttl = "5m" }
path "kv/w2/*" { capabilities = ["read"]
  min_wrapping_ttl = "100s" }"#;
    let w2 = r#"path "kv/w/*" { capabilities = ["read"]
  min_wrapping_ttl = "2m"
  max_wrapping_ttl = 200 }
path "kv/w2/*" { capabilities = ["read"]
  max_wrapping_ttl = 50 }"#;
    let wrapped = |acl: &Acl, path: &str, ttl: Option<u64>| {
        acl.check_request(&CheckRequest {
            path,
            capability: Capability::READ,
            data: None,
            wrap_ttl: ttl.map(Duration::from_secs),
        })
    };
    let single = acl(&[w1]);
    for (ttl, want) in [
        (None, false),
        (Some(30), false),
        (Some(120), true),
        (Some(250), true),
        (Some(600), false),
    ] {
        assert_eq!(
            wrapped(&single, "kv/w/a", ttl).allowed,
            want,
            "w1 alone, ttl {ttl:?}"
        );
    }
    assert_eq!(
        wrapped(&single, "kv/w/a", None).reason,
        Some(DenyReason::WrappingRequired)
    );
    assert_eq!(
        wrapped(&single, "kv/w/a", Some(30)).reason,
        Some(DenyReason::WrappingTtlTooShort)
    );
    assert_eq!(
        wrapped(&single, "kv/w/a", Some(600)).reason,
        Some(DenyReason::WrappingTtlTooLong)
    );

    // Merged: the smaller non-zero min (60) and the smaller non-zero max (200).
    let both = acl(&[w1, w2]);
    for (ttl, want) in [
        (None, false),
        (Some(30), false),
        (Some(60), true),
        (Some(100), true),
        (Some(200), true),
        (Some(250), false),
    ] {
        assert_eq!(
            wrapped(&both, "kv/w/a", ttl).allowed,
            want,
            "merged, ttl {ttl:?}"
        );
    }
    // Merged min 100 and max 50: nothing passes.
    for ttl in [None, Some(40), Some(60), Some(120)] {
        assert!(
            !wrapped(&both, "kv/w2/a", ttl).allowed,
            "w2 path, ttl {ttl:?}"
        );
    }
    assert_eq!(
        wrapped(&both, "kv/w2/a", Some(75)).reason,
        Some(DenyReason::WrappingTtlTooLong)
    );
}

#[test]
fn bao_pagination_limits() {
    let acl = acl(&[r#"
path "kv/pl/*" { capabilities = ["list"]
  pagination_limit = 2 }
path "kv/plr/*" { capabilities = ["list"]
  pagination_limit = "2"
  required_parameters = ["limit"] }
path "kv/nol/*" { capabilities = ["list"] }
"#]);
    let list = |path: &str, body: Option<serde_json::Value>| {
        let body = body.map(data);
        acl.check(path, Capability::LIST, body.as_ref())
    };
    let d = list("kv/pl/", None);
    assert!(d.allowed);
    assert_eq!(d.limit_override.as_deref(), Some("2"));
    let d = list("kv/pl/", Some(json!({"limit": "2"})));
    assert!(d.allowed && d.limit_override.is_none());
    assert_eq!(
        list("kv/pl/", Some(json!({"limit": "3"}))).reason,
        Some(DenyReason::PaginationLimitExceeded)
    );
    assert_eq!(
        list("kv/pl/", Some(json!({"limit": 3}))).reason,
        Some(DenyReason::PaginationLimitExceeded)
    );
    let d = list("kv/pl/", Some(json!({"limit": "max"})));
    assert!(d.allowed);
    assert_eq!(d.limit_override.as_deref(), Some("2"));
    assert_eq!(
        list("kv/pl/", Some(json!({"limit": "abc"}))).reason,
        Some(DenyReason::InvalidPaginationLimit)
    );
    assert_eq!(
        list("kv/plr/", None).reason,
        Some(DenyReason::PaginationLimitRequired)
    );
    assert!(list("kv/plr/", Some(json!({"limit": "1"}))).allowed);
    let d = list("kv/nol/", Some(json!({"limit": "max"})));
    assert!(d.allowed);
    assert_eq!(d.limit_override.as_deref(), Some("0"));
    assert!(list("kv/nol/", Some(json!({"limit": "10"})))
        .limit_override
        .is_none());

    // The lowest limit wins when merging.
    let merged = Acl::new(&[
        policy(
            "a",
            r#"path "x/*" { capabilities = ["list"]
  pagination_limit = 10 }"#,
        ),
        policy(
            "b",
            r#"path "x/*" { capabilities = ["list"]
  pagination_limit = 5 }"#,
        ),
    ]);
    assert_eq!(
        merged
            .check("x/", Capability::LIST, None)
            .limit_override
            .as_deref(),
        Some("5")
    );
}

#[test]
fn filter_path_is_returned_for_listing() {
    let acl = acl(&[
        r#"path "kv/metadata/*" { capabilities = ["list", "read"]
  list_scan_response_keys_filter_path = "{{ .path }}{{ .key }}" }"#,
        r#"path "kv/metadata/*" { capabilities = ["list"]
  list_scan_response_keys_filter_path = "kv/data/{{ .key }}" }"#,
    ]);
    let d = acl.check("kv/metadata/", Capability::LIST, None);
    let filter = d.response_keys_filter_path.expect("filter set");
    // The first policy's template wins.
    assert_eq!(filter.render("kv/metadata/", "k"), "kv/metadata/k");
    assert!(acl
        .check("kv/metadata/x", Capability::READ, None)
        .response_keys_filter_path
        .is_none());
}

#[test]
fn expired_paths_are_left_out() {
    let p = vec![policy(
        "p",
        r#"path "old" { capabilities = ["read"]
  expiration = "2001-01-01T00:00:00Z" }
path "new" { capabilities = ["read"]
  expiration = "2999-01-01T00:00:00Z" }
path "at" { capabilities = ["read"]
  expiration = "1000" }"#,
    )];
    let acl = Acl::new(&p);
    assert_eq!(acl.capabilities("old"), vec!["deny"]);
    assert_eq!(acl.capabilities("new"), vec!["read"]);
    let before = Acl::build(
        &p,
        &IdentityContext::default(),
        UNIX_EPOCH + Duration::from_secs(999),
    )
    .unwrap();
    assert_eq!(before.capabilities("at"), vec!["read"]);
    let after = Acl::build(
        &p,
        &IdentityContext::default(),
        UNIX_EPOCH + Duration::from_secs(1001),
    )
    .unwrap();
    assert_eq!(after.capabilities("at"), vec!["deny"]);
}

const TEMPLATED: &str = r#"
path "t/{{identity.entity.metadata.team}}/x" { capabilities = ["read"] }
path "n/{{identity.entity.name}}" { capabilities = ["read"] }
path "a/{{identity.entity.aliases.auth_userpass_1.name}}" { capabilities = ["read"] }
"#;

fn entity_ctx(login: &str, team: &str) -> IdentityContext {
    IdentityContext {
        entity: Some(TemplateEntity {
            id: "eid".into(),
            name: format!("ent-{login}"),
            metadata: [("team".to_string(), team.to_string())]
                .into_iter()
                .collect(),
            aliases: vec![TemplateAlias {
                mount_accessor: "auth_userpass_1".into(),
                name: login.into(),
                ..TemplateAlias::default()
            }],
        }),
        ..IdentityContext::default()
    }
}

#[test]
fn bao_templated_policies() {
    let paths = [
        "t/a/b/x",
        "t/ab*/x",
        "t/abX/x",
        "t/abX/y/x",
        "t/+/x",
        "t/q/x",
        "t/abc/x",
    ];
    let strict = vec![policy("tp", TEMPLATED)];

    // bao: a plain value fills in.
    let acl = Acl::with_identity(&strict, &entity_ctx("plain", "abc")).unwrap();
    assert_caps(
        &acl,
        &[
            ("a/plain", &["read"]),
            ("n/ent-plain", &["read"]),
            ("t/+/x", &["deny"]),
            ("t/a/b/x", &["deny"]),
            ("t/ab*/x", &["deny"]),
            ("t/abX/x", &["deny"]),
            ("t/abc/x", &["read"]),
            ("t/q/x", &["deny"]),
        ],
    );

    // bao: a slash or wildcard in a substituted value fails the whole ACL (403 upstream).
    for (team, bad) in [("a/b", "/"), ("ab*", "*"), ("+", "+")] {
        let err = Acl::with_identity(&strict, &entity_ctx("u", team)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "error parsing templated policy \"tp\": failed to parse policy: path \"t/{{{{identity.entity.metadata.team}}}}/x\": template substitution contains forbidden value: {bad:?}"
            )
        );
    }

    // bao: with both switches on, the value is used as written, wildcards included.
    let lax = vec![Arc::new(
        Policy::parse("tp", TEMPLATED)
            .unwrap()
            .with_template_options(TemplateOptions {
                allow_slashes: true,
                allow_wildcards: true,
            }),
    )];
    let expect: [(&str, [&[&str]; 7]); 3] = [
        (
            "a/b",
            [
                &["read"],
                &["deny"],
                &["deny"],
                &["deny"],
                &["deny"],
                &["deny"],
                &["deny"],
            ],
        ),
        (
            "ab*",
            [
                &["deny"],
                &["read"],
                &["deny"],
                &["deny"],
                &["deny"],
                &["deny"],
                &["deny"],
            ],
        ),
        (
            "+",
            [
                &["deny"],
                &["read"],
                &["read"],
                &["deny"],
                &["read"],
                &["read"],
                &["read"],
            ],
        ),
    ];
    for (team, want) in expect {
        let acl = Acl::with_identity(&lax, &entity_ctx("u", team)).unwrap();
        for (path, w) in paths.iter().zip(want) {
            assert_eq!(acl.capabilities(path), w, "team {team:?}, path {path}");
        }
        assert_eq!(acl.capabilities("a/u"), vec!["read"]);
        assert_eq!(acl.capabilities("n/ent-u"), vec!["read"]);
    }

    // Without an entity the templated paths are simply absent.
    let acl = Acl::new(&strict);
    assert_eq!(acl.capabilities("n/ent-plain"), vec!["deny"]);
    assert_eq!(acl.capabilities("n/{{identity.entity.name}}"), vec!["deny"]);
}

#[test]
fn templated_path_that_becomes_invalid_fails_the_acl() {
    let p = vec![Arc::new(
        Policy::parse(
            "tp",
            r#"path "x/+{{identity.entity.name}}" { capabilities = ["read"] }"#,
        )
        .unwrap()
        .with_template_options(TemplateOptions {
            allow_slashes: false,
            allow_wildcards: true,
        }),
    )];
    let mut ctx = entity_ctx("u", "t");
    ctx.entity.as_mut().unwrap().name = "*".into();
    let err = Acl::with_identity(&p, &ctx).unwrap_err();
    assert!(matches!(err, AclError::TemplatedPath { .. }), "{err}");
}

#[test]
fn bao_default_policy() {
    let default = vec![policy(crate::DEFAULT_POLICY_NAME, crate::DEFAULT_POLICY)];
    let acl = Acl::new(&default);
    assert_caps(
        &acl,
        &[
            (
                "cubbyhole/foo",
                &["create", "delete", "list", "read", "update"],
            ),
            (
                "cubbyhole/",
                &["create", "delete", "list", "read", "update"],
            ),
            ("cubbyhole", &["deny"]),
            ("sys/tools/hash", &["update"]),
            ("sys/tools/hash/sha2-256", &["update"]),
            (
                "identity/oidc/provider/default/authorize",
                &["read", "update"],
            ),
            ("identity/oidc/provider/default/authorize/x", &["deny"]),
            ("auth/token/lookup-self", &["read"]),
            ("auth/token/lookup", &["deny"]),
            ("identity/entity/id/x", &["deny"]),
            ("sys/capabilities-self", &["update"]),
            ("secret/foo", &["deny"]),
        ],
    );
    // With an entity, the token may read its own entity and nobody else's.
    let acl = Acl::with_identity(&default, &entity_ctx("u", "t")).unwrap();
    assert_eq!(acl.capabilities("identity/entity/id/eid"), vec!["read"]);
    assert_eq!(acl.capabilities("identity/entity/name/ent-u"), vec!["read"]);
    assert_eq!(acl.capabilities("identity/entity/id/other"), vec!["deny"]);
}

#[test]
fn bao_mount_access() {
    // bao: the mounts `sys/internal/ui/mounts` shows to a token holding these policies.
    let acl1 = acl(&[r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "denied/*" { capabilities = ["deny"] }
path "kv/+/team/*" { capabilities = ["read"] }
path "pki/issue/web" { capabilities = ["update"] }
path "only-patch/x" { capabilities = ["patch"] }
path "sys/internal/ui/mounts" { capabilities = ["read"] }
"#]);
    let mounts = [
        "cubbyhole/",
        "denied/",
        "identity/",
        "kv/",
        "only-patch/",
        "only-scan/",
        "pki/",
        "secret/",
        "seg/",
        "sys/",
        "transit/",
    ];
    let visible = |acl: &Acl| -> Vec<&str> {
        mounts
            .iter()
            .copied()
            .filter(|m| acl.has_mount_access(m))
            .collect()
    };
    assert_eq!(
        visible(&acl1),
        vec!["kv/", "only-patch/", "pki/", "secret/", "sys/"]
    );
    let acl2 = acl(&[r#"
path "only-scan/x" { capabilities = ["scan"] }
path "+/x/y" { capabilities = ["read"] }
path "sys/internal/ui/mounts" { capabilities = ["read"] }
"#]);
    assert_eq!(visible(&acl2), mounts.to_vec());
    let acl3 = acl(&[r#"
path "only-scan/x" { capabilities = ["scan"] }
path "sys/internal/ui/mounts" { capabilities = ["read"] }
"#]);
    assert_eq!(visible(&acl3), vec!["only-scan/", "sys/"]);
}

#[test]
fn rules_lists_merged_paths() {
    let acl = acl(&[r#"
path "b/*" { capabilities = ["read"] }
path "a" { capabilities = ["read"] }
path "c/+/d" { capabilities = ["read"] }
"#]);
    let rules: Vec<(String, bool)> = acl.rules().into_iter().map(|r| (r.path, r.glob)).collect();
    assert_eq!(
        rules,
        vec![
            ("a".to_string(), false),
            ("b/*".to_string(), true),
            ("c/+/d".to_string(), true)
        ]
    );
}

#[test]
fn glob_values() {
    assert!(glob_match("*", "*"));
    assert!(!glob_match("*", "anything"));
    assert!(glob_match("**", "anything"));
    assert!(glob_match("a*", "abc"));
    assert!(glob_match("*c", "abc"));
    assert!(glob_match("*b*", "abc"));
    assert!(!glob_match("*x*", "abc"));
    assert!(glob_match("abc", "abc"));
    assert!(!glob_match("ab", "abc"));
    assert!(value_in_list(&json!(true), &[json!(true)]));
    assert!(value_in_list(&json!(["a"]), &[json!(["a"])]));
    assert!(!value_in_list(&json!([1]), &[json!([1])]));
    assert!(value_in_list(&json!(null), &[json!(null)]));
    assert!(value_in_list(&json!(1), &[]));
}
