//! The table of configuration keys Kura knows, section by section.
//!
//! Every key falls into one of three classes:
//! - **supported**: parsed into a typed field of [`Config`](crate::Config) and acted on;
//! - **not acted on**: a documented OpenBao option that Kura accepts (and may keep, raw) but does
//!   not implement yet; loading it produces a warning saying so;
//! - **unknown**: anything else; loading it produces a warning naming the option and the file.
//!
//! Nothing is ever ignored silently. The tables follow OpenBao 2.7's documentation and parser.

/// The known keys of one configuration section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTable {
    /// Name of the section, for messages (`listener "tcp"`, `storage "raft"`, ...).
    pub section: &'static str,
    /// Keys parsed into typed fields and acted on.
    pub supported: &'static [&'static str],
    /// Documented OpenBao keys that Kura accepts without acting on them yet.
    pub not_acted_on: &'static [&'static str],
}

/// How a key is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// Parsed and acted on.
    Supported,
    /// Accepted, with a warning that Kura does not act on it yet.
    NotActedOn,
    /// Not an OpenBao option Kura knows: warned about.
    Unknown,
}

impl KeyTable {
    /// Classifies a key of this section.
    pub fn classify(&self, key: &str) -> KeyClass {
        if self.supported.contains(&key) {
            KeyClass::Supported
        } else if self.not_acted_on.contains(&key) {
            KeyClass::NotActedOn
        } else {
            KeyClass::Unknown
        }
    }
}

/// Top-level keys.
pub const TOP_LEVEL: KeyTable = KeyTable {
    section: "top level",
    supported: &[
        "storage",
        "backend",
        "ha_storage",
        "ha_backend",
        "listener",
        "seal",
        "audit",
        "api_addr",
        "cluster_addr",
        "cluster_name",
        "disable_clustering",
        "ui",
        "log_level",
        "log_format",
        "log_file",
        "pid_file",
        "disable_mlock",
        "default_lease_ttl",
        "max_lease_ttl",
        "default_max_request_duration",
        "disable_standby_reads",
        "unsafe_allow_api_audit_creation",
        "allow_audit_log_prefixing",
        "raw_storage_endpoint",
        "disable_cache",
        "cache_size",
    ],
    not_acted_on: &[
        "telemetry",
        "plugin_directory",
        "plugin_file_uid",
        "plugin_file_permissions",
        "plugin",
        "plugins",
        "plugin_auto_download",
        "plugin_auto_register",
        "plugin_download_behavior",
        "plugin_oci_auth",
        "introspection_endpoint",
        "user_lockout",
        "service_registration",
        "initialize",
        "hsm",
        "kms",
        "entropy",
        "cluster_cipher_suites",
        "disable_printable_check",
        "disable_performance_standby",
        "disable_sealwrap",
        "disable_indexing",
        "disable_sentinel_trace",
        "enable_response_header_hostname",
        "enable_response_header_raft_node_id",
        "log_requests_level",
        "detect_deadlocks",
        "imprecise_lease_role_tracking",
        "unsafe_cross_namespace_identity",
        "allow_unauthenticated_workflows",
        "disable_ssct_tokens",
        "administrative_namespace_path",
        "log_rotate_bytes",
        "log_rotate_duration",
        "log_rotate_max_files",
    ],
};

/// Keys of a `listener "tcp"` block.
pub const LISTENER_TCP: KeyTable = KeyTable {
    section: "listener \"tcp\"",
    supported: &[
        "type",
        "address",
        "cluster_address",
        "tls_disable",
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "tls_min_version",
        "tls_max_version",
        "tls_require_and_verify_client_cert",
        "tls_disable_client_certs",
        "max_request_size",
        "max_request_duration",
        "max_request_json_memory",
        "max_request_json_strings",
        "x_forwarded_for_authorized_addrs",
        "x_forwarded_for_hop_skips",
        "x_forwarded_for_reject_not_authorized",
        "x_forwarded_for_reject_not_present",
        "http_read_timeout",
        "http_read_header_timeout",
        "http_write_timeout",
        "http_idle_timeout",
        "telemetry",
        "custom_response_headers",
        "disable_unauthed_rekey_endpoints",
        "disable_unauthed_generate_root_endpoints",
    ],
    not_acted_on: &[
        "purpose",
        "role",
        "tls_cipher_suites",
        "tls_prefer_server_cipher_suites",
        "tls_acme_cache_path",
        "tls_acme_ca_directory",
        "tls_acme_test_ca_directory",
        "tls_acme_ca_root",
        "tls_acme_eab_key_id",
        "tls_acme_eab_mac_key",
        "tls_acme_key_type",
        "tls_acme_email",
        "tls_acme_domains",
        "tls_acme_disable_http_challenge",
        "tls_acme_disable_alpn_challenge",
        "proxy_protocol_behavior",
        "proxy_protocol_authorized_addrs",
        "x_forwarded_for_client_cert_header",
        "x_forwarded_for_client_cert_decoders",
        "x_forwarded_for_client_cert_keep_not_forwarded",
        "x_forwarded_for_client_cert_keep_unauthorized",
        "require_request_header",
        "profiling",
        "inflight_requests_logging",
        "cors_enabled",
        "cors_allowed_origins",
        "cors_allowed_headers",
        "agent_api",
        "proxy_api",
    ],
};

/// Keys of a `listener "unix"` block.
pub const LISTENER_UNIX: KeyTable = KeyTable {
    section: "listener \"unix\"",
    supported: &[
        "type",
        "address",
        "socket_mode",
        "socket_user",
        "socket_group",
        "max_request_size",
        "max_request_duration",
        "max_request_json_memory",
        "max_request_json_strings",
        "http_read_timeout",
        "http_read_header_timeout",
        "http_write_timeout",
        "http_idle_timeout",
        "telemetry",
        "custom_response_headers",
        "disable_unauthed_rekey_endpoints",
        "disable_unauthed_generate_root_endpoints",
    ],
    // A Unix socket has no TLS, cluster port or proxy in front: these TCP options are accepted
    // (OpenBao shares one listener schema) but have no effect there.
    not_acted_on: &[
        "purpose",
        "role",
        "require_request_header",
        "profiling",
        "inflight_requests_logging",
        "cors_enabled",
        "cors_allowed_origins",
        "cors_allowed_headers",
        "agent_api",
        "proxy_api",
        "cluster_address",
        "tls_disable",
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "tls_min_version",
        "tls_max_version",
        "tls_require_and_verify_client_cert",
        "tls_disable_client_certs",
        "tls_cipher_suites",
        "x_forwarded_for_authorized_addrs",
        "x_forwarded_for_hop_skips",
        "x_forwarded_for_reject_not_authorized",
        "x_forwarded_for_reject_not_present",
        "proxy_protocol_behavior",
        "proxy_protocol_authorized_addrs",
    ],
};

/// Keys of a listener's `telemetry` block.
pub const LISTENER_TELEMETRY: KeyTable = KeyTable {
    section: "telemetry",
    supported: &["unauthenticated_metrics_access"],
    not_acted_on: &["disallow_metrics", "metrics_only", "metrics_path"],
};

/// Keys common to every storage backend (OpenBao takes them out before the backend sees them).
pub const STORAGE_COMMON: &[&str] = &[
    "redirect_addr",
    "advertise_addr",
    "cluster_addr",
    "disable_clustering",
];

/// Storage backends Kura implements, with their keys.
pub const STORAGE_BACKENDS: &[KeyTable] = &[
    KeyTable {
        section: "inmem",
        supported: &[],
        not_acted_on: &[],
    },
    KeyTable {
        section: "file",
        supported: &["path"],
        not_acted_on: &[],
    },
    KeyTable {
        section: "raft",
        supported: &[
            "path",
            "node_id",
            "retry_join",
            "retry_join_as_non_voter",
            "performance_multiplier",
            "trailing_logs",
            "snapshot_threshold",
            "snapshot_interval",
            "max_entry_size",
        ],
        not_acted_on: &[
            "max_transaction_size",
            "autopilot_reconcile_interval",
            "autopilot_update_interval",
            "autopilot_upgrade_version",
            "autopilot_redundancy_zone",
        ],
    },
    KeyTable {
        section: "postgresql",
        supported: &[
            "connection_url",
            "table",
            "ha_enabled",
            "ha_table",
            "max_parallel",
            "max_idle_connections",
            "skip_create_table",
            "max_connect_retries",
        ],
        not_acted_on: &[],
    },
];

/// Keys of a raft `retry_join` block.
pub const RAFT_RETRY_JOIN: KeyTable = KeyTable {
    section: "retry_join",
    supported: &[
        "leader_api_addr",
        "leader_tls_servername",
        "leader_ca_cert_file",
        "leader_client_cert_file",
        "leader_client_key_file",
        "leader_ca_cert",
        "leader_client_cert",
        "leader_client_key",
    ],
    not_acted_on: &["auto_join", "auto_join_scheme", "auto_join_port"],
};

/// Seal types Kura implements, with their keys (besides [`SEAL_COMMON`]).
pub const SEALS: &[KeyTable] = &[KeyTable {
    section: "shamir",
    supported: &[],
    not_acted_on: &[],
}];

/// Keys every seal block accepts.
pub const SEAL_COMMON: &[&str] = &["disabled", "name", "priority", "purpose"];

/// Keys of an `audit` block itself.
pub const AUDIT_BLOCK: KeyTable = KeyTable {
    section: "audit",
    supported: &["type", "path", "description", "options", "local"],
    not_acted_on: &[],
};

/// Options every audit device accepts.
pub const AUDIT_COMMON_OPTIONS: &[&str] = &[
    "elide_list_responses",
    "format",
    "hmac_accessor",
    "log_raw",
    "prefix",
    "skip_test",
    "fallback",
];

/// Audit device types OpenBao documents, with their own options.
pub const AUDIT_DEVICES: &[KeyTable] = &[
    KeyTable {
        section: "file",
        supported: &["file_path", "path", "mode"],
        not_acted_on: &[],
    },
    KeyTable {
        section: "syslog",
        supported: &["facility", "tag"],
        not_acted_on: &[],
    },
    KeyTable {
        section: "socket",
        supported: &["address", "socket_type", "write_timeout"],
        not_acted_on: &[],
    },
    KeyTable {
        section: "http",
        supported: &["uri", "headers"],
        not_acted_on: &[],
    },
];

/// Keys of the top-level `telemetry` block (all kept raw; Kura does not act on them yet).
pub const TELEMETRY: &[&str] = &[
    "usage_gauge_period",
    "maximum_gauge_cardinality",
    "disable_hostname",
    "enable_hostname_label",
    "lease_metrics_epsilon",
    "num_lease_metrics_buckets",
    "add_lease_metrics_namespace_labels",
    "filter_default",
    "prefix_filter",
    "metrics_prefix",
    "statsite_address",
    "statsd_address",
    "dogstatsd_addr",
    "dogstatsd_tags",
    "prometheus_retention_time",
    "circonus_api_token",
    "circonus_api_app",
    "circonus_api_url",
    "circonus_submission_interval",
    "circonus_submission_url",
    "circonus_check_id",
    "circonus_check_force_metric_activation",
    "circonus_check_instance_id",
    "circonus_check_search_tag",
    "circonus_check_tags",
    "circonus_check_display_name",
    "circonus_broker_id",
    "circonus_broker_select_tag",
    "stackdriver_project_id",
    "stackdriver_location",
    "stackdriver_namespace",
    "stackdriver_debug_logs",
];

/// The key table of a storage backend Kura implements.
pub fn storage_backend(kind: &str) -> Option<&'static KeyTable> {
    STORAGE_BACKENDS.iter().find(|t| t.section == kind)
}

/// The key table of a seal type Kura implements.
pub fn seal(kind: &str) -> Option<&'static KeyTable> {
    SEALS.iter().find(|t| t.section == kind)
}

/// The option table of an audit device type.
pub fn audit_device(kind: &str) -> Option<&'static KeyTable> {
    AUDIT_DEVICES.iter().find(|t| t.section == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_tables() -> Vec<&'static KeyTable> {
        let mut tables = vec![
            &TOP_LEVEL,
            &LISTENER_TCP,
            &LISTENER_UNIX,
            &LISTENER_TELEMETRY,
            &RAFT_RETRY_JOIN,
            &AUDIT_BLOCK,
        ];
        tables.extend(STORAGE_BACKENDS);
        tables.extend(SEALS);
        tables.extend(AUDIT_DEVICES);
        tables
    }

    #[test]
    fn no_key_is_in_two_classes_or_listed_twice() {
        for table in all_tables() {
            let mut seen = std::collections::HashSet::new();
            for key in table.supported.iter().chain(table.not_acted_on) {
                assert!(seen.insert(*key), "{key} listed twice in {}", table.section);
            }
        }
    }

    #[test]
    fn classify() {
        assert_eq!(TOP_LEVEL.classify("api_addr"), KeyClass::Supported);
        assert_eq!(TOP_LEVEL.classify("plugin_directory"), KeyClass::NotActedOn);
        assert_eq!(TOP_LEVEL.classify("foo"), KeyClass::Unknown);
        assert!(storage_backend("raft").is_some());
        assert!(storage_backend("consul").is_none());
        assert!(seal("shamir").is_some());
        assert!(audit_device("file").is_some());
    }
}
