//! The ACL of a token: its policies merged into one lookup structure, and the checks made
//! against it for every request.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::capability::Capability;
use crate::policy::{compile_path, CompiledPath, Permissions, Policy, PolicyError};
use crate::template::{populate, IdentityContext, TemplateError};

/// Merged permissions of one path across all of a token's policies.
#[derive(Debug, Clone, Default, PartialEq)]
struct Merged {
    permissions: Permissions,
    /// For each capability bit, the policies that granted it.
    granting: BTreeMap<u32, Vec<String>>,
}

/// A `+` path rule, pre-split for matching.
#[derive(Debug, Clone, PartialEq)]
struct SegmentRule {
    /// The path as stored (a trailing `*` kept).
    full: String,
    /// The path without a trailing `*`.
    wc_path: String,
    parts: Vec<String>,
    is_prefix: bool,
    /// Byte index of the first `+`.
    first_wildcard: usize,
    wildcards: usize,
    merged: Merged,
}

/// A token's access control list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Merged>,
    prefix: HashMap<String, Merged>,
    segment: Vec<SegmentRule>,
}

/// Why a request was refused. Upstream every refusal is the same 403 "permission denied";
/// the reason is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyReason {
    /// No rule matches the path.
    NoMatchingRule,
    /// The matching rule denies.
    ExplicitDeny,
    /// The matching rule does not grant the capability.
    MissingCapability(Capability),
    /// The rule sets a wrapping TTL bound and the request is not response-wrapped.
    WrappingRequired,
    /// The requested wrapping TTL is above `max_wrapping_ttl`.
    WrappingTtlTooLong,
    /// The requested wrapping TTL is below `min_wrapping_ttl`.
    WrappingTtlTooShort,
    /// Merged policies left `max_wrapping_ttl` below `min_wrapping_ttl`: nothing can pass.
    WrappingTtlConflict,
    /// A `required_parameters` key is missing from the request.
    MissingRequiredParameter(String),
    /// A key (or value) the rule denies.
    DeniedParameter(String),
    /// A key (or value) the rule's `allowed_parameters` does not allow.
    ParameterNotAllowed(String),
    /// `limit` is required (pagination) but absent.
    PaginationLimitRequired,
    /// `limit` is above the rule's `pagination_limit`.
    PaginationLimitExceeded,
    /// `limit` is neither an integer nor `max`.
    InvalidPaginationLimit,
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::NoMatchingRule => f.write_str("no policy rule matches the path"),
            DenyReason::ExplicitDeny => f.write_str("a policy denies the path"),
            DenyReason::MissingCapability(c) => write!(f, "the {c} capability is not granted"),
            DenyReason::WrappingRequired => f.write_str("the request must be response-wrapped"),
            DenyReason::WrappingTtlTooLong => {
                f.write_str("the wrapping TTL is above the policy's max_wrapping_ttl")
            }
            DenyReason::WrappingTtlTooShort => {
                f.write_str("the wrapping TTL is below the policy's min_wrapping_ttl")
            }
            DenyReason::WrappingTtlConflict => {
                f.write_str("merged policies set max_wrapping_ttl below min_wrapping_ttl")
            }
            DenyReason::MissingRequiredParameter(p) => {
                write!(f, "required parameter {p:?} is missing")
            }
            DenyReason::DeniedParameter(p) => write!(f, "parameter {p:?} is denied"),
            DenyReason::ParameterNotAllowed(p) => write!(f, "parameter {p:?} is not allowed"),
            DenyReason::PaginationLimitRequired => f.write_str("a pagination limit is required"),
            DenyReason::PaginationLimitExceeded => {
                f.write_str("the pagination limit is above the policy's pagination_limit")
            }
            DenyReason::InvalidPaginationLimit => f.write_str("the pagination limit is not valid"),
        }
    }
}

/// The answer of [`Acl::check`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// The operation may proceed.
    pub allowed: bool,
    /// The ACL is the root ACL.
    pub is_root: bool,
    /// `sudo` is granted on the path (root-protected paths need it); set even when the
    /// operation itself is refused, as OpenBao does.
    pub sudo: bool,
    /// Capabilities of the rule that matched the path (empty when none matched).
    pub capabilities: Capability,
    /// Names of the policies that granted the capability, when allowed.
    pub granting_policies: Vec<String>,
    /// Why the operation was refused; `None` when allowed.
    pub reason: Option<DenyReason>,
    /// For an allowed LIST/SCAN of a pagination-limited rule: the value the request's `limit`
    /// parameter must be replaced with before it reaches the backend.
    pub limit_override: Option<String>,
    /// For an allowed LIST/SCAN: the template that filters listed keys, if the rule sets one.
    pub response_keys_filter_path: Option<crate::template::KeysFilterPath>,
    /// MFA methods named by the matching rule.
    pub mfa_methods: Vec<String>,
}

impl Decision {
    fn denied(reason: DenyReason) -> Decision {
        Decision {
            reason: Some(reason),
            ..Decision::default()
        }
    }
}

/// A request as the ACL sees it.
#[derive(Debug, Clone, Copy)]
pub struct CheckRequest<'a> {
    /// Full request path (namespace included), without `/v1/`. Leading `/` are ignored.
    pub path: &'a str,
    /// The operation as a capability: create, read, update (also renew/revoke/rollback),
    /// patch, delete, list, scan.
    pub capability: Capability,
    /// Request data (body fields, or query parameters of a read/list).
    pub data: Option<&'a Map<String, Value>>,
    /// Requested response-wrapping TTL, if the request asks to be wrapped.
    pub wrap_ttl: Option<Duration>,
}

/// Why an ACL could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// Filling in a templated policy failed in a way that fails the whole ACL (a forbidden
    /// character in a substituted value, or a path that became invalid).
    #[error("error parsing templated policy {policy:?}: failed to parse policy: path {path:?}: {reason}")]
    Template {
        /// The policy name.
        policy: String,
        /// The path as written.
        path: String,
        /// The template problem.
        reason: TemplateError,
    },
    /// A templated path became an invalid path once filled in.
    #[error("error parsing templated policy {policy:?}: {source}")]
    TemplatedPath {
        /// The policy name.
        policy: String,
        /// The path problem.
        source: PolicyError,
    },
}

impl Acl {
    /// The ACL of root tokens: everything is allowed, with sudo.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    /// Merges policies into an ACL, without identity: paths with identity templates are left
    /// out (as they are for a token without an entity). A policy named `root` makes this the
    /// root ACL.
    pub fn new(policies: &[Arc<Policy>]) -> Acl {
        // Without an entity only `{{time.*}}` directives can be filled in, and they render
        // digits, which no template option forbids; building cannot fail.
        Acl::with_identity(policies, &IdentityContext::default()).unwrap_or_default()
    }

    /// Merges policies into an ACL, filling identity templates from `identity`. A templated
    /// path whose directives cannot be filled is left out; a substituted value with a
    /// character the policy forbids fails the whole ACL, as in OpenBao.
    pub fn with_identity(
        policies: &[Arc<Policy>],
        identity: &IdentityContext,
    ) -> Result<Acl, AclError> {
        Acl::build(policies, identity, SystemTime::now())
    }

    fn build(
        policies: &[Arc<Policy>],
        identity: &IdentityContext,
        now: SystemTime,
    ) -> Result<Acl, AclError> {
        if policies.iter().any(|p| p.name() == crate::ROOT_POLICY_NAME) {
            return Ok(Acl::root());
        }
        let mut acl = Acl::default();
        let mut segment_index: HashMap<String, usize> = HashMap::new();
        for policy in policies {
            for rule in policy.paths() {
                if rule.expiration().is_some_and(|exp| now > exp) {
                    continue;
                }
                let compiled = match rule.compiled() {
                    Some(c) => c.clone(),
                    None => {
                        let filled =
                            match populate(rule.pattern(), identity, policy.template_options()) {
                                Ok(filled) => filled,
                                Err(reason) if reason.is_fatal() => {
                                    return Err(AclError::Template {
                                        policy: policy.name().to_string(),
                                        path: rule.pattern().to_string(),
                                        reason,
                                    })
                                }
                                Err(_) => continue,
                            };
                        compile_path(&filled).map_err(|source| AclError::TemplatedPath {
                            policy: policy.name().to_string(),
                            source,
                        })?
                    }
                };
                acl.insert(
                    &compiled,
                    rule.permissions(),
                    policy.name(),
                    &mut segment_index,
                );
            }
        }
        Ok(acl)
    }

    fn insert(
        &mut self,
        compiled: &CompiledPath,
        perms: &Permissions,
        policy: &str,
        segment_index: &mut HashMap<String, usize>,
    ) {
        let existing = if compiled.has_segment_wildcards {
            match segment_index.get(&compiled.path) {
                Some(&i) => Some(&mut self.segment[i].merged),
                None => {
                    segment_index.insert(compiled.path.clone(), self.segment.len());
                    self.segment.push(SegmentRule::new(
                        &compiled.path,
                        Merged::first(perms, policy),
                    ));
                    None
                }
            }
        } else {
            let map = if compiled.is_prefix {
                &mut self.prefix
            } else {
                &mut self.exact
            };
            if !map.contains_key(&compiled.path) {
                map.insert(compiled.path.clone(), Merged::first(perms, policy));
                None
            } else {
                map.get_mut(&compiled.path)
            }
        };
        if let Some(existing) = existing {
            existing.merge(perms, policy);
        }
    }

    /// True for the root ACL.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Checks an operation on a path, with optional request data; the request counts as not
    /// response-wrapped. See [`Acl::check_request`].
    pub fn check(
        &self,
        path: &str,
        cap: Capability,
        params: Option<&Map<String, Value>>,
    ) -> Decision {
        self.check_request(&CheckRequest {
            path,
            capability: cap,
            data: params,
            wrap_ttl: None,
        })
    }

    /// Checks a request as OpenBao's ACL does: exact rule, then (LIST/SCAN) the exact rule
    /// without the trailing `/`, then the best glob or `+` rule, then (LIST) the best one for
    /// the path without its trailing `/`; then the capability, wrapping TTL bounds, parameter
    /// constraints (create/read/update/patch) and pagination limits (list/scan).
    pub fn check_request(&self, req: &CheckRequest<'_>) -> Decision {
        if self.root {
            return Decision {
                allowed: true,
                is_root: true,
                sudo: true,
                capabilities: Capability::CREATE
                    | Capability::READ
                    | Capability::UPDATE
                    | Capability::PATCH
                    | Capability::DELETE
                    | Capability::LIST
                    | Capability::SCAN
                    | Capability::SUDO,
                granting_policies: vec![crate::ROOT_POLICY_NAME.to_string()],
                ..Decision::default()
            };
        }
        let cap = req.capability;
        let Some(merged) = self.lookup(req.path, cap) else {
            return Decision::denied(DenyReason::NoMatchingRule);
        };
        let perms = &merged.permissions;
        let caps = perms.capabilities;
        let mut decision = Decision {
            sudo: caps.contains(Capability::SUDO),
            capabilities: caps,
            mfa_methods: perms.mfa_methods.clone(),
            ..Decision::default()
        };
        let deny = |mut d: Decision, reason: DenyReason| {
            d.reason = Some(reason);
            d
        };

        if !caps.contains(cap) {
            let reason = if caps.contains(Capability::DENY) {
                DenyReason::ExplicitDeny
            } else {
                DenyReason::MissingCapability(cap)
            };
            return deny(decision, reason);
        }
        let mut granting: Vec<String> = Vec::new();
        for bit in cap.iter() {
            for name in merged.granting.get(&bit.bits()).into_iter().flatten() {
                if !granting.contains(name) {
                    granting.push(name.clone());
                }
            }
        }
        decision.granting_policies = granting;

        let (min_ttl, max_ttl) = (perms.min_wrapping_ttl, perms.max_wrapping_ttl);
        if !max_ttl.is_zero() {
            match req.wrap_ttl {
                None => return deny(decision, DenyReason::WrappingRequired),
                Some(ttl) if ttl > max_ttl => {
                    return deny(decision, DenyReason::WrappingTtlTooLong)
                }
                Some(_) => {}
            }
        }
        if !min_ttl.is_zero() {
            match req.wrap_ttl {
                None => return deny(decision, DenyReason::WrappingRequired),
                Some(ttl) if ttl < min_ttl => {
                    return deny(decision, DenyReason::WrappingTtlTooShort)
                }
                Some(_) => {}
            }
        }
        if !min_ttl.is_zero() && !max_ttl.is_zero() && max_ttl < min_ttl {
            return deny(decision, DenyReason::WrappingTtlConflict);
        }

        let empty = Map::new();
        let data = req.data.unwrap_or(&empty);
        if cap.intersects(
            Capability::READ | Capability::UPDATE | Capability::CREATE | Capability::PATCH,
        ) {
            if let Err(reason) = check_parameters(perms, data) {
                return deny(decision, reason);
            }
        } else if cap.intersects(Capability::LIST | Capability::SCAN) {
            match check_pagination(perms, data) {
                Ok(limit) => decision.limit_override = limit,
                Err(reason) => return deny(decision, reason),
            }
            decision.response_keys_filter_path = perms.response_keys_filter_path.clone();
        }

        decision.allowed = true;
        decision
    }

    /// The capabilities a token has on a path, as `sys/capabilities` reports them: `["root"]`
    /// for root, `["deny"]` when the path is denied or nothing is granted, otherwise the
    /// granted capabilities sorted alphabetically.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec![crate::ROOT_POLICY_NAME.to_string()];
        }
        let caps = self
            .lookup(path, Capability::LIST)
            .map(|m| m.permissions.capabilities)
            .unwrap_or_default();
        if caps.contains(Capability::DENY) || caps.is_empty() {
            return vec!["deny".to_string()];
        }
        caps.names().into_iter().map(str::to_string).collect()
    }

    /// True when the token may see a mount at all (`sys/internal/ui/mounts`): some rule at or
    /// under `mount_path` (e.g. `"secret/"`) grants something other than deny.
    pub fn has_mount_access(&self, mount_path: &str) -> bool {
        if self.root {
            return true;
        }
        if !self.capabilities(mount_path).iter().any(|c| c == "deny") {
            return true;
        }
        let grants = |m: &Merged| {
            let caps = m.permissions.capabilities;
            !caps.contains(Capability::DENY) && !caps.is_empty()
        };
        if self
            .exact
            .iter()
            .chain(self.prefix.iter())
            .any(|(p, m)| p.starts_with(mount_path) && grants(m))
        {
            return true;
        }
        self.segment_mount_access(mount_path)
    }

    /// The `+` rules part of the mount access check: a rule whose leading segments cover the
    /// whole mount path and that grants something.
    fn segment_mount_access(&self, path: &str) -> bool {
        let path_parts: Vec<&str> = path.split('/').collect();
        let Some(check_at) = path_parts.len().checked_sub(2) else {
            return false;
        };
        for rule in &self.segment {
            let mut segments: Vec<&str> = Vec::new();
            for (i, acl_part) in rule.parts.iter().enumerate() {
                let Some(part) = path_parts.get(i) else { break };
                if acl_part == "+" || acl_part == part {
                    segments.push(part);
                } else if rule.is_prefix
                    && i == rule.parts.len() - 1
                    && part.starts_with(acl_part.as_str())
                {
                    segments.extend(&path_parts[i..]);
                }
                if i == check_at {
                    let joined = format!("{}/", segments.join("/"));
                    let caps = rule.merged.permissions.capabilities;
                    if joined.starts_with(path)
                        && !caps.contains(Capability::DENY)
                        && !caps.is_empty()
                    {
                        return true;
                    }
                    break;
                }
            }
        }
        false
    }

    /// Finds the merged rule that governs `path` for an operation.
    fn lookup(&self, path: &str, cap: Capability) -> Option<&Merged> {
        let path = path.trim_start_matches('/');
        if let Some(m) = self.exact.get(path) {
            return Some(m);
        }
        let listing = cap == Capability::LIST || cap == Capability::SCAN;
        let trimmed = path.strip_suffix('/');
        if listing {
            if let Some(m) = trimmed.and_then(|t| self.exact.get(t)) {
                return Some(m);
            }
        }
        if let Some(m) = self.non_exact(path) {
            return Some(m);
        }
        if cap == Capability::LIST {
            if let Some(t) = trimmed {
                return self.non_exact(t);
            }
        }
        None
    }

    /// The best glob or `+` rule for a path. Priority, highest first: the first wildcard
    /// further right; a non-prefix rule over a prefix one; fewer `+` segments; a longer path;
    /// the lexicographically greater path.
    fn non_exact(&self, path: &str) -> Option<&Merged> {
        let prefix_match = (0..=path.len())
            .rev()
            .filter(|i| path.is_char_boundary(*i))
            .find_map(|i| self.prefix.get_key_value(&path[..i]));
        if self.segment.is_empty() {
            return prefix_match.map(|(_, m)| m);
        }

        // (first wildcard, is not prefix, fewer wildcards, length, path) — max wins.
        type Key<'k> = (usize, bool, std::cmp::Reverse<usize>, usize, &'k str);
        let mut best: Option<(Key<'_>, &Merged)> = prefix_match.map(|(p, m)| {
            (
                (p.len(), false, std::cmp::Reverse(0), p.len(), p.as_str()),
                m,
            )
        });
        let path_parts: Vec<&str> = path.split('/').collect();
        for rule in &self.segment {
            if !rule.matches(&path_parts) {
                continue;
            }
            let key: Key<'_> = (
                rule.first_wildcard,
                !rule.is_prefix,
                std::cmp::Reverse(rule.wildcards),
                rule.wc_path.len(),
                rule.wc_path.as_str(),
            );
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, &rule.merged));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Every rule of the ACL, for introspection (`sys/internal/ui/resultant-acl`): the path as
    /// matched (globs end in `*`), whether it is a glob or `+` rule, and the merged
    /// permissions. Sorted by path.
    pub fn rules(&self) -> Vec<AclRule<'_>> {
        let mut out: Vec<AclRule<'_>> = self
            .exact
            .iter()
            .map(|(p, m)| AclRule {
                path: p.clone(),
                glob: false,
                permissions: &m.permissions,
            })
            .chain(self.prefix.iter().map(|(p, m)| AclRule {
                path: format!("{p}*"),
                glob: true,
                permissions: &m.permissions,
            }))
            .chain(self.segment.iter().map(|r| AclRule {
                path: r.full.clone(),
                glob: true,
                permissions: &r.merged.permissions,
            }))
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// One merged rule of an [`Acl`].
#[derive(Debug, Clone, PartialEq)]
pub struct AclRule<'a> {
    /// The path as matched; globs end in `*`.
    pub path: String,
    /// A glob (`*`) or `+` rule rather than an exact path.
    pub glob: bool,
    /// Merged permissions.
    pub permissions: &'a Permissions,
}

impl SegmentRule {
    fn new(full: &str, merged: Merged) -> SegmentRule {
        let (wc_path, is_prefix) = match full.strip_suffix('*') {
            Some(stripped) => (stripped.to_string(), true),
            None => (full.to_string(), false),
        };
        let parts: Vec<String> = wc_path.split('/').map(str::to_string).collect();
        let wildcards = parts.iter().filter(|p| *p == "+").count();
        SegmentRule {
            full: full.to_string(),
            first_wildcard: full.find('+').unwrap_or(0),
            wc_path,
            parts,
            is_prefix,
            wildcards,
            merged,
        }
    }

    fn matches(&self, path_parts: &[&str]) -> bool {
        if path_parts.len() < self.parts.len() {
            return false;
        }
        if !self.is_prefix && path_parts.len() != self.parts.len() {
            return false;
        }
        let last = self.parts.len() - 1;
        self.parts.iter().enumerate().all(|(i, acl_part)| {
            acl_part == "+"
                || acl_part == path_parts[i]
                || (self.is_prefix && i == last && path_parts[i].starts_with(acl_part.as_str()))
        })
    }
}

impl Merged {
    fn first(perms: &Permissions, policy: &str) -> Merged {
        let mut merged = Merged {
            permissions: perms.clone(),
            granting: BTreeMap::new(),
        };
        merged.add_granting(perms.capabilities, policy);
        merged
    }

    fn add_granting(&mut self, caps: Capability, policy: &str) {
        for bit in caps.iter() {
            self.granting
                .entry(bit.bits())
                .or_default()
                .push(policy.to_string());
        }
    }

    /// Folds another policy's rule for the same path in, as OpenBao does: deny wins and wipes
    /// parameter maps; otherwise capabilities add up, the smaller non-zero wrapping TTLs and
    /// pagination limit win, parameter maps merge (an empty value list wins for its key),
    /// required parameters and MFA methods add up.
    fn merge(&mut self, new: &Permissions, policy: &str) {
        let existing = &mut self.permissions;
        if existing.capabilities.contains(Capability::DENY) {
            return;
        }
        if new.capabilities.contains(Capability::DENY) {
            existing.capabilities = Capability::DENY;
            existing.allowed_parameters.clear();
            existing.denied_parameters.clear();
            return;
        }
        existing.capabilities |= new.capabilities;
        self.add_granting(new.capabilities, policy);
        let existing = &mut self.permissions;

        if !new.max_wrapping_ttl.is_zero()
            && (existing.max_wrapping_ttl.is_zero()
                || new.max_wrapping_ttl < existing.max_wrapping_ttl)
        {
            existing.max_wrapping_ttl = new.max_wrapping_ttl;
        }
        if !new.min_wrapping_ttl.is_zero()
            && (existing.min_wrapping_ttl.is_zero()
                || new.min_wrapping_ttl < existing.min_wrapping_ttl)
        {
            existing.min_wrapping_ttl = new.min_wrapping_ttl;
        }

        merge_parameter_map(&mut existing.allowed_parameters, &new.allowed_parameters);
        merge_parameter_map(&mut existing.denied_parameters, &new.denied_parameters);

        for p in &new.required_parameters {
            if !existing.required_parameters.contains(p) {
                existing.required_parameters.push(p.clone());
            }
        }

        if !new.mfa_methods.is_empty() {
            existing.mfa_methods.extend(new.mfa_methods.iter().cloned());
            existing.mfa_methods.sort();
            existing.mfa_methods.dedup();
        }

        if new.pagination_limit > 0
            && (existing.pagination_limit == 0 || new.pagination_limit < existing.pagination_limit)
        {
            existing.pagination_limit = new.pagination_limit;
        }

        if existing.response_keys_filter_path.is_none() {
            existing.response_keys_filter_path = new.response_keys_filter_path.clone();
        }
    }
}

fn merge_parameter_map(
    existing: &mut BTreeMap<String, Vec<Value>>,
    new: &BTreeMap<String, Vec<Value>>,
) {
    for (key, values) in new {
        match existing.get_mut(key) {
            Some(current) if current.is_empty() => {}
            Some(current) if values.is_empty() => current.clear(),
            Some(current) => {
                let mut combined = values.clone();
                combined.append(current);
                *current = combined;
            }
            None => {
                existing.insert(key.clone(), values.clone());
            }
        }
    }
}

/// `required_parameters`, `denied_parameters` and `allowed_parameters` against request data.
fn check_parameters(perms: &Permissions, data: &Map<String, Value>) -> Result<(), DenyReason> {
    for required in &perms.required_parameters {
        if !data.contains_key(&required.to_lowercase()) {
            return Err(DenyReason::MissingRequiredParameter(required.clone()));
        }
    }
    if data.is_empty() {
        return Ok(());
    }

    if !perms.denied_parameters.is_empty() {
        if perms.denied_parameters.contains_key("*") {
            return Err(DenyReason::DeniedParameter("*".to_string()));
        }
        for (key, value) in data {
            if let Some(denied) = perms.denied_parameters.get(&key.to_lowercase()) {
                if value_in_list(value, denied) {
                    return Err(DenyReason::DeniedParameter(key.clone()));
                }
            }
        }
    }

    if perms.allowed_parameters.is_empty() {
        return Ok(());
    }
    let allowed_all = perms.allowed_parameters.contains_key("*");
    if allowed_all && perms.allowed_parameters.len() == 1 {
        return Ok(());
    }
    for (key, value) in data {
        match perms.allowed_parameters.get(&key.to_lowercase()) {
            None if !allowed_all => return Err(DenyReason::ParameterNotAllowed(key.clone())),
            Some(allowed) if !value_in_list(value, allowed) => {
                return Err(DenyReason::ParameterNotAllowed(key.clone()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `pagination_limit` against a LIST/SCAN request's `limit`; returns the value `limit` must be
/// rewritten to, if any.
fn check_pagination(
    perms: &Permissions,
    data: &Map<String, Value>,
) -> Result<Option<String>, DenyReason> {
    let limit = data.get("limit");
    if perms.pagination_limit > 0 {
        let max = perms.pagination_limit;
        match limit {
            None => {
                if perms
                    .required_parameters
                    .iter()
                    .any(|p| p.to_lowercase() == "limit")
                {
                    return Err(DenyReason::PaginationLimitRequired);
                }
                Ok(Some(max.to_string()))
            }
            Some(value) => match int_value(value) {
                Some(requested) => {
                    if requested > i128::from(max) {
                        Err(DenyReason::PaginationLimitExceeded)
                    } else {
                        Ok(None)
                    }
                }
                None if value.as_str() == Some("max") => Ok(Some(max.to_string())),
                None => Err(DenyReason::InvalidPaginationLimit),
            },
        }
    } else if limit.and_then(Value::as_str) == Some("max") {
        Ok(Some("0".to_string()))
    } else {
        Ok(None)
    }
}

/// An integer carried as a JSON number or a decimal string.
fn int_value(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.parse::<i64>().ok().map(i128::from),
        _ => None,
    }
}

/// True when a request value matches one of a rule's listed values. An empty list matches
/// anything. Strings match with a leading and/or trailing `*` glob. Other values must be
/// deeply equal, except that numbers never match: OpenBao compares the policy's integer with
/// the request's JSON number as different types, so a numeric constraint matches no request.
fn value_in_list(value: &Value, list: &[Value]) -> bool {
    if list.is_empty() {
        return true;
    }
    list.iter().any(|item| match (item, value) {
        (Value::Null, _) | (_, Value::Null) => item.is_null() && value.is_null(),
        (Value::String(pattern), Value::String(v)) => glob_match(pattern, v),
        _ => deep_equal(item, value),
    })
}

fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| deep_equal(a, b))
        }
        // Numbers differ in type between policy and request; objects decode as lists of maps
        // on the policy side. Neither ever compares equal in OpenBao.
        _ => false,
    }
}

/// OpenBao's globbed string match: `*x`, `x*` and `*x*`; a pattern shorter than two
/// characters (including a lone `*`) only matches itself.
fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern.len() < 2 {
        return pattern == value;
    }
    let starts = pattern.starts_with('*');
    let ends = pattern.ends_with('*');
    match (starts, ends) {
        (true, true) => value.contains(&pattern[1..pattern.len() - 1]),
        (true, false) => value.ends_with(&pattern[1..]),
        (false, true) => value.starts_with(&pattern[..pattern.len() - 1]),
        (false, false) => pattern == value,
    }
}

#[cfg(test)]
mod tests;
