//! Role policy: which names a role lets a certificate carry, and the validity a request gets.

use std::time::Duration;

use crate::certutil::go_duration;
use crate::model::Role;

/// True if `name` is a syntactically valid host name (an optional trailing dot allowed).
pub fn valid_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    })
}

/// Glob match with `*` matching any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while ni < n.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Returns the first name the role does not allow, if any.
pub fn first_disallowed<'a>(role: &Role, names: &'a [String]) -> Option<&'a str> {
    names
        .iter()
        .find(|n| !name_allowed(role, n))
        .map(String::as_str)
}

/// True if the role allows `name` (a host name or an email address).
pub fn name_allowed(role: &Role, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let (is_email, reduced) = match lower.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => (true, domain.to_string()),
        _ => (false, lower.clone()),
    };
    let (is_wildcard, reduced) = match reduced.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, reduced),
    };
    if is_wildcard && !role.allow_wildcard_certificates {
        return false;
    }
    if role.enforce_hostnames && !valid_hostname(&reduced) {
        return false;
    }
    if role.allow_any_name {
        return true;
    }
    if role.allow_localhost && (reduced == "localhost" || reduced == "localdomain") {
        return true;
    }
    for domain in &role.allowed_domains {
        let domain = domain.to_ascii_lowercase();
        if domain.is_empty() {
            continue;
        }
        if role.allow_bare_domains
            && (lower == domain || (is_email && reduced == domain && !is_wildcard))
        {
            return true;
        }
        if role.allow_subdomains {
            let base = domain.strip_prefix("*.").unwrap_or(&domain);
            if reduced.ends_with(&format!(".{base}")) || (is_wildcard && reduced == base) {
                return true;
            }
        }
        if role.allow_glob_domains && domain.contains('*') && glob_match(&domain, &lower) {
            return true;
        }
    }
    false
}

/// The effective TTL of a request under a role: the requested TTL, else the role's, else the
/// mount default; capped at the role's max TTL (else the mount's), with OpenBao's warning.
pub fn effective_ttl(
    requested: Duration,
    role_ttl: Duration,
    role_max: Duration,
    mount_default: Duration,
    mount_max: Duration,
    warnings: &mut Vec<String>,
) -> Duration {
    let mut ttl = if !requested.is_zero() {
        requested
    } else if !role_ttl.is_zero() {
        role_ttl
    } else {
        mount_default
    };
    let max = if role_max.is_zero() {
        mount_max
    } else {
        role_max
    };
    if !max.is_zero() && ttl > max {
        warnings.push(format!(
            "TTL \"{}\" is longer than permitted maxTTL \"{}\", so maxTTL is being used",
            go_duration(ttl),
            go_duration(max)
        ));
        ttl = max;
    }
    ttl
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::role_field_specs;
    use kura_logical::FieldData;
    use serde_json::json;

    fn role(v: serde_json::Value) -> Role {
        let f = FieldData::new(
            v.as_object().unwrap().clone(),
            Default::default(),
            role_field_specs(),
        );
        Role::from_fields(&f, None).unwrap()
    }

    #[test]
    fn domains_subdomains_bare_glob() {
        let r = role(json!({"allowed_domains": "example.com", "allow_subdomains": true}));
        assert!(name_allowed(&r, "a.example.com"));
        assert!(name_allowed(&r, "x.y.example.com"));
        assert!(name_allowed(&r, "*.example.com"));
        assert!(
            !name_allowed(&r, "example.com"),
            "bare domain needs allow_bare_domains"
        );
        assert!(!name_allowed(&r, "a.other.com"));
        assert!(!name_allowed(&r, "aexample.com"));
        assert!(name_allowed(&r, "localhost"));
        let r = role(
            json!({"allowed_domains": "example.com", "allow_bare_domains": true, "allow_localhost": false}),
        );
        assert!(name_allowed(&r, "example.com"));
        assert!(!name_allowed(&r, "a.example.com"));
        assert!(!name_allowed(&r, "localhost"));
        let r = role(json!({"allowed_domains": "*.svc.local", "allow_glob_domains": true}));
        assert!(name_allowed(&r, "db.svc.local"));
        assert!(!name_allowed(&r, "db.other.local"));
        let r = role(json!({"allow_any_name": true}));
        assert!(name_allowed(&r, "anything.test"));
        assert!(!name_allowed(&r, "bad name!"), "hostnames are enforced");
        let r = role(json!({"allow_any_name": true, "enforce_hostnames": false}));
        assert!(name_allowed(&r, "bad name!"));
        let r = role(
            json!({"allowed_domains": "example.com", "allow_subdomains": true, "allow_wildcard_certificates": false}),
        );
        assert!(!name_allowed(&r, "*.example.com"));
    }

    #[test]
    fn ttl_capping() {
        let mut w = Vec::new();
        let d = |s| Duration::from_secs(s);
        assert_eq!(
            effective_ttl(d(0), d(0), d(0), d(100), d(200), &mut w),
            d(100)
        );
        assert_eq!(
            effective_ttl(d(0), d(50), d(0), d(100), d(200), &mut w),
            d(50)
        );
        assert!(w.is_empty());
        assert_eq!(
            effective_ttl(d(18000), d(0), d(7200), d(100), d(200000), &mut w),
            d(7200)
        );
        assert_eq!(
            w,
            vec!["TTL \"5h0m0s\" is longer than permitted maxTTL \"2h0m0s\", so maxTTL is being used"]
        );
        assert!(glob_match("a*c", "abbbc") && !glob_match("a*c", "abd"));
    }
}
