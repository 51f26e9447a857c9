//! Tests of whole configurations, shaped like the ones OpenBao documents and ships.

use super::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

fn hcl(text: &str) -> Config {
    parse_str(text, "config.hcl", Format::Hcl).unwrap()
}

fn hcl_err(text: &str) -> ConfigError {
    parse_str(text, "config.hcl", Format::Hcl).unwrap_err()
}

fn json_cfg(text: &str) -> Config {
    parse_str(text, "config.json", Format::Json).unwrap()
}

fn has_warning(config: &Config, needle: &str) -> bool {
    config.warnings.iter().any(|w| w.contains(needle))
}

const RAFT_HCL: &str = r#"
ui            = true
cluster_addr  = "https://10.0.0.1:8201"
api_addr      = "https://10.0.0.1:8200"
cluster_name  = "kura-test"
log_level     = "Debug"

storage "raft" {
  path    = "/var/lib/openbao/raft"
  node_id = "node1"
  performance_multiplier = 1

  retry_join {
    leader_api_addr         = "https://10.0.0.2:8200"
    leader_ca_cert_file     = "/etc/openbao/ca.pem"
    leader_client_cert_file = "/etc/openbao/client.pem"
    leader_client_key_file  = "/etc/openbao/client-key.pem"
    leader_tls_servername   = "openbao.internal"
  }
  retry_join {
    leader_api_addr = "https://10.0.0.3:8200"
  }
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "/etc/openbao/server.pem"
  tls_key_file    = "/etc/openbao/server-key.pem"
}

seal "shamir" {}
"#;

#[test]
fn raft_config_with_retry_join() {
    let c = hcl(RAFT_HCL);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.ui);
    assert_eq!(c.api_addr.as_deref(), Some("https://10.0.0.1:8200"));
    assert_eq!(c.cluster_addr.as_deref(), Some("https://10.0.0.1:8201"));
    assert_eq!(c.cluster_name.as_deref(), Some("kura-test"));
    assert_eq!(c.log_level.as_deref(), Some("debug"));

    let storage = c.storage.as_ref().unwrap();
    assert_eq!(storage.kind, "raft");
    assert_eq!(storage.file, "config.hcl");
    // Top-level addresses override the storage block's, as in OpenBao.
    assert_eq!(
        storage.redirect_addr.as_deref(),
        Some("https://10.0.0.1:8200")
    );
    assert_eq!(
        storage.cluster_addr.as_deref(),
        Some("https://10.0.0.1:8201")
    );
    assert_eq!(storage.options["path"], json!("/var/lib/openbao/raft"));
    assert_eq!(
        storage.option_str("performance_multiplier").as_deref(),
        Some("1")
    );
    assert_eq!(storage.options["retry_join"].as_array().unwrap().len(), 2);

    let raft = storage.raft().unwrap();
    assert_eq!(raft.path.as_deref(), Some("/var/lib/openbao/raft"));
    assert_eq!(raft.node_id.as_deref(), Some("node1"));
    assert_eq!(raft.performance_multiplier, 1);
    assert!(!raft.retry_join_as_non_voter);
    assert_eq!(raft.retry_join.len(), 2);
    let first = &raft.retry_join[0];
    assert_eq!(
        first.leader_api_addr.as_deref(),
        Some("https://10.0.0.2:8200")
    );
    assert_eq!(
        first.leader_ca_cert_file.as_deref(),
        Some("/etc/openbao/ca.pem")
    );
    assert_eq!(
        first.leader_client_cert_file.as_deref(),
        Some("/etc/openbao/client.pem")
    );
    assert_eq!(
        first.leader_client_key_file.as_deref(),
        Some("/etc/openbao/client-key.pem")
    );
    assert_eq!(
        first.leader_tls_servername.as_deref(),
        Some("openbao.internal")
    );
    assert_eq!(
        raft.retry_join[1].leader_api_addr.as_deref(),
        Some("https://10.0.0.3:8200")
    );
    assert_eq!(raft.retry_join[1].leader_ca_cert_file, None);

    assert_eq!(c.listeners.len(), 1);
    let l = &c.listeners[0];
    assert_eq!(l.kind, "tcp");
    assert_eq!(l.address, "0.0.0.0:8200");
    assert_eq!(l.cluster_address.as_deref(), Some("0.0.0.0:8201"));
    assert!(!l.tls_disable, "TLS is on by default, as in OpenBao");
    assert_eq!(l.tls_cert_file.as_deref(), Some("/etc/openbao/server.pem"));
    assert_eq!(
        l.tls_key_file.as_deref(),
        Some("/etc/openbao/server-key.pem")
    );
    assert_eq!(l.raw["address"], json!("0.0.0.0:8200"));

    assert_eq!(c.seals.len(), 1);
    assert_eq!(c.seals[0].kind, "shamir");
    assert!(!c.seals[0].disabled);
    assert!(c.seals[0].options.is_empty());
}

#[test]
fn json_form_of_the_same_config_is_equal() {
    let json_text = r#"{
      "ui": true,
      "cluster_addr": "https://10.0.0.1:8201",
      "api_addr": "https://10.0.0.1:8200",
      "cluster_name": "kura-test",
      "log_level": "Debug",
      "storage": {
        "raft": {
          "path": "/var/lib/openbao/raft",
          "node_id": "node1",
          "performance_multiplier": 1,
          "retry_join": [
            {
              "leader_api_addr": "https://10.0.0.2:8200",
              "leader_ca_cert_file": "/etc/openbao/ca.pem",
              "leader_client_cert_file": "/etc/openbao/client.pem",
              "leader_client_key_file": "/etc/openbao/client-key.pem",
              "leader_tls_servername": "openbao.internal"
            },
            {"leader_api_addr": "https://10.0.0.3:8200"}
          ]
        }
      },
      "listener": [
        {"tcp": {
          "address": "0.0.0.0:8200",
          "cluster_address": "0.0.0.0:8201",
          "tls_cert_file": "/etc/openbao/server.pem",
          "tls_key_file": "/etc/openbao/server-key.pem"
        }}
      ],
      "seal": {"shamir": {}}
    }"#;
    let mut from_json = json_cfg(json_text);
    let mut from_hcl = hcl(RAFT_HCL);
    // Only the file names differ.
    for c in [&mut from_json, &mut from_hcl] {
        c.files.clear();
        c.storage.as_mut().unwrap().file.clear();
        c.listeners[0].file.clear();
        c.seals[0].file.clear();
    }
    assert_eq!(from_json, from_hcl);
}

#[test]
fn inmem_dev_like_config() {
    let c = hcl(r#"
storage "inmem" {}
listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}
ui = true
disable_mlock = true
"#);
    let storage = c.storage.clone().unwrap();
    assert_eq!(storage.kind, "inmem");
    assert!(storage.options.is_empty());
    assert!(storage.raft.is_none());
    let l = &c.listeners[0];
    assert!(l.tls_disable);
    assert_eq!(l.tls_min_version, "tls12");
    assert_eq!(l.tls_max_version, "tls13");
    assert_eq!(l.max_request_size, DEFAULT_MAX_REQUEST_SIZE);
    assert_eq!(l.request_size_limit(), Some(32 * 1024 * 1024));
    assert_eq!(l.max_request_duration, Duration::from_secs(90));
    assert_eq!(l.max_request_json_memory, DEFAULT_MAX_REQUEST_JSON_MEMORY);
    assert_eq!(l.max_request_json_strings, 1000);
    assert_eq!(l.http_read_header_timeout, Duration::from_secs(10));
    assert_eq!(l.http_idle_timeout, Duration::from_secs(300));
    assert!(c.disable_mlock);
    // OpenBao 2.x accepts disable_mlock = true but it has no effect: say so.
    assert!(has_warning(&c, "\"disable_mlock\""));
}

#[test]
fn empty_listener_block_gets_openbao_defaults() {
    let c = hcl("listener \"tcp\" {}\nlistener \"unix\" {}\n");
    assert_eq!(c.listeners[0].address, "127.0.0.1:8200");
    assert!(!c.listeners[0].tls_disable);
    assert_eq!(c.listeners[1].kind, "unix");
    assert_eq!(c.listeners[1].address, "/run/openbao.sock");
    assert!(c.listeners[1].tls_disable);
    // Checked against bao 2.7.2: rekey without a token answers 405 unless re-enabled, and
    // X-Forwarded-For is not enforced unless asked.
    assert!(c.listeners[0].disable_unauthed_rekey_endpoints);
    assert!(!c.listeners[0].x_forwarded_for_reject_not_authorized);
    assert!(!c.listeners[0].x_forwarded_for_reject_not_present);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = hcl("listener \"tcp\" { disable_unauthed_rekey_endpoints = false }\n");
    assert!(!c.listeners[0].disable_unauthed_rekey_endpoints);
}

#[test]
fn tls_listener_options() {
    let c = hcl(r#"
listener "tcp" {
  address                            = "[::]:8200"
  tls_cert_file                      = "/etc/certs/openbao.crt"
  tls_key_file                       = "/etc/certs/openbao.key"
  tls_client_ca_file                 = "/etc/certs/ca.crt"
  tls_min_version                    = "tls13"
  tls_require_and_verify_client_cert = "true"
  max_request_size                   = "1048576"
  max_request_duration               = "30s"
  x_forwarded_for_authorized_addrs   = "10.0.0.0/8, 192.168.1.10"
  x_forwarded_for_hop_skips          = "1"
  x_forwarded_for_reject_not_authorized = false
  x_forwarded_for_reject_not_present = "false"
  http_read_timeout                  = 60
  telemetry {
    unauthenticated_metrics_access = true
  }
  custom_response_headers {
    default = {
      "Strict-Transport-Security" = ["max-age=31536000", "includeSubDomains"]
    }
  }
}
"#);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let l = &c.listeners[0];
    assert_eq!(l.address, "[::]:8200");
    assert_eq!(l.tls_client_ca_file.as_deref(), Some("/etc/certs/ca.crt"));
    assert_eq!(l.tls_min_version, "tls13");
    assert!(l.tls_require_and_verify_client_cert);
    assert_eq!(l.max_request_size, 1_048_576);
    assert_eq!(l.max_request_duration, Duration::from_secs(30));
    assert_eq!(
        l.x_forwarded_for_authorized_addrs,
        vec!["10.0.0.0/8".to_string(), "192.168.1.10".to_string()]
    );
    assert_eq!(l.x_forwarded_for_hop_skips, 1);
    assert!(!l.x_forwarded_for_reject_not_authorized);
    assert!(!l.x_forwarded_for_reject_not_present);
    assert_eq!(l.http_read_timeout, Duration::from_secs(60));
    assert!(l.unauthenticated_metrics_access);
    assert_eq!(
        l.custom_response_headers.as_ref().unwrap()["default"]["Strict-Transport-Security"][1],
        json!("includeSubDomains")
    );
}

#[test]
fn request_size_zero_means_default_and_negative_disables() {
    let c = hcl(
        "listener \"tcp\" { max_request_size = 0 }\nlistener \"tcp\" { max_request_size = -1 }\n",
    );
    assert_eq!(c.listeners[0].max_request_size, DEFAULT_MAX_REQUEST_SIZE);
    assert_eq!(c.listeners[1].request_size_limit(), None);
}

#[test]
fn request_duration_falls_back_to_the_server_default() {
    let c = hcl(r#"
default_max_request_duration = "2m"
listener "tcp" {}
listener "tcp" { max_request_duration = "5s" }
listener "tcp" { max_request_duration = 0 }
"#);
    assert_eq!(
        c.listeners[0].max_request_duration,
        Duration::from_secs(120)
    );
    assert_eq!(c.listeners[1].max_request_duration, Duration::from_secs(5));
    assert_eq!(
        c.listeners[2].max_request_duration,
        Duration::from_secs(120)
    );
    assert_eq!(
        c.max_request_duration(&c.listeners[1]),
        Duration::from_secs(5)
    );
    let mut unresolved = c.listeners[0].clone();
    unresolved.max_request_duration = Duration::ZERO;
    assert_eq!(
        c.max_request_duration(&unresolved),
        Duration::from_secs(120)
    );
}

#[test]
fn listener_type_from_key_and_unsupported_type() {
    let c = hcl("listener { type = \"TCP\"\n address = \"127.0.0.1:9000\" }\n");
    assert_eq!(c.listeners[0].kind, "tcp");
    assert_eq!(c.listeners[0].address, "127.0.0.1:9000");

    let err = hcl_err("\nlistener \"udp\" {}\n").to_string();
    assert!(err.starts_with("config.hcl:2:"), "{err}");
    assert!(err.contains("unsupported listener type \"udp\""), "{err}");

    let err = hcl_err("listener {}\n").to_string();
    assert!(err.contains("listener type must be specified"), "{err}");
}

#[test]
fn old_tls_versions_are_raised_with_a_warning() {
    let c = hcl("listener \"tcp\" {\n  tls_min_version = \"tls10\"\n}\n");
    assert_eq!(c.listeners[0].tls_min_version, "tls12");
    assert!(has_warning(&c, "\"tls_min_version\""));
    assert!(has_warning(&c, "config.hcl:2"));

    let err = hcl_err("listener \"tcp\" { tls_max_version = \"tls11\" }\n").to_string();
    assert!(err.contains("\"tls_max_version\""), "{err}");
    let err = hcl_err("listener \"tcp\" { tls_min_version = \"ssl3\" }\n").to_string();
    assert!(err.contains("\"ssl3\""), "{err}");
    let err = hcl_err(
        "listener \"tcp\" {\n tls_min_version = \"tls13\"\n tls_max_version = \"tls12\"\n}\n",
    )
    .to_string();
    assert!(err.contains("above tls_max_version"), "{err}");
}

#[test]
fn bad_forwarded_for_address_is_an_error() {
    let err =
        hcl_err("listener \"tcp\" {\n x_forwarded_for_authorized_addrs = [\"10.0.0.0/40\"]\n}\n")
            .to_string();
    assert!(err.starts_with("config.hcl:2:"), "{err}");
    assert!(err.contains("x_forwarded_for_authorized_addrs"), "{err}");
}

#[test]
fn audit_blocks_in_hcl_and_json() {
    let c = hcl(r#"
audit "file" "to-stdout" {
  description = "This audit device should never fail."
  options {
    file_path = "/dev/stdout"
    log_raw   = "true"
  }
}

audit "file" "second" {
  local = true
  options {
    file_path     = "/var/log/openbao/audit.log"
    hmac_accessor = false
    format        = "json"
    prefix        = "kura:"
    mode          = "0600"
  }
}
"#);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.audit.len(), 2);
    let first = &c.audit[0];
    assert_eq!(first.kind, "file");
    assert_eq!(first.path, "to-stdout");
    assert_eq!(
        first.description.as_deref(),
        Some("This audit device should never fail.")
    );
    assert!(!first.local);
    assert_eq!(first.options["file_path"], "/dev/stdout");
    assert_eq!(first.options["log_raw"], "true");
    let second = &c.audit[1];
    assert!(second.local);
    // Options are strings, as in OpenBao's map[string]string.
    assert_eq!(second.options["hmac_accessor"], "false");
    assert_eq!(second.options["prefix"], "kura:");

    // The JSON form from OpenBao's documentation.
    let j = json_cfg(
        r#"{
      "audit": [
        {"file": {"to-stdout": {
          "description": "This audit device should never fail.",
          "options": {"file_path": "/dev/stdout", "log_raw": "true"}
        }}}
      ]
    }"#,
    );
    assert_eq!(j.audit.len(), 1);
    let mut from_json = j.audit[0].clone();
    from_json.file = first.file.clone();
    assert_eq!(&from_json, first);

    // type and path may be given as keys.
    let k = hcl("audit {\n type = \"file\"\n path = \"p\"\n options { file_path = \"x\" }\n}\n");
    assert_eq!(k.audit[0].kind, "file");
    assert_eq!(k.audit[0].path, "p");
}

#[test]
fn audit_paths_must_be_unique_and_named() {
    let err = hcl_err(
        "audit \"file\" \"a\" { options { file_path = \"x\" } }\naudit \"file\" \"a/\" { options { file_path = \"y\" } }\n",
    )
    .to_string();
    assert!(
        err.contains("audit path \"a/\" is declared more than once"),
        "{err}"
    );
    let err = hcl_err("audit \"file\" { options { file_path = \"x\" } }\n").to_string();
    assert!(err.contains("audit device path must be specified"), "{err}");
}

#[test]
fn seal_blocks() {
    let c = hcl(
        "seal \"shamir\" {\n disabled = \"true\"\n}\nseal \"transit\" {\n address = \"https://vault:8200\"\n key_name = \"k\"\n}\n",
    );
    assert_eq!(c.seals.len(), 2);
    assert!(c.seals[0].disabled);
    assert_eq!(c.seals[1].kind, "transit");
    assert_eq!(c.seals[1].options["key_name"], "k");
    assert!(has_warning(
        &c,
        "seal type \"transit\" is not supported by Kura"
    ));

    let err = hcl_err("seal \"shamir\" {}\nseal \"transit\" {}\n").to_string();
    assert!(err.contains("neither is disabled"), "{err}");
    let err =
        hcl_err("seal \"shamir\" { disabled = true }\nseal \"transit\" { disabled = true }\n")
            .to_string();
    assert!(err.contains("both are disabled"), "{err}");
}

#[test]
fn unknown_options_are_warned_about_everywhere() {
    let c = hcl(r#"
bogus_top = 1
storage "raft" {
  path = "/data"
  raft_bogus = "x"
  retry_join {
    leader_api_addr = "https://a:8200"
    join_bogus = true
  }
}
listener "tcp" {
  foo = "bar"
  telemetry {
    metrics_bogus = true
  }
}
seal "shamir" {
  seal_bogus = 1
}
audit "file" "a" {
  audit_bogus = 1
  options {
    file_path = "x"
    option_bogus = "y"
  }
}
telemetry {
  disable_hostname = true
  telemetry_bogus = 1
}
"#);
    let expected = [
        "unknown option \"bogus_top\" at top level (config.hcl:2)",
        "unknown option \"raft_bogus\" in storage \"raft\" (config.hcl:5)",
        "unknown option \"join_bogus\" in retry_join in storage \"raft\" (config.hcl:8)",
        "unknown option \"foo\" in listener \"tcp\" (config.hcl:12)",
        "unknown option \"metrics_bogus\" in telemetry in listener \"tcp\" (config.hcl:14)",
        "unknown option \"seal_bogus\" in seal \"shamir\" (config.hcl:18)",
        "unknown option \"audit_bogus\" in audit \"file\" \"a\" (config.hcl:21)",
        "unknown option \"option_bogus\" in options of audit \"file\" \"a\" (config.hcl:24)",
        "unknown option \"telemetry_bogus\" in telemetry (config.hcl:29)",
    ];
    for want in expected {
        assert!(
            c.warnings.iter().any(|w| w == want),
            "missing {want:?} in {:#?}",
            c.warnings
        );
    }
    // Telemetry itself is known but not acted on.
    assert!(has_warning(
        &c,
        "option \"telemetry\" at top level is accepted but not supported"
    ));
    // A warning names the option, never its value.
    assert!(!c.warnings.iter().any(|w| w.contains("bar")));
}

#[test]
fn unknown_options_in_json_name_the_file() {
    let c = json_cfg(r#"{"listener": {"tcp": {"address": "127.0.0.1:8200", "foo": 1}}, "zap": 2}"#);
    assert!(c
        .warnings
        .contains(&"unknown option \"foo\" in listener \"tcp\" (config.json)".to_string()));
    assert!(c
        .warnings
        .contains(&"unknown option \"zap\" at top level (config.json)".to_string()));
}

#[test]
fn known_options_not_acted_on_are_warned_about_and_kept() {
    let c = hcl(r#"
plugin_directory = "/usr/lib/openbao/plugins"
telemetry {
  prometheus_retention_time = "24h"
  disable_hostname = true
}
listener "tcp" {
  tls_cipher_suites = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
}
storage "raft" {
  path = "/data"
  autopilot_reconcile_interval = "10s"
}
"#);
    assert_eq!(
        c.plugin_directory.as_deref(),
        Some("/usr/lib/openbao/plugins")
    );
    assert_eq!(
        c.telemetry.as_ref().unwrap()["prometheus_retention_time"],
        json!("24h")
    );
    for option in [
        "option \"plugin_directory\" at top level is accepted but not supported by Kura yet",
        "option \"telemetry\" at top level is accepted but not supported by Kura yet",
        "option \"tls_cipher_suites\" in listener \"tcp\" is accepted but not supported",
        "option \"autopilot_reconcile_interval\" in storage \"raft\" is accepted but not supported",
    ] {
        assert!(
            has_warning(&c, option),
            "missing {option:?} in {:#?}",
            c.warnings
        );
    }
    assert!(has_warning(&c, "(config.hcl:2)"));
}

#[test]
fn every_supported_top_level_key_is_handled_without_warning() {
    let c = hcl(r#"
storage "inmem" {}
ha_storage "raft" { path = "/ha" }
listener "tcp" { tls_disable = true }
seal "shamir" {}
audit "file" "a" { options { file_path = "discard" } }
api_addr = "http://a:8200"
cluster_addr = "https://a:8201"
cluster_name = "c"
disable_clustering = false
ui = "1"
log_level = "info"
log_format = "json"
log_file = "/var/log/kura.log"
pid_file = "/run/kura.pid"
default_lease_ttl = "1h"
max_lease_ttl = "2h"
default_max_request_duration = "1m"
disable_standby_reads = true
unsafe_allow_api_audit_creation = true
allow_audit_log_prefixing = true
raw_storage_endpoint = true
disable_cache = false
cache_size = "1000"
"#);
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    assert!(c.ui);
    assert!(c.disable_standby_reads);
    assert!(c.unsafe_allow_api_audit_creation);
    assert!(c.allow_audit_log_prefixing);
    assert!(c.raw_storage_endpoint);
    assert!(!c.disable_cache);
    assert_eq!(c.cache_size, Some(1000));
    assert_eq!(c.default_lease_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(c.max_lease_ttl, Some(Duration::from_secs(7200)));
    assert_eq!(c.log_format.as_deref(), Some("json"));
    assert_eq!(c.log_file.as_deref(), Some("/var/log/kura.log"));
    assert_eq!(c.pid_file.as_deref(), Some("/run/kura.pid"));
    assert_eq!(c.ha_storage.as_ref().unwrap().kind, "raft");
    assert_eq!(
        c.ha_storage.as_ref().unwrap().redirect_addr.as_deref(),
        Some("http://a:8200")
    );
    // Every supported top-level key appears in the text above.
    let text_keys: Vec<&str> = keys::TOP_LEVEL
        .supported
        .iter()
        .copied()
        .filter(|k| !["backend", "ha_backend", "disable_mlock"].contains(k))
        .collect();
    for key in text_keys {
        assert!(
            key_used(key, &c),
            "supported key {key} is not exercised by this test"
        );
    }
}

/// Whether a supported key shows in the parsed configuration (guards the test above).
fn key_used(key: &str, c: &Config) -> bool {
    match key {
        "storage" => c.storage.is_some(),
        "ha_storage" => c.ha_storage.is_some(),
        "listener" => !c.listeners.is_empty(),
        "seal" => !c.seals.is_empty(),
        "audit" => !c.audit.is_empty(),
        "api_addr" => c.api_addr.is_some(),
        "cluster_addr" => c.cluster_addr.is_some(),
        "cluster_name" => c.cluster_name.is_some(),
        "log_level" => c.log_level.is_some(),
        "log_format" => c.log_format.is_some(),
        "log_file" => c.log_file.is_some(),
        "pid_file" => c.pid_file.is_some(),
        "default_lease_ttl" => c.default_lease_ttl.is_some(),
        "max_lease_ttl" => c.max_lease_ttl.is_some(),
        "default_max_request_duration" => c.default_max_request_duration.is_some(),
        "cache_size" => c.cache_size.is_some(),
        // Booleans set in the text (true or false).
        "disable_clustering"
        | "ui"
        | "disable_standby_reads"
        | "unsafe_allow_api_audit_creation"
        | "allow_audit_log_prefixing"
        | "raw_storage_endpoint"
        | "disable_cache" => true,
        _ => false,
    }
}

#[test]
fn every_supported_listener_key_is_handled_without_warning() {
    let c = json_cfg(
        r#"{"listener": {"tcp": {
      "type": "tcp", "address": "127.0.0.1:8300", "cluster_address": "127.0.0.1:8301",
      "tls_disable": "false", "tls_cert_file": "c", "tls_key_file": "k", "tls_client_ca_file": "ca",
      "tls_min_version": "tls12", "tls_max_version": "tls13",
      "tls_require_and_verify_client_cert": false, "tls_disable_client_certs": true,
      "max_request_size": 10, "max_request_duration": "10s", "max_request_json_memory": 20,
      "max_request_json_strings": 30, "x_forwarded_for_authorized_addrs": ["127.0.0.1"],
      "x_forwarded_for_hop_skips": 2, "x_forwarded_for_reject_not_authorized": true,
      "x_forwarded_for_reject_not_present": true, "http_read_timeout": "1s",
      "http_read_header_timeout": "2s", "http_write_timeout": "3s", "http_idle_timeout": "4s",
      "telemetry": {"unauthenticated_metrics_access": true},
      "custom_response_headers": {"default": {"X-A": ["b"]}},
      "disable_unauthed_rekey_endpoints": true,
      "disable_unauthed_generate_root_endpoints": true
    }}}"#,
    );
    assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    let l = &c.listeners[0];
    assert_eq!(
        keys::LISTENER_TCP.supported.len(),
        l.raw.len(),
        "every supported tcp key is in the text"
    );
    assert!(l.tls_disable_client_certs);
    assert_eq!(l.max_request_json_memory, 20);
    assert_eq!(l.max_request_json_strings, 30);
    assert_eq!(l.x_forwarded_for_hop_skips, 2);
    assert!(l.x_forwarded_for_reject_not_authorized);
    assert!(l.x_forwarded_for_reject_not_present);
    assert_eq!(l.http_write_timeout, Duration::from_secs(3));
    assert_eq!(l.http_idle_timeout, Duration::from_secs(4));
    assert!(l.disable_unauthed_rekey_endpoints);

    let u = json_cfg(
        r#"{"listener": {"unix": {"address": "/tmp/k.sock", "socket_mode": "0600",
        "socket_user": "kura", "socket_group": "kura", "tls_disable": false}}}"#,
    );
    let l = &u.listeners[0];
    assert_eq!(l.socket_mode.as_deref(), Some("0600"));
    assert_eq!(l.socket_user.as_deref(), Some("kura"));
    assert_eq!(l.socket_group.as_deref(), Some("kura"));
    assert!(l.tls_disable, "unix sockets have no TLS");
    assert!(has_warning(
        &u,
        "option \"tls_disable\" in listener \"unix\" is accepted but not supported"
    ));
}

#[test]
fn malformed_hcl_names_file_and_line() {
    let err = hcl_err("ui = true\nlistener \"tcp\" {\n  address = \n}\n");
    match &err {
        ConfigError::Syntax { file, line, .. } => {
            assert_eq!(file, "config.hcl");
            // The value missing after `address =` is reported on that line.
            assert_eq!(*line, 3);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(err.to_string().starts_with("config.hcl:3:"), "{err}");

    let err = hcl_err("storage \"raft\" {\n  path = \"/x\"\n");
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
}

#[test]
fn malformed_json_names_file_and_line() {
    let err = parse_str(
        "{\n  \"ui\": true,\n  \"listener\": \n}\n",
        "c.json",
        Format::Json,
    )
    .unwrap_err();
    match &err {
        ConfigError::Syntax { file, line, .. } => {
            assert_eq!(file, "c.json");
            assert_eq!(*line, 4);
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    let err = parse_str("[1]", "c.json", Format::Json).unwrap_err();
    assert!(err.to_string().contains("must be a JSON object"), "{err}");
}

#[test]
fn type_errors_name_file_line_and_option() {
    let err = hcl_err(
        "listener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = \"maybe\"\n}\n",
    );
    match &err {
        ConfigError::InvalidValue {
            file,
            line,
            option,
            context,
            ..
        } => {
            assert_eq!(file, "config.hcl");
            assert_eq!(*line, Some(3));
            assert_eq!(option, "tls_disable");
            assert_eq!(context, "in listener \"tcp\"");
        }
        other => panic!("expected an invalid value, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "config.hcl:3: invalid value for \"tls_disable\" in listener \"tcp\": cannot parse \"maybe\" as a boolean"
    );

    let err = hcl_err("max_lease_ttl = \"forever\"\n").to_string();
    assert!(
        err.starts_with("config.hcl:1: invalid value for \"max_lease_ttl\""),
        "{err}"
    );
    let err = hcl_err("listener \"tcp\" { max_request_size = \"1mb\" }\n").to_string();
    assert!(err.contains("\"max_request_size\""), "{err}");
    let err = parse_str(r#"{"ui": [true]}"#, "c.json", Format::Json)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "c.json: invalid value for \"ui\" at top level: expected a boolean, found a list"
    );
    let err = hcl_err("storage \"raft\" {\n path = \"/x\"\n performance_multiplier = 11\n}\n")
        .to_string();
    assert!(err.contains("performance_multiplier"), "{err}");
    let err = hcl_err("api_addr { x = 1 }\n").to_string();
    assert!(err.contains("expected a value, found a block"), "{err}");
    let err = hcl_err("storage = \"raft\"\n").to_string();
    assert!(err.contains("expected a block"), "{err}");
}

#[test]
fn lenient_values_like_openbao() {
    let c = hcl(
        "ui = \"true\"\ndisable_cache = 1\ncache_size = \"5000\"\nlistener \"tcp\" { tls_disable = \"1\" }\ndefault_lease_ttl = 3600\nmax_lease_ttl = \"30d\"\n",
    );
    assert!(c.ui);
    assert!(c.disable_cache);
    assert_eq!(c.cache_size, Some(5000));
    assert!(c.listeners[0].tls_disable);
    assert_eq!(c.default_lease_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(c.max_lease_ttl, Some(Duration::from_secs(30 * 86400)));
}

#[test]
fn storage_rules() {
    let err = hcl_err("storage \"inmem\" {}\nstorage \"file\" { path = \"/x\" }\n").to_string();
    assert_eq!(err, "config.hcl:2: only one \"storage\" block is permitted");

    // The legacy name still works; storage wins over backend.
    let c = hcl("backend \"file\" { path = \"/srv\" }\n");
    assert_eq!(c.storage.unwrap().options["path"], json!("/srv"));
    let c = hcl("backend \"file\" { path = \"/srv\" }\nstorage \"inmem\" {}\n");
    assert_eq!(c.storage.as_ref().unwrap().kind, "inmem");
    assert!(has_warning(&c, "\"backend\" at top level is ignored"));

    let c = hcl("storage \"consul\" { address = \"127.0.0.1:8500\" }\n");
    assert_eq!(c.storage.as_ref().unwrap().kind, "consul");
    assert!(has_warning(
        &c,
        "storage type \"consul\" is not supported by Kura"
    ));

    let c = hcl(
        "storage \"postgresql\" {\n connection_url = \"postgres://u:p@h/db\"\n ha_enabled = \"true\"\n redirect_addr = \"http://r:8200\"\n}\n",
    );
    let s = c.storage.unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(s.option_str("ha_enabled").as_deref(), Some("true"));
    assert_eq!(s.redirect_addr.as_deref(), Some("http://r:8200"));
    assert!(!s.options.contains_key("redirect_addr"));

    let err = hcl_err("storage {\n path = \"/x\"\n}\n").to_string();
    assert!(
        err.contains("storage type must be given as a label"),
        "{err}"
    );
}

#[test]
fn retry_join_rules() {
    let err = hcl_err(
        "storage \"raft\" {\n path = \"/x\"\n retry_join {\n  leader_api_addr = \"https://a\"\n  auto_join = \"provider=aws\"\n }\n}\n",
    )
    .to_string();
    assert!(err.starts_with("config.hcl:3: "), "{err}");
    assert!(err.contains("both leader_api_addr and auto_join"), "{err}");
    let err =
        hcl_err("storage \"raft\" {\n retry_join {\n  leader_tls_servername = \"x\"\n }\n}\n")
            .to_string();
    assert!(err.contains("needs leader_api_addr or auto_join"), "{err}");
    let err = hcl_err(
        "storage \"raft\" {\n retry_join {\n  leader_api_addr = \"https://a\"\n  leader_ca_cert = \"pem\"\n  leader_ca_cert_file = \"f\"\n }\n}\n",
    )
    .to_string();
    assert!(
        err.contains("both leader_ca_cert_file and leader_ca_cert"),
        "{err}"
    );

    // The JSON-in-a-string form OpenBao also accepts.
    let c = hcl(
        "storage \"raft\" {\n path = \"/x\"\n retry_join = \"[{\\\"leader_api_addr\\\": \\\"https://b:8200\\\"}]\"\n}\n",
    );
    let raft = c.storage.as_ref().unwrap().raft().unwrap();
    assert_eq!(
        raft.retry_join[0].leader_api_addr.as_deref(),
        Some("https://b:8200")
    );

    let c = hcl("storage \"raft\" {\n path = \"/x\"\n retry_join_as_non_voter = true\n}\n");
    assert!(has_warning(&c, "\"retry_join_as_non_voter\""));
}

#[test]
fn disable_mlock_false_is_an_error_as_in_openbao() {
    let err = hcl_err("disable_mlock = false\n").to_string();
    assert!(err.starts_with("config.hcl:1: "), "{err}");
    assert!(err.contains("disable_mlock"), "{err}");
}

#[test]
fn lease_ttls_are_checked_against_each_other() {
    let err = hcl_err("default_lease_ttl = \"1000h\"\n").to_string();
    assert!(
        err.contains(
            "default_lease_ttl (1000h0m0s) cannot be larger than max_lease_ttl (768h0m0s)"
        ),
        "{err}"
    );
    let c = hcl("default_lease_ttl = \"1h\"\nmax_lease_ttl = \"1000h\"\n");
    assert_eq!(c.max_lease_ttl, Some(Duration::from_secs(1000 * 3600)));
}

#[test]
fn hcl1_only_spellings_are_accepted() {
    // Accepted by `bao server` 2.7.2, rejected by HCL 2.
    let c = hcl(r#"
storage "inmem" {}
listener "tcp" { address = "127.0.0.1:8210", tls_disable = true }
audit "file" "a" { options { file_path = "discard" } }
"ui" = true
listener tcp { address = "127.0.0.1:8211"
  tls_disable = 1 }
"#);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.ui);
    assert_eq!(c.listeners.len(), 2);
    assert!(c.listeners.iter().all(|l| l.tls_disable));
    assert_eq!(c.listeners[1].address, "127.0.0.1:8211");
    assert_eq!(c.listeners[1].file, "config.hcl");
    assert_eq!(c.audit[0].options["file_path"], "discard");
    // Lines are still known for warnings.
    let c = hcl("listener \"tcp\" { address = \"a\", bogus = 1 }\n");
    assert_eq!(
        c.warnings,
        ["unknown option \"bogus\" in listener \"tcp\" (config.hcl:1)"]
    );
}

#[test]
fn hcl_interpolation_is_literal_and_heredocs_work() {
    let c = hcl(
        "api_addr = \"https://${HOST}:8200\"\nstorage \"raft\" {\n path = \"/x\"\n retry_join {\n  leader_api_addr = \"https://a\"\n  leader_ca_cert = <<EOT\n-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\nEOT\n }\n}\n",
    );
    assert_eq!(c.api_addr.as_deref(), Some("https://${HOST}:8200"));
    let join = &c.storage.as_ref().unwrap().raft().unwrap().retry_join[0];
    assert!(join
        .leader_ca_cert
        .as_deref()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----\nabc"));
}

#[test]
fn debug_output_never_shows_secret_options() {
    let c = hcl(
        "storage \"postgresql\" { connection_url = \"postgres://user:hunter2@db/vault\" }\nseal \"transit\" { token = \"s.supersecret\" }\nha_storage \"raft\" {\n path = \"/x\"\n retry_join {\n  leader_api_addr = \"https://a\"\n  leader_client_key = \"PRIVATE-KEY-MATERIAL\"\n }\n}\n",
    );
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("supersecret"), "{debug}");
    assert!(!debug.contains("PRIVATE-KEY-MATERIAL"), "{debug}");
    assert!(debug.contains("connection_url"));
}

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn env_overrides_addresses() {
    let mut c = hcl(RAFT_HCL);
    c.apply_env(env(&[
        ("VAULT_API_ADDR", "https://vault-env:8200"),
        ("VAULT_CLUSTER_ADDR", "https://vault-env:8201"),
    ]));
    assert_eq!(c.api_addr.as_deref(), Some("https://vault-env:8200"));
    assert_eq!(c.cluster_addr.as_deref(), Some("https://vault-env:8201"));
    let storage = c.storage.as_ref().unwrap();
    assert_eq!(
        storage.redirect_addr.as_deref(),
        Some("https://vault-env:8200")
    );
    assert_eq!(
        storage.cluster_addr.as_deref(),
        Some("https://vault-env:8201")
    );

    // BAO_ wins over VAULT_.
    let mut c = hcl(RAFT_HCL);
    c.apply_env(env(&[
        ("BAO_API_ADDR", "https://bao:8200"),
        ("VAULT_API_ADDR", "https://vault:8200"),
        ("BAO_CLUSTER_ADDR", "https://bao:8201"),
    ]));
    assert_eq!(c.api_addr.as_deref(), Some("https://bao:8200"));
    assert_eq!(c.cluster_addr.as_deref(), Some("https://bao:8201"));

    // A BAO_ variable set to "" hides the VAULT_ one and overrides nothing (bao 2.7.2).
    let mut c = hcl(RAFT_HCL);
    c.apply_env(env(&[
        ("BAO_API_ADDR", ""),
        ("VAULT_API_ADDR", "https://vault:8200"),
    ]));
    assert_eq!(c.api_addr.as_deref(), Some("https://10.0.0.1:8200"));

    // Nothing set: nothing changes.
    let mut c = hcl(RAFT_HCL);
    let before = c.clone();
    c.apply_env(env(&[]));
    assert_eq!(c, before);
}

#[test]
fn env_overrides_raft_and_postgres_settings() {
    let mut c = hcl(RAFT_HCL);
    c.apply_env(env(&[
        ("BAO_RAFT_PATH", "/env/raft"),
        ("VAULT_RAFT_NODE_ID", "env-node"),
        ("VAULT_RAFT_RETRY_JOIN_AS_NON_VOTER", "1"),
    ]));
    let storage = c.storage.as_ref().unwrap();
    let raft = storage.raft().unwrap();
    assert_eq!(raft.path.as_deref(), Some("/env/raft"));
    assert_eq!(raft.node_id.as_deref(), Some("env-node"));
    assert!(raft.retry_join_as_non_voter);
    assert_eq!(storage.options["path"], json!("/env/raft"));

    let mut c = hcl("storage \"postgresql\" { connection_url = \"postgres://file\" }\n");
    c.apply_env(env(&[("BAO_PG_CONNECTION_URL", "postgres://env")]));
    assert_eq!(
        c.storage.unwrap().option_str("connection_url").as_deref(),
        Some("postgres://env")
    );
}

#[test]
fn directory_merge() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write(
        "10-base.hcl",
        r#"
storage "inmem" {}
listener "tcp" { address = "127.0.0.1:8200" }
api_addr = "http://first:8200"
log_level = "info"
default_lease_ttl = "1h"
max_lease_ttl = "10h"
audit "file" "a" { options { file_path = "discard" } }
"#,
    );
    write(
        "20-more.json",
        r#"{
          "listener": {"tcp": {"address": "127.0.0.1:8300", "tls_disable": true}},
          "api_addr": "http://second:8200",
          "ui": true,
          "default_lease_ttl": "30m",
          "audit": {"file": {"b": {"options": {"file_path": "discard"}}}},
          "storage": {"raft": {"path": "/data"}}
        }"#,
    );
    // Not configuration, or editor leftovers: skipped.
    write("notes.txt", "not = config");
    write("30-broken.hcl~", "this is {{ not hcl");
    write(".#40-lock.hcl", "also {{ not hcl");
    std::fs::create_dir(dir.path().join("sub.hcl")).unwrap();

    let c = load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(c.files.len(), 2, "{:?}", c.files);
    assert!(c.files[0].ends_with("10-base.hcl"));
    assert!(c.files[1].ends_with("20-more.json"));
    // Listeners and audit devices accumulate, in order.
    assert_eq!(c.listeners.len(), 2);
    assert_eq!(c.listeners[0].address, "127.0.0.1:8200");
    assert_eq!(c.listeners[1].address, "127.0.0.1:8300");
    assert_eq!(
        c.audit.iter().map(|a| a.path.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    // Later scalars win; TTLs take the maximum; booleans are or-ed.
    assert_eq!(c.api_addr.as_deref(), Some("http://second:8200"));
    assert_eq!(c.log_level.as_deref(), Some("info"));
    assert_eq!(c.default_lease_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(c.max_lease_ttl, Some(Duration::from_secs(36000)));
    assert!(c.ui);
    // One storage block overall: the later file's, with a warning naming both files.
    let storage = c.storage.as_ref().unwrap();
    assert_eq!(storage.kind, "raft");
    assert!(storage.file.ends_with("20-more.json"));
    assert_eq!(storage.redirect_addr.as_deref(), Some("http://second:8200"));
    assert!(c.warnings.iter().any(|w| w.contains("storage \"inmem\"")
        && w.contains("10-base.hcl")
        && w.contains("20-more.json")));

    // The same directory plus one of its files, named explicitly: read once.
    let again = load(&[dir.path().to_path_buf(), dir.path().join("10-base.hcl")]).unwrap();
    assert_eq!(again.files.len(), 2);
    assert_eq!(again.listeners.len(), 2);

    // Files given one by one merge in the order given.
    let reversed = load(&[
        dir.path().join("20-more.json"),
        dir.path().join("10-base.hcl"),
    ])
    .unwrap();
    assert_eq!(reversed.api_addr.as_deref(), Some("http://first:8200"));
    assert_eq!(reversed.storage.as_ref().unwrap().kind, "inmem");
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.hcl");
    std::fs::write(&path, "ui = true\n\nlistener \"tcp\" {\n").unwrap();
    let err = load(std::slice::from_ref(&path)).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(&format!("{}:", path.display())), "{text}");

    let missing = dir.path().join("missing.hcl");
    let err = load(std::slice::from_ref(&missing)).unwrap_err();
    assert!(
        matches!(err, ConfigError::Io { ref path, .. } if *path == missing),
        "{err}"
    );

    // A non-.json file whose text is JSON is read as JSON (OpenBao sniffs the content too).
    let conf = dir.path().join("server.conf");
    std::fs::write(&conf, r#"{"ui": true}"#).unwrap();
    assert!(load(&[conf]).unwrap().ui);

    let empty = tempfile::tempdir().unwrap();
    let c = load(&[empty.path().to_path_buf()]).unwrap();
    assert!(has_warning(&c, "no *.hcl or *.json configuration files"));
}

#[test]
fn format_from_path() {
    assert_eq!(Format::from_path(Path::new("a/b.json")), Format::Json);
    assert_eq!(Format::from_path(Path::new("a/b.hcl")), Format::Hcl);
    assert_eq!(Format::from_path(Path::new("config")), Format::Hcl);
}
