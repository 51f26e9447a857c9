//! One ACL policy: its text, and the path rules decoded from it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::capability::Capability;
use crate::duration::parse_duration_second;
use crate::syntax::{parse_document, Item, Node};
use crate::template::{has_templating, KeysFilterPath, TemplateError, TemplateOptions};

/// A parsed ACL policy. It keeps the original text for reads (`sys/policies/acl/:name`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    name: String,
    raw: String,
    paths: Vec<PathRules>,
    templated: bool,
    template_options: TemplateOptions,
}

/// The rules of one `path "..." { ... }` stanza.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRules {
    /// The path as written in the policy.
    pattern: String,
    /// Matching form of the path; `None` while it holds identity templates, which are filled
    /// in when an ACL is built.
    compiled: Option<CompiledPath>,
    permissions: Permissions,
    expiration: Option<SystemTime>,
}

/// How a rule's path matches request paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledPath {
    /// The path with one leading `/` removed and, for a plain glob, the trailing `*` removed.
    pub path: String,
    /// Ends in `*` (prefix match) and has no `+` segment.
    pub is_prefix: bool,
    /// Has a `+` segment; then a trailing `*` stays in `path`.
    pub has_segment_wildcards: bool,
}

/// What a path rule grants, and the constraints it puts on requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Permissions {
    /// Granted capabilities; exactly [`Capability::DENY`] when the rule denies.
    pub capabilities: Capability,
    /// A response-wrapped request must ask for at least this TTL (zero: no minimum).
    pub min_wrapping_ttl: Duration,
    /// A request must be response-wrapped with at most this TTL (zero: no maximum).
    pub max_wrapping_ttl: Duration,
    /// Keys (lowercased) a request may carry, each with the values it may take (empty list:
    /// any value). `*` allows every key. Empty map: no restriction.
    pub allowed_parameters: BTreeMap<String, Vec<Value>>,
    /// Keys (lowercased) a request may not carry, with the forbidden values (empty list: any
    /// value). `*` forbids every key.
    pub denied_parameters: BTreeMap<String, Vec<Value>>,
    /// Keys a request must carry (compared against the lowercased spelling).
    pub required_parameters: Vec<String>,
    /// MFA methods named by the rule (kept for the pipeline; policies only carry them).
    pub mfa_methods: Vec<String>,
    /// Largest `limit` a LIST/SCAN may ask for; zero means no limit.
    pub pagination_limit: u64,
    /// Template naming the path each listed key must be readable at to stay in the answer.
    pub response_keys_filter_path: Option<KeysFilterPath>,
}

/// An invalid key in a policy, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidKey {
    /// The key as written.
    pub key: String,
    /// 1-based line of the key's `=`; 0 for a block (`key { ... }`), as OpenBao reports it.
    pub line: usize,
}

/// Why a policy was rejected. The messages follow OpenBao's (`failed to parse policy: ...`);
/// upstream they become an HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not valid HCL or JSON.
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    /// The top level holds keys other than `name` and `path`.
    #[error("failed to parse policy: {}", MultiError(.0))]
    InvalidKeys(Vec<InvalidKey>),
    /// A path stanza holds keys a path does not take.
    #[error("failed to parse policy: path {path:?}: {}", MultiError(.keys))]
    InvalidPathKeys {
        /// The path as written.
        path: String,
        /// The offending keys.
        keys: Vec<InvalidKey>,
    },
    /// A value has the wrong type (e.g. `capabilities = "read"`).
    #[error("failed to parse policy: path {path:?}: path {path:?}: {reason}")]
    InvalidValue {
        /// The path as written (empty for top-level values).
        path: String,
        /// The key whose value is wrong.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A capability keyword OpenBao does not know.
    #[error(
        "failed to parse policy: path {path:?}: path {path:?}: invalid capability {capability:?}"
    )]
    InvalidCapability {
        /// The path as written.
        path: String,
        /// The unknown keyword.
        capability: String,
    },
    /// A legacy `policy = "..."` value other than deny/read/write/sudo.
    #[error("failed to parse policy: path {path:?}: path {path:?}: invalid policy {policy:?}")]
    InvalidLegacyPolicy {
        /// The path as written.
        path: String,
        /// The unknown value.
        policy: String,
    },
    /// `+*` in a path.
    #[error("failed to parse policy: path {path:?}: path {path:?}: invalid use of wildcards ('+*' is forbidden)")]
    ForbiddenWildcard {
        /// The path as written.
        path: String,
    },
    /// Unbalanced `{{`/`}}` in a path.
    #[error(
        "failed to parse policy: path {path:?}: failed to validate policy templating: {reason}"
    )]
    InvalidTemplate {
        /// The path as written.
        path: String,
        /// The template problem.
        reason: TemplateError,
    },
    /// `min_wrapping_ttl` or `max_wrapping_ttl` is not a duration.
    #[error("failed to parse policy: path {path:?}: error parsing {field}: {reason}")]
    InvalidDuration {
        /// The path as written.
        path: String,
        /// `min_wrapping_ttl` or `max_wrapping_ttl`.
        field: &'static str,
        /// Parser message.
        reason: String,
    },
    /// `max_wrapping_ttl` below `min_wrapping_ttl` in one stanza.
    #[error("failed to parse policy: path {path:?}: max_wrapping_ttl cannot be less than min_wrapping_ttl")]
    WrappingTtlOrder {
        /// The path as written.
        path: String,
    },
    /// `expiration` is not an RFC 3339 time or Unix seconds.
    #[error("failed to parse policy: path {path:?}: path {path:?}: invalid expiration time: could not parse string as date and time")]
    InvalidExpiration {
        /// The path as written.
        path: String,
    },
    /// A bad `list_scan_response_keys_filter_path`.
    #[error("failed to parse policy: path {path:?}: {reason}")]
    InvalidFilterPath {
        /// The path as written.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A bad `control_group` stanza.
    #[error("failed to parse policy: path {path:?}: error handling control_group: 1 error occurred:\n\t* {reason}\n\n")]
    InvalidControlGroup {
        /// The path as written.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Formats a list of invalid keys as Go's multierror does.
struct MultiError<'a>(&'a [InvalidKey]);

impl fmt::Display for MultiError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        if n == 1 {
            f.write_str("1 error occurred:\n")?;
        } else {
            writeln!(f, "{n} errors occurred:")?;
        }
        for key in self.0 {
            writeln!(f, "\t* invalid key {:?} on line {}", key.key, key.line)?;
        }
        f.write_str("\n")
    }
}

const PATH_KEYS: &[&str] = &[
    "comment",
    "policy",
    "capabilities",
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "min_wrapping_ttl",
    "max_wrapping_ttl",
    "mfa_methods",
    "pagination_limit",
    "expiration",
    "list_scan_response_keys_filter_path",
    "control_group",
];

impl Policy {
    /// Parses policy text (HCL or JSON). The name is lowercased as OpenBao does; the text is
    /// kept verbatim. Empty text parses to a policy without rules (the HTTP layer is the one
    /// that refuses an empty `policy` parameter).
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let doc = parse_document(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;

        let invalid: Vec<InvalidKey> = doc
            .items
            .iter()
            .filter(|i| i.key() != "name" && i.key() != "path")
            .map(|i| InvalidKey {
                key: i.key().to_string(),
                line: i.line,
            })
            .collect();
        if !invalid.is_empty() {
            return Err(PolicyError::InvalidKeys(invalid));
        }

        let mut paths = Vec::new();
        let mut templated = false;
        for item in doc.items.iter().filter(|i| i.key() == "path") {
            for (pattern, body) in path_stanzas(item, doc.json)? {
                let rules = parse_path(pattern, body)?;
                templated |= rules.compiled.is_none();
                paths.push(rules);
            }
        }

        Ok(Policy {
            name: crate::normalize_name(name),
            raw: text.to_string(),
            paths,
            templated,
            template_options: TemplateOptions::default(),
        })
    }

    /// Sets what identity templates in this policy may substitute (stored with the policy,
    /// outside its text).
    pub fn with_template_options(mut self, options: TemplateOptions) -> Policy {
        self.template_options = options;
        self
    }

    /// The policy name, lowercased.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The policy text exactly as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The path rules, in the order they appear.
    pub fn paths(&self) -> &[PathRules] {
        &self.paths
    }

    /// True when some path holds identity templates (`{{identity.entity.id}}`...).
    pub fn is_templated(&self) -> bool {
        self.templated
    }

    /// The identity-template switches of this policy.
    pub fn template_options(&self) -> TemplateOptions {
        self.template_options
    }
}

impl PathRules {
    /// The path as written in the policy.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// What the rule grants and requires.
    pub fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    /// When the rule stops applying, if it expires.
    pub fn expiration(&self) -> Option<SystemTime> {
        self.expiration
    }

    /// True when the path holds identity templates.
    pub fn is_templated(&self) -> bool {
        self.compiled.is_none()
    }

    /// True when the path is a plain glob (`secret/*`): a prefix match.
    pub fn is_prefix(&self) -> bool {
        self.compiled.as_ref().is_some_and(|c| c.is_prefix)
    }

    /// True when the path has `+` segments.
    pub fn has_segment_wildcards(&self) -> bool {
        self.compiled
            .as_ref()
            .is_some_and(|c| c.has_segment_wildcards)
    }

    pub(crate) fn compiled(&self) -> Option<&CompiledPath> {
        self.compiled.as_ref()
    }
}

/// Splits a `path` item into (pattern, body) pairs.
///
/// In HCL the pattern is the item's second key (`path "x" { ... }`; further labels are
/// ignored, and an item without one is a rule for the path `path`, as in OpenBao). In JSON
/// the value is an object keyed by pattern (`"path": {"x": {...}}`) or a list of such objects.
fn path_stanzas(item: &Item, json: bool) -> Result<Vec<(&str, &[Item])>, PolicyError> {
    let mut out = Vec::new();
    if !json {
        let pattern = item.keys.get(1).map(String::as_str).unwrap_or("path");
        out.push((pattern, object_body(pattern, &item.value)?));
        return Ok(out);
    }
    let not_object = |other: &Node| {
        value_error(
            "path",
            "path",
            format!("expected an object, got {}", other.type_name()),
        )
    };
    let groups: Vec<&[Item]> = match &item.value {
        Node::Object(items) => vec![items.as_slice()],
        Node::List(list) => list
            .iter()
            .map(|entry| match entry {
                Node::Object(items) => Ok(items.as_slice()),
                other => Err(not_object(other)),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(not_object(other)),
    };
    for stanza in groups.into_iter().flatten() {
        out.push((stanza.key(), object_body(stanza.key(), &stanza.value)?));
    }
    Ok(out)
}

fn object_body<'a>(pattern: &str, node: &'a Node) -> Result<&'a [Item], PolicyError> {
    match node {
        Node::Object(items) => Ok(items),
        other => Err(value_error(
            pattern,
            "path",
            format!("expected an object, got {}", other.type_name()),
        )),
    }
}

/// Works out how a path pattern matches (leading `/`, `+` segments, trailing `*`).
pub(crate) fn compile_path(pattern: &str) -> Result<CompiledPath, PolicyError> {
    let path = pattern.strip_prefix('/').unwrap_or(pattern);
    if path.contains("+*") {
        return Err(PolicyError::ForbiddenWildcard {
            path: pattern.to_string(),
        });
    }
    let has_segment_wildcards = path == "+" || path.contains("/+") || path.starts_with("+/");
    let mut compiled = CompiledPath {
        path: path.to_string(),
        is_prefix: false,
        has_segment_wildcards,
    };
    if !has_segment_wildcards {
        if let Some(stripped) = path.strip_suffix('*') {
            compiled.path = stripped.to_string();
            compiled.is_prefix = true;
        }
    }
    Ok(compiled)
}

fn value_error(path: &str, field: &str, reason: impl Into<String>) -> PolicyError {
    PolicyError::InvalidValue {
        path: path.to_string(),
        field: field.to_string(),
        reason: format!("{field}: {}", reason.into()),
    }
}

/// A scalar as HCL 1 decodes it into a string field.
fn scalar_string(node: &Node) -> Option<String> {
    match node {
        Node::String(s) => Some(s.clone()),
        Node::Number(n) => Some(n.to_string()),
        Node::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_field(path: &str, field: &str, node: &Node) -> Result<String, PolicyError> {
    scalar_string(node).ok_or_else(|| {
        value_error(
            path,
            field,
            format!("expected a string, got {}", node.type_name()),
        )
    })
}

fn string_list(path: &str, field: &str, node: &Node) -> Result<Vec<String>, PolicyError> {
    match node {
        Node::List(items) => items
            .iter()
            .map(|item| {
                scalar_string(item).ok_or_else(|| {
                    value_error(
                        path,
                        field,
                        format!("expected a list of strings, found a {}", item.type_name()),
                    )
                })
            })
            .collect(),
        other => Err(value_error(
            path,
            field,
            format!("expected a list of strings, got {}", other.type_name()),
        )),
    }
}

fn parameter_map(
    path: &str,
    field: &str,
    node: &Node,
    into: &mut BTreeMap<String, Vec<Value>>,
) -> Result<(), PolicyError> {
    let Node::Object(entries) = node else {
        return Err(value_error(
            path,
            field,
            format!(
                "expected an object of key = [values], got {}",
                node.type_name()
            ),
        ));
    };
    for entry in entries {
        let Node::List(values) = &entry.value else {
            return Err(value_error(
                path,
                field,
                format!(
                    "expected a list of values for {:?}, got {}",
                    entry.key(),
                    entry.value.type_name()
                ),
            ));
        };
        into.insert(
            entry.key().to_lowercase(),
            values.iter().map(Node::to_json).collect(),
        );
    }
    Ok(())
}

fn int_field(path: &str, field: &str, node: &Node) -> Result<i64, PolicyError> {
    match node {
        Node::Number(n) => n
            .as_i64()
            .ok_or_else(|| value_error(path, field, format!("expected an integer, got {n}"))),
        Node::String(s) => s.parse::<i64>().map_err(|_| PolicyError::InvalidValue {
            path: path.to_string(),
            field: field.to_string(),
            reason: format!("strconv.ParseInt: parsing {s:?}: invalid syntax"),
        }),
        other => Err(value_error(
            path,
            field,
            format!("expected an integer, got {}", other.type_name()),
        )),
    }
}

fn to_duration(nanos: i64) -> Duration {
    // A negative duration behaves like an unset one in every check OpenBao makes.
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// Decodes one path stanza.
fn parse_path(pattern: &str, body: &[Item]) -> Result<PathRules, PolicyError> {
    let templated = has_templating(pattern).map_err(|reason| PolicyError::InvalidTemplate {
        path: pattern.to_string(),
        reason,
    })?;

    let invalid: Vec<InvalidKey> = body
        .iter()
        .filter(|i| !PATH_KEYS.contains(&i.key()))
        .map(|i| InvalidKey {
            key: i.key().to_string(),
            line: i.line,
        })
        .collect();
    if !invalid.is_empty() {
        return Err(PolicyError::InvalidPathKeys {
            path: pattern.to_string(),
            keys: invalid,
        });
    }

    // As HCL 1 decodes repeated keys: lists add up, maps merge, the last scalar wins.
    let mut legacy_policy = String::new();
    let mut capability_names: Vec<String> = Vec::new();
    let mut allowed = BTreeMap::new();
    let mut denied = BTreeMap::new();
    let mut required: Vec<String> = Vec::new();
    let mut min_ttl_node: Option<&Node> = None;
    let mut max_ttl_node: Option<&Node> = None;
    let mut mfa_methods: Vec<String> = Vec::new();
    let mut pagination_limit: i64 = 0;
    let mut expiration_raw = String::new();
    let mut filter_raw = String::new();
    let mut control_group: Option<&Node> = None;
    for entry in body {
        let field = entry.key();
        let value = &entry.value;
        match field {
            "comment" => {}
            "policy" => legacy_policy = string_field(pattern, field, value)?,
            "capabilities" => capability_names.extend(string_list(pattern, field, value)?),
            "allowed_parameters" => parameter_map(pattern, field, value, &mut allowed)?,
            "denied_parameters" => parameter_map(pattern, field, value, &mut denied)?,
            "required_parameters" => required.extend(string_list(pattern, field, value)?),
            "min_wrapping_ttl" => min_ttl_node = Some(value),
            "max_wrapping_ttl" => max_ttl_node = Some(value),
            "mfa_methods" => mfa_methods.extend(string_list(pattern, field, value)?),
            "pagination_limit" => pagination_limit = int_field(pattern, field, value)?,
            "expiration" => expiration_raw = string_field(pattern, field, value)?,
            "list_scan_response_keys_filter_path" => {
                filter_raw = string_field(pattern, field, value)?
            }
            "control_group" => control_group = Some(value),
            _ => unreachable!("keys were checked above"),
        }
    }

    if let Some(cg) = control_group {
        validate_control_group(cg).map_err(|reason| PolicyError::InvalidControlGroup {
            path: pattern.to_string(),
            reason,
        })?;
    }

    let expiration = if expiration_raw.is_empty() {
        None
    } else {
        Some(parse_absolute_time(&expiration_raw).ok_or_else(|| {
            PolicyError::InvalidExpiration {
                path: pattern.to_string(),
            }
        })?)
    };

    let compiled = compile_path(pattern)?;

    // Legacy `policy = "..."` maps onto capabilities.
    if !legacy_policy.is_empty() {
        let extra: &[&str] = match legacy_policy.as_str() {
            "deny" => {
                capability_names = vec!["deny".to_string()];
                &[]
            }
            "read" => &["read", "list"],
            "write" => &["create", "read", "update", "delete", "list"],
            "sudo" => &["create", "read", "update", "delete", "list", "sudo"],
            other => {
                return Err(PolicyError::InvalidLegacyPolicy {
                    path: pattern.to_string(),
                    policy: other.to_string(),
                })
            }
        };
        capability_names.extend(extra.iter().map(|s| s.to_string()));
    }

    let mut permissions = Permissions::default();
    for name in &capability_names {
        let cap = Capability::parse(name).map_err(|_| PolicyError::InvalidCapability {
            path: pattern.to_string(),
            capability: name.clone(),
        })?;
        if cap == Capability::DENY {
            // A deny rule carries nothing else; the rest of the stanza is not even read.
            permissions.capabilities = Capability::DENY;
            return Ok(PathRules {
                pattern: pattern.to_string(),
                compiled: (!templated).then_some(compiled),
                permissions,
                expiration,
            });
        }
        permissions.capabilities |= cap;
    }

    permissions.allowed_parameters = allowed;
    permissions.denied_parameters = denied;

    let mut min_ttl: i64 = 0;
    let mut max_ttl: i64 = 0;
    if let Some(node) = min_ttl_node {
        min_ttl = parse_duration_second(node).map_err(|reason| PolicyError::InvalidDuration {
            path: pattern.to_string(),
            field: "min_wrapping_ttl",
            reason,
        })?;
    }
    if let Some(node) = max_ttl_node {
        max_ttl = parse_duration_second(node).map_err(|reason| PolicyError::InvalidDuration {
            path: pattern.to_string(),
            field: "max_wrapping_ttl",
            reason,
        })?;
    }
    permissions.mfa_methods = mfa_methods;
    if min_ttl != 0 && max_ttl != 0 && max_ttl < min_ttl {
        return Err(PolicyError::WrappingTtlOrder {
            path: pattern.to_string(),
        });
    }
    permissions.min_wrapping_ttl = to_duration(min_ttl);
    permissions.max_wrapping_ttl = to_duration(max_ttl);
    permissions.required_parameters = required;

    if !filter_raw.is_empty() {
        let filter_error = |reason: String| PolicyError::InvalidFilterPath {
            path: pattern.to_string(),
            reason,
        };
        if !permissions.capabilities.contains(Capability::LIST) {
            return Err(filter_error(
                "list_scan_response_keys_filter_path needs to be used on a path with the list capability"
                    .to_string(),
            ));
        }
        let template = KeysFilterPath::parse(&filter_raw).map_err(|e| {
            filter_error(format!(
                "unable to compile template for list_scan_response_keys_filter_path: {e}"
            ))
        })?;
        if !template.uses_key() {
            return Err(filter_error(
                "list_scan_response_keys_filter_path resulted in same path for two different keys"
                    .to_string(),
            ));
        }
        permissions.response_keys_filter_path = Some(template);
    }
    permissions.pagination_limit = u64::try_from(pagination_limit).unwrap_or(0);

    Ok(PathRules {
        pattern: pattern.to_string(),
        compiled: (!templated).then_some(compiled),
        permissions,
        expiration,
    })
}

/// The bare reason of a value error, for messages nested inside another error.
fn reason_of(e: PolicyError) -> String {
    match e {
        PolicyError::InvalidValue { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// Checks a `control_group` stanza as OpenBao does. OpenBao accepts and validates control
/// groups but does not enforce them, so neither does Kura.
fn validate_control_group(node: &Node) -> Result<(), String> {
    let Node::Object(entries) = node else {
        return Err(format!("expected an object, got {}", node.type_name()));
    };
    // Factor bodies: `factor "name" { ... }` in HCL, `"factor": {"name": {...}}` in JSON.
    let mut factors: Vec<&Node> = Vec::new();
    for entry in entries {
        match entry.key() {
            "ttl" => {
                parse_duration_second(&entry.value)
                    .map_err(|e| format!("path control_group: invalid ttl: {e}"))?;
            }
            "factor" if entry.keys.len() > 1 => factors.push(&entry.value),
            "factor" => match &entry.value {
                Node::Object(named) => factors.extend(named.iter().map(|f| &f.value)),
                Node::List(items) => {
                    for item in items {
                        match item {
                            Node::Object(named) => factors.extend(named.iter().map(|f| &f.value)),
                            other => {
                                return Err(format!(
                                    "factor: expected an object, got {}",
                                    other.type_name()
                                ))
                            }
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "factor: expected an object, got {}",
                        other.type_name()
                    ))
                }
            },
            other => {
                return Err(format!("invalid key {other:?} on line {}", entry.line));
            }
        }
    }
    if factors.is_empty() {
        return Err("requires at least one factor but had none".to_string());
    }
    for (index, factor) in factors.iter().enumerate() {
        let Node::Object(body) = factor else {
            return Err(format!("factor {index}: expected an object"));
        };
        let mut controlled: Vec<String> = Vec::new();
        let mut approvals: i64 = 0;
        let mut group_names: Vec<String> = Vec::new();
        for entry in body {
            match entry.key() {
                "controlled_capabilities" => {
                    controlled = string_list("", "controlled_capabilities", &entry.value)
                        .map_err(reason_of)?;
                }
                "identity" => {
                    if let Node::Object(identity) = &entry.value {
                        for field in identity {
                            match field.key() {
                                "approvals" => {
                                    approvals = int_field("", "approvals", &field.value)
                                        .map_err(reason_of)?;
                                }
                                "group_names" => {
                                    group_names = string_list("", "group_names", &field.value)
                                        .map_err(reason_of)?;
                                }
                                _ => {}
                            }
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "error handling control_group factor: 1 error occurred:\n\t* path control_group factor: invalid key {other:?} on line {}\n\n",
                        entry.line
                    ));
                }
            }
        }
        const CONTROLLABLE: &[&str] = &[
            "create", "read", "update", "delete", "list", "patch", "scan",
        ];
        if let Some(bad) = controlled
            .iter()
            .find(|c| !CONTROLLABLE.contains(&c.as_str()))
        {
            return Err(format!("path control_group Operation(s) not valid: {bad}"));
        }
        if approvals <= 0 {
            return Err(format!("factor {index}: missing required approvals"));
        }
        if group_names.is_empty() {
            return Err(format!("factor {index}: missing approving groups"));
        }
        if controlled.is_empty() {
            return Err(format!("factor {index}: missing controlled capabilities"));
        }
    }
    Ok(())
}

/// Parses an absolute time as OpenBao's policies accept it: RFC 3339 (with or without
/// fractional seconds) or whole Unix seconds.
pub(crate) fn parse_absolute_time(s: &str) -> Option<SystemTime> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    let secs: i64 = s.parse().ok()?;
    Some(unix_time(secs, 0))
}

fn unix_time(secs: i64, nanos: u32) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
            + Duration::from_nanos(u64::from(nanos))
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(range)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let minute = num(14..16)?;
    let second = num(17..19)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day == 0
        || day > month_days[month as usize - 1]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = frac[..digits].parse::<u32>().ok()? * 10u32.pow(9 - digits as u32);
        rest = &frac[digits..];
    }
    let offset_secs: i64 = match rest {
        "Z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
        - offset_secs;
    Some(unix_time(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(text: &str) -> Vec<PathRules> {
        Policy::parse("t", text).unwrap().paths
    }

    fn err(text: &str) -> String {
        Policy::parse("t", text).unwrap_err().to_string()
    }

    #[test]
    fn basic_hcl_policy() {
        let p = Policy::parse(
            "MyPolicy",
            r#"
# comment
path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo", "scan"]
}
path "/secret/exact" { capabilities = ["read"] }
"#,
        )
        .unwrap();
        assert_eq!(p.name(), "mypolicy");
        assert!(p.raw().starts_with("\n# comment"));
        assert!(!p.is_templated());
        let paths = p.paths();
        assert_eq!(paths.len(), 2);
        assert_eq!(paths[0].pattern(), "secret/*");
        assert!(paths[0].is_prefix());
        assert_eq!(paths[0].compiled().unwrap().path, "secret/");
        assert_eq!(
            paths[0].permissions().capabilities.names(),
            vec!["create", "delete", "list", "patch", "read", "scan", "sudo", "update"]
        );
        assert_eq!(paths[1].compiled().unwrap().path, "secret/exact");
        assert!(!paths[1].is_prefix());
    }

    #[test]
    fn json_policy_matches_hcl() {
        let hcl = rules(
            r#"path "a/*" { capabilities = ["read", "list"] }
path "b" { capabilities = ["update"]
  allowed_parameters = { "Foo" = ["x", 1] } }"#,
        );
        let json = rules(
            r#"{"path": {"a/*": {"capabilities": ["read", "list"]},
                "b": {"capabilities": ["update"], "allowed_parameters": {"Foo": ["x", 1]}}}}"#,
        );
        assert_eq!(hcl.len(), 2);
        for (h, j) in hcl.iter().zip(json.iter()) {
            assert_eq!(h.pattern(), j.pattern());
            assert_eq!(h.permissions(), j.permissions());
        }
        assert_eq!(
            json[1].permissions().allowed_parameters.get("foo"),
            Some(&vec![json!("x"), json!(1)])
        );
        // JSON list form.
        let list =
            rules(r#"{"path": [{"a": {"capabilities": ["read"]}}, {"b": {"policy": "write"}}]}"#);
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[1].permissions().capabilities.names(),
            vec!["create", "delete", "list", "read", "update"]
        );
    }

    #[test]
    fn legacy_policy_values() {
        let r = rules(
            r#"path "a" { policy = "read" }
path "b" { policy = "write" }
path "c" { policy = "sudo" }
path "d" { policy = "deny"
  capabilities = ["read"] }
path "e" { policy = "read"
  capabilities = ["update"] }"#,
        );
        let names: Vec<Vec<&str>> = r
            .iter()
            .map(|p| p.permissions().capabilities.names())
            .collect();
        assert_eq!(
            names,
            vec![
                vec!["list", "read"],
                vec!["create", "delete", "list", "read", "update"],
                vec!["create", "delete", "list", "read", "sudo", "update"],
                vec!["deny"],
                vec!["list", "read", "update"],
            ]
        );
        assert_eq!(
            err(r#"path "x" { policy = "admin" }"#),
            r#"failed to parse policy: path "x": path "x": invalid policy "admin""#
        );
    }

    #[test]
    fn deny_stops_reading_the_stanza() {
        // As in OpenBao: once deny is seen, later capabilities and constraints are not read.
        let r = rules(
            r#"path "x" { capabilities = ["deny", "bogus"]
  min_wrapping_ttl = "abc" }"#,
        );
        assert_eq!(r[0].permissions().capabilities, Capability::DENY);
        assert_eq!(
            err(r#"path "x" { capabilities = ["bogus", "deny"] }"#),
            r#"failed to parse policy: path "x": path "x": invalid capability "bogus""#
        );
    }

    #[test]
    fn unknown_capabilities_are_named() {
        for bad in ["subscribe", "recover", "root", "foo"] {
            assert_eq!(
                err(&format!(r#"path "x/*" {{ capabilities = ["{bad}"] }}"#)),
                format!(
                    r#"failed to parse policy: path "x/*": path "x/*": invalid capability "{bad}""#
                )
            );
        }
    }

    #[test]
    fn invalid_keys_are_listed_with_lines() {
        assert_eq!(
            err("foo = 1\nbar = 2\npath \"x\" { capabilities = [\"read\"] }"),
            "failed to parse policy: 2 errors occurred:\n\t* invalid key \"foo\" on line 1\n\t* invalid key \"bar\" on line 2\n\n"
        );
        assert_eq!(
            err("path \"x\" { capabilities = [\"read\"]\nbogus = 2 }"),
            "failed to parse policy: path \"x\": 1 error occurred:\n\t* invalid key \"bogus\" on line 2\n\n"
        );
        assert_eq!(
            err(r#"{"path": {"x": {"bogus": 1}}}"#),
            "failed to parse policy: path \"x\": 1 error occurred:\n\t* invalid key \"bogus\" on line 1\n\n"
        );
        // `name` is accepted and ignored.
        assert_eq!(
            rules("name = \"other\"\npath \"x\" { capabilities = [\"read\"] }").len(),
            1
        );
    }

    #[test]
    fn syntax_errors_carry_the_reason() {
        let e = err(r#"path "x" { capabilities = ["read" }"#);
        assert!(e.starts_with("failed to parse policy: At 1:"), "{e}");
        let e = err(r#"path "x" { capabilities = ["read"] "#);
        assert!(e.starts_with("failed to parse policy: At 1:"), "{e}");
        // bao accepts a JSON list without commas.
        let r = rules(r#"{"path": {"x": {"capabilities": ["read" "list"]}}}"#);
        assert_eq!(
            r[0].permissions().capabilities,
            Capability::READ | Capability::LIST
        );
        assert_eq!(
            err(r#"{"path" {"x": {}}}"#),
            "failed to parse policy: expected: STRING got: LBRACE"
        );
        // Like OpenBao's JSON reader, a missing final brace is forgiven.
        assert_eq!(
            rules(r#"{"path": {"x": {"capabilities": ["read"]}}"#).len(),
            1
        );
        assert!(matches!(
            Policy::parse("t", r#"path "x" { capabilities = "read" }"#),
            Err(PolicyError::InvalidValue { .. })
        ));
        assert!(matches!(
            Policy::parse("t", r#"path "x" { required_parameters = "a" }"#),
            Err(PolicyError::InvalidValue { .. })
        ));
        assert!(matches!(
            Policy::parse("t", r#"path "x" { allowed_parameters = { "a" = "b" } }"#),
            Err(PolicyError::InvalidValue { .. })
        ));
        assert_eq!(
            err(r#"path "x" { pagination_limit = "abc" }"#),
            r#"failed to parse policy: path "x": path "x": strconv.ParseInt: parsing "abc": invalid syntax"#
        );
    }

    #[test]
    fn bao_hcl1_quirks() {
        // Extra block labels are ignored: this is a rule for "x".
        let r = rules(r#"path "x" "y" { capabilities = ["read"] }"#);
        assert_eq!(r[0].pattern(), "x");
        // The assignment form is a rule for the path "path" whose body has a key "x".
        assert_eq!(
            err(r#"path = { "x" = { capabilities = ["read"] } }"#),
            "failed to parse policy: path \"path\": 1 error occurred:\n\t* invalid key \"x\" on line 1\n\n"
        );
        // Blocks have no `=`, so OpenBao reports them on line 0.
        assert_eq!(
            err("\n\nbogus \"x\" { }"),
            "failed to parse policy: 1 error occurred:\n\t* invalid key \"bogus\" on line 0\n\n"
        );
        assert_eq!(
            err("path \"x\" {\n\n bogusblock { a = 1 } }"),
            "failed to parse policy: path \"x\": 1 error occurred:\n\t* invalid key \"bogusblock\" on line 0\n\n"
        );
        // Repeated lists add up; the last scalar wins.
        let r = rules("path \"x\" { capabilities = [\"read\"]\ncapabilities = [\"list\"] }");
        assert_eq!(
            r[0].permissions().capabilities,
            Capability::READ | Capability::LIST
        );
        let r = rules(
            "path \"x\" { capabilities = [\"read\"]\n policy = \"write\"\n policy = \"deny\" }",
        );
        assert_eq!(r[0].permissions().capabilities, Capability::DENY);
        // `${...}` is plain text, escapes are decoded.
        assert_eq!(
            rules(r#"path "a/${x}" { capabilities = ["read"] }"#)[0].pattern(),
            "a/${x}"
        );
        assert_eq!(
            rules(r#"path "a\"b" { capabilities = ["read"] }"#)[0].pattern(),
            "a\"b"
        );
        // Non-string capabilities are read as text; heredocs keep their newline.
        assert_eq!(
            err(r#"path "x" { capabilities = [1] }"#),
            r#"failed to parse policy: path "x": path "x": invalid capability "1""#
        );
        assert_eq!(
            err("path \"x\" { capabilities = [<<EOF\nread\nEOF\n] }"),
            "failed to parse policy: path \"x\": path \"x\": invalid capability \"read\\n\""
        );
    }

    #[test]
    fn empty_policies_parse() {
        assert!(Policy::parse("t", "").unwrap().paths().is_empty());
        assert!(Policy::parse("t", " \n ").unwrap().paths().is_empty());
        // A stanza without capabilities grants nothing but is valid.
        assert!(rules(r#"path "x" { }"#)[0]
            .permissions()
            .capabilities
            .is_empty());
    }

    #[test]
    fn wildcards() {
        let r = rules(
            r#"path "a/+/b" { capabilities = ["read"] }
path "+" { capabilities = ["read"] }
path "+/x/*" { capabilities = ["read"] }
path "a/+/b*" { capabilities = ["read"] }
path "a+/b" { capabilities = ["read"] }
path "mid/*/y" { capabilities = ["read"] }
path "*" { capabilities = ["read"] }"#,
        );
        let shapes: Vec<(&str, bool, bool)> = r
            .iter()
            .map(|p| {
                let c = p.compiled().unwrap();
                (c.path.as_str(), c.is_prefix, c.has_segment_wildcards)
            })
            .collect();
        assert_eq!(
            shapes,
            vec![
                ("a/+/b", false, true),
                ("+", false, true),
                ("+/x/*", false, true),
                ("a/+/b*", false, true),
                ("a+/b", false, false),
                ("mid/*/y", false, false),
                ("", true, false),
            ]
        );
        assert_eq!(
            err(r#"path "x/+*" { capabilities = ["read"] }"#),
            r#"failed to parse policy: path "x/+*": path "x/+*": invalid use of wildcards ('+*' is forbidden)"#
        );
    }

    #[test]
    fn parameters() {
        let r = rules(
            r#"path "x" {
  capabilities = ["create"]
  allowed_parameters = {
    "Name" = ["a", "b*"]
    "*" = []
  }
  denied_parameters {
    secret = []
  }
  required_parameters = ["Name", "other"]
}"#,
        );
        let perms = r[0].permissions();
        assert_eq!(perms.allowed_parameters.len(), 2);
        assert_eq!(
            perms.allowed_parameters["name"],
            vec![json!("a"), json!("b*")]
        );
        assert!(perms.allowed_parameters["*"].is_empty());
        assert!(perms.denied_parameters["secret"].is_empty());
        assert_eq!(perms.required_parameters, vec!["Name", "other"]);
    }

    #[test]
    fn wrapping_ttls() {
        let r = rules(
            r#"path "a" { capabilities = ["read"]
  min_wrapping_ttl = 60
  max_wrapping_ttl = "1h" }
path "b" { capabilities = ["read"]
  min_wrapping_ttl = "1m30s"
  max_wrapping_ttl = "2d" }"#,
        );
        assert_eq!(r[0].permissions().min_wrapping_ttl, Duration::from_secs(60));
        assert_eq!(
            r[0].permissions().max_wrapping_ttl,
            Duration::from_secs(3600)
        );
        assert_eq!(r[1].permissions().min_wrapping_ttl, Duration::from_secs(90));
        assert_eq!(
            r[1].permissions().max_wrapping_ttl,
            Duration::from_secs(172_800)
        );
        assert_eq!(
            err("path \"x\" { capabilities=[\"read\"]\nmin_wrapping_ttl = \"abc\" }"),
            r#"failed to parse policy: path "x": error parsing min_wrapping_ttl: time: invalid duration "abc""#
        );
        assert_eq!(
            err("path \"x\" { capabilities=[\"read\"]\nmin_wrapping_ttl = \"2h\"\nmax_wrapping_ttl = \"1h\" }"),
            r#"failed to parse policy: path "x": max_wrapping_ttl cannot be less than min_wrapping_ttl"#
        );
    }

    #[test]
    fn templated_paths() {
        let p = Policy::parse(
            "t",
            r#"path "secret/{{identity.entity.id}}/*" { capabilities = ["read"] }
path "plain" { capabilities = ["read"] }"#,
        )
        .unwrap();
        assert!(p.is_templated());
        assert!(p.paths()[0].is_templated());
        assert!(!p.paths()[1].is_templated());
        assert_eq!(
            err(r#"path "x/{{identity.entity.id" { capabilities = ["read"] }"#),
            r#"failed to parse policy: path "x/{{identity.entity.id": failed to validate policy templating: unbalanced templating characters"#
        );
        assert!(err(r#"path "x/}}" { capabilities = ["read"] }"#).contains("unbalanced"));
    }

    #[test]
    fn expiration() {
        let r = rules(
            r#"path "a" { capabilities = ["read"]
  expiration = "2001-01-01T00:00:00Z" }
path "b" { capabilities = ["read"]
  expiration = "2030-06-15T12:30:45.5+02:00" }
path "c" { capabilities = ["read"]
  expiration = "1700000000" }"#,
        );
        assert_eq!(
            r[0].expiration(),
            Some(UNIX_EPOCH + Duration::from_secs(978_307_200))
        );
        assert_eq!(
            r[1].expiration(),
            Some(UNIX_EPOCH + Duration::new(1_907_749_845, 500_000_000))
        );
        assert_eq!(
            r[2].expiration(),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(
            err("path \"x\" { capabilities=[\"read\"]\nexpiration = \"garbage\" }"),
            r#"failed to parse policy: path "x": path "x": invalid expiration time: could not parse string as date and time"#
        );
        assert!(parse_rfc3339("2023-02-29T00:00:00Z").is_none());
        assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_some());
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            Some(UNIX_EPOCH - Duration::from_secs(1))
        );
    }

    #[test]
    fn filter_path_rules() {
        let r = rules(
            r#"path "kv/metadata/*" { capabilities = ["list"]
  list_scan_response_keys_filter_path = "{{ .path }}{{ .key }}" }"#,
        );
        let f = r[0]
            .permissions()
            .response_keys_filter_path
            .as_ref()
            .unwrap();
        assert_eq!(f.render("kv/metadata/", "a"), "kv/metadata/a");
        assert_eq!(
            err("path \"x/*\" { capabilities=[\"read\"]\nlist_scan_response_keys_filter_path = \"x/{{ .key }}\" }"),
            r#"failed to parse policy: path "x/*": list_scan_response_keys_filter_path needs to be used on a path with the list capability"#
        );
        assert_eq!(
            err("path \"x/*\" { capabilities=[\"list\"]\nlist_scan_response_keys_filter_path = \"x/static\" }"),
            r#"failed to parse policy: path "x/*": list_scan_response_keys_filter_path resulted in same path for two different keys"#
        );
        assert!(err("path \"x/*\" { capabilities=[\"list\"]\nlist_scan_response_keys_filter_path = \"{{ .path }}{{ .bogus\" }")
            .contains("unable to compile template for list_scan_response_keys_filter_path"));
    }

    #[test]
    fn pagination_and_mfa() {
        let r = rules(
            r#"path "x/*" { capabilities = ["list"]
  pagination_limit = "25"
  mfa_methods = ["totp"] }"#,
        );
        assert_eq!(r[0].permissions().pagination_limit, 25);
        assert_eq!(r[0].permissions().mfa_methods, vec!["totp"]);
    }

    #[test]
    fn control_groups_are_validated() {
        let ok = r#"path "x/*" { capabilities = ["read"]
  control_group = {
    ttl = "1h"
    factor "ops" {
      controlled_capabilities = ["read"]
      identity { group_names = ["g"]
        approvals = 1 }
    }
  } }"#;
        assert_eq!(rules(ok).len(), 1);
        let cg = |body: &str| {
            err(&format!(
                "path \"x\" {{ capabilities = [\"read\"]\ncontrol_group = {{ {body} }} }}"
            ))
        };
        assert_eq!(
            cg(r#"ttl = "abc""#),
            "failed to parse policy: path \"x\": error handling control_group: 1 error occurred:\n\t* path control_group: invalid ttl: time: invalid duration \"abc\"\n\n"
        );
        assert!(cg("").contains("requires at least one factor but had none"));
        assert!(cg(r#"factor "a" { controlled_capabilities = ["sudo"] identity { group_names = ["g"] approvals = 1 } }"#)
            .contains("Operation(s) not valid: sudo"));
        assert!(cg(r#"factor "a" { controlled_capabilities = ["read"] identity { group_names = ["g"] approvals = 0 } }"#)
            .contains("factor 0: missing required approvals"));
        assert!(cg(
            r#"factor "a" { controlled_capabilities = ["read"] identity { approvals = 1 } }"#
        )
        .contains("factor 0: missing approving groups"));
        assert!(cg(r#"factor "a" { controlled_capabilities = [] identity { group_names = ["g"] approvals = 1 } }"#)
            .contains("factor 0: missing controlled capabilities"));
        assert!(cg("bogus = 1").contains("invalid key \"bogus\""));
    }
}
