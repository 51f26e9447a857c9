//! Templates inside policies.
//!
//! * Identity templates in path names (`path "secret/{{identity.entity.id}}/*"`), filled in when
//!   a token's ACL is built from the token's entity and groups, as OpenBao's ACL templating does.
//! * The `list_scan_response_keys_filter_path` template (`"{{ .path }}{{ .key }}"`), which names
//!   the path a listed key must be readable at for it to stay in a filtered LIST/SCAN answer.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::syntax::Node;

/// Identity data a templated policy path can refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityContext {
    /// The token's entity, if it has one.
    pub entity: Option<TemplateEntity>,
    /// The groups the entity belongs to (directly or by inheritance).
    pub groups: Vec<TemplateGroup>,
    /// The namespace the ACL is built for; `identity.groups.names.*` only sees groups of this
    /// namespace when it is not empty.
    pub namespace_id: String,
    /// The time `{{time.now}}` renders; the current time when `None`.
    pub now: Option<SystemTime>,
}

/// An entity as templates see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateEntity {
    /// `identity.entity.id`
    pub id: String,
    /// `identity.entity.name`
    pub name: String,
    /// `identity.entity.metadata.<key>`
    pub metadata: BTreeMap<String, String>,
    /// `identity.entity.aliases.<mount accessor>.*`
    pub aliases: Vec<TemplateAlias>,
}

/// An entity alias as templates see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateAlias {
    /// Accessor of the auth mount the alias belongs to.
    pub mount_accessor: String,
    /// `...aliases.<accessor>.id`
    pub id: String,
    /// `...aliases.<accessor>.name`
    pub name: String,
    /// `...aliases.<accessor>.metadata.<key>`
    pub metadata: BTreeMap<String, String>,
    /// `...aliases.<accessor>.custom_metadata.<key>`
    pub custom_metadata: BTreeMap<String, String>,
}

/// A group as templates see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateGroup {
    /// Group ID.
    pub id: String,
    /// Group name.
    pub name: String,
    /// ID of the namespace the group lives in.
    pub namespace_id: String,
    /// Group metadata.
    pub metadata: BTreeMap<String, String>,
}

/// Per-policy switches for what an identity template may substitute. OpenBao stores them with
/// the policy (`allow_slashes_in_identity_templates`, `allow_wildcards_in_identity_templates`);
/// both default to false, and a substituted value that breaks them makes the whole ACL fail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TemplateOptions {
    /// A substituted value may contain `/`.
    pub allow_slashes: bool,
    /// A substituted value may contain `*` or `+`.
    pub allow_wildcards: bool,
}

/// Why a template could not be validated or filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` and `}}` do not pair up.
    #[error("unbalanced templating characters")]
    Unbalanced,
    /// An `identity.entity.*` directive, but the token has no entity.
    #[error("string contains entity template directives but no entity was provided")]
    NoEntity,
    /// An `identity.groups.*` directive, but the entity is in no group.
    #[error("string contains groups template directives but no groups were provided")]
    NoGroups,
    /// The directive names nothing, or a value that is empty or missing.
    #[error("no value could be found for one of the template directives")]
    ValueNotFound,
    /// `identity.entity.aliases.<x>` without a field.
    #[error("invalid alias selector")]
    InvalidAliasSelector,
    /// No alias of the entity belongs to the named mount accessor.
    #[error("alias not found")]
    AliasNotFound,
    /// `identity.groups.<x>` where x is neither `ids` nor `names`.
    #[error("invalid groups selector")]
    InvalidGroupsSelector,
    /// `identity.groups.ids.<x>` without a field.
    #[error("invalid groups accessor")]
    InvalidGroupsAccessor,
    /// The entity is not in the named group.
    #[error("entity is not a member of group {0:?}")]
    NotGroupMember(String),
    /// `time.<x>` where x is not `now`.
    #[error("invalid time selector {0:?}")]
    InvalidTimeSelector(String),
    /// `time.now.plus` without a duration.
    #[error("missing time operand")]
    MissingTimeOperand,
    /// `time.now.plus.<d>` with a bad duration.
    #[error("invalid duration: {0}")]
    InvalidDuration(String),
    /// `time.now.<op>.<d>` where op is neither `plus` nor `minus`.
    #[error("invalid time operator {0:?}")]
    InvalidTimeOperator(String),
    /// A substituted value holds a character the policy's [`TemplateOptions`] forbid.
    #[error("template substitution contains forbidden value: {0:?}")]
    ForbiddenValue(String),
}

impl TemplateError {
    /// True for the errors that fail the whole ACL rather than just drop the templated path.
    pub fn is_fatal(&self) -> bool {
        matches!(self, TemplateError::ForbiddenValue(_))
    }
}

/// Checks that `{{`/`}}` are balanced and reports whether the string holds any directive.
pub(crate) fn has_templating(input: &str) -> Result<bool, TemplateError> {
    if input.is_empty() {
        return Ok(false);
    }
    let mut pieces = input.split("{{");
    let first = pieces.next().unwrap_or_default();
    if first.contains("}}") {
        return Err(TemplateError::Unbalanced);
    }
    let mut found = false;
    for piece in pieces {
        if piece.split("}}").count() != 2 {
            return Err(TemplateError::Unbalanced);
        }
        found = true;
    }
    Ok(found)
}

/// Fills every `{{ directive }}` of `input` from `ctx`.
pub(crate) fn populate(
    input: &str,
    ctx: &IdentityContext,
    options: TemplateOptions,
) -> Result<String, TemplateError> {
    if input.is_empty() {
        return Ok(String::new());
    }
    let mut pieces = input.split("{{");
    let first = pieces.next().unwrap_or_default();
    if first.contains("}}") {
        return Err(TemplateError::Unbalanced);
    }
    let mut out = String::with_capacity(input.len() * 2);
    out.push_str(first);
    for piece in pieces {
        let mut parts = piece.split("}}");
        let (Some(directive), Some(rest), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TemplateError::Unbalanced);
        };
        let value = render_directive(directive.trim(), ctx)?;
        if !options.allow_slashes && value.contains('/') {
            return Err(TemplateError::ForbiddenValue("/".into()));
        }
        if !options.allow_wildcards {
            for wildcard in ["*", "+"] {
                if value.contains(wildcard) {
                    return Err(TemplateError::ForbiddenValue(wildcard.into()));
                }
            }
        }
        out.push_str(&value);
        out.push_str(rest);
    }
    Ok(out)
}

/// A plain string value: empty means not found.
fn non_empty(value: &str) -> Result<String, TemplateError> {
    if value.is_empty() {
        Err(TemplateError::ValueNotFound)
    } else {
        Ok(value.to_string())
    }
}

/// A metadata lookup: a missing key is not found, a present but empty value is kept (as
/// OpenBao does).
fn metadata_value(map: &BTreeMap<String, String>, key: &str) -> Result<String, TemplateError> {
    map.get(key).cloned().ok_or(TemplateError::ValueNotFound)
}

fn render_directive(input: &str, ctx: &IdentityContext) -> Result<String, TemplateError> {
    if let Some(rest) = input.strip_prefix("identity.entity.") {
        let entity = ctx.entity.as_ref().ok_or(TemplateError::NoEntity)?;
        return render_entity(rest, entity);
    }
    if let Some(rest) = input.strip_prefix("identity.groups.") {
        if ctx.groups.is_empty() {
            return Err(TemplateError::NoGroups);
        }
        return render_groups(rest, ctx);
    }
    if let Some(rest) = input.strip_prefix("time.") {
        return render_time(rest, ctx);
    }
    Err(TemplateError::ValueNotFound)
}

fn render_entity(selector: &str, entity: &TemplateEntity) -> Result<String, TemplateError> {
    match selector {
        "id" => non_empty(&entity.id),
        "name" => non_empty(&entity.name),
        // Whole maps and lists cannot be rendered into a path.
        "metadata" | "groups.names" | "groups.ids" => Err(TemplateError::ValueNotFound),
        _ => {
            if let Some(key) = selector.strip_prefix("metadata.") {
                return metadata_value(&entity.metadata, key);
            }
            if let Some(rest) = selector.strip_prefix("aliases.") {
                let (accessor, field) = rest
                    .split_once('.')
                    .ok_or(TemplateError::InvalidAliasSelector)?;
                let alias = entity
                    .aliases
                    .iter()
                    .find(|a| a.mount_accessor == accessor)
                    .ok_or(TemplateError::AliasNotFound)?;
                return render_alias(field, alias);
            }
            Err(TemplateError::ValueNotFound)
        }
    }
}

fn render_alias(field: &str, alias: &TemplateAlias) -> Result<String, TemplateError> {
    match field {
        "id" => non_empty(&alias.id),
        "name" => non_empty(&alias.name),
        "metadata" | "custom_metadata" => Err(TemplateError::ValueNotFound),
        _ => {
            if let Some(key) = field.strip_prefix("metadata.") {
                return metadata_value(&alias.metadata, key);
            }
            if let Some(key) = field.strip_prefix("custom_metadata.") {
                return metadata_value(&alias.custom_metadata, key);
            }
            Err(TemplateError::ValueNotFound)
        }
    }
}

fn render_groups(selector: &str, ctx: &IdentityContext) -> Result<String, TemplateError> {
    let (kind, rest) = selector
        .split_once('.')
        .ok_or(TemplateError::InvalidGroupsSelector)?;
    let by_id = match kind {
        "ids" => true,
        "names" => false,
        _ => return Err(TemplateError::InvalidGroupsSelector),
    };
    let (wanted, field) = rest
        .split_once('.')
        .ok_or(TemplateError::InvalidGroupsAccessor)?;
    let group = ctx
        .groups
        .iter()
        .find(|g| {
            if by_id {
                g.id == wanted
            } else {
                (ctx.namespace_id.is_empty() || g.namespace_id == ctx.namespace_id)
                    && g.name == wanted
            }
        })
        .ok_or_else(|| TemplateError::NotGroupMember(wanted.to_string()))?;
    match field {
        "id" => Ok(group.id.clone()),
        "name" => non_empty(&group.name),
        _ => match field.strip_prefix("metadata.") {
            Some(key) => metadata_value(&group.metadata, key),
            None => Err(TemplateError::ValueNotFound),
        },
    }
}

fn render_time(selector: &str, ctx: &IdentityContext) -> Result<String, TemplateError> {
    let now = ctx.now.unwrap_or_else(SystemTime::now);
    let mut secs: i64 = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let ops: Vec<&str> = selector.splitn(3, '.').collect();
    if ops[0] != "now" {
        return Err(TemplateError::InvalidTimeSelector(ops[0].to_string()));
    }
    match ops.len() {
        1 => {}
        2 => return Err(TemplateError::MissingTimeOperand),
        _ => {
            let nanos = crate::duration::parse_duration_second(&Node::String(ops[2].to_string()))
                .map_err(TemplateError::InvalidDuration)?;
            let delta = nanos / 1_000_000_000;
            match ops[1] {
                "plus" => secs += delta,
                "minus" => secs -= delta,
                other => return Err(TemplateError::InvalidTimeOperator(other.to_string())),
            }
        }
    }
    Ok(secs.to_string())
}

/// The compiled `list_scan_response_keys_filter_path` of a path rule: literal text with
/// `{{ .path }}` (the listed path) and `{{ .key }}` (one listed key) substitutions.
///
/// OpenBao evaluates this as a full Go template; Kura supports the two substitutions (with
/// optional `-` trim markers), which is what filter paths are made of, and rejects any other
/// action when the policy is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysFilterPath {
    raw: String,
    parts: Vec<FilterPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FilterPart {
    Text(String),
    Path,
    Key,
}

impl KeysFilterPath {
    /// Compiles a filter template.
    pub fn parse(raw: &str) -> Result<KeysFilterPath, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(open) = rest.find("{{") {
            let mut text = rest[..open].to_string();
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                "unable to parse template: template: template:1: unclosed action".to_string()
            })?;
            let mut action = &after[..close];
            rest = &after[close + 2..];
            if let Some(a) = action.strip_prefix('-') {
                action = a;
                text.truncate(text.trim_end().len());
            }
            if let Some(a) = action.strip_suffix('-') {
                action = a;
                rest = rest.trim_start();
            }
            if !text.is_empty() {
                parts.push(FilterPart::Text(text));
            }
            parts.push(match action.trim() {
                ".path" => FilterPart::Path,
                ".key" => FilterPart::Key,
                other => {
                    return Err(format!(
                        "unable to parse template: unsupported action {{{{{other}}}}} (only {{{{ .path }}}} and {{{{ .key }}}} are supported)"
                    ))
                }
            });
        }
        if rest.contains("}}") {
            return Err("unable to parse template: unexpected \"}}\"".to_string());
        }
        if !rest.is_empty() {
            parts.push(FilterPart::Text(rest.to_string()));
        }
        Ok(KeysFilterPath {
            raw: raw.to_string(),
            parts,
        })
    }

    /// The template as written in the policy.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True when the rendered path depends on the key (OpenBao rejects a filter path that
    /// renders the same path for two different keys).
    pub fn uses_key(&self) -> bool {
        self.parts.contains(&FilterPart::Key)
    }

    /// The path a key must be readable at: the template rendered with the listed `path` and
    /// one `key` of the answer.
    pub fn render(&self, path: &str, key: &str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                FilterPart::Text(t) => out.push_str(t),
                FilterPart::Path => out.push_str(path),
                FilterPart::Key => out.push_str(key),
            }
        }
        out
    }
}

impl fmt::Display for KeysFilterPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx() -> IdentityContext {
        IdentityContext {
            entity: Some(TemplateEntity {
                id: "ent-id".into(),
                name: "alice".into(),
                metadata: [
                    ("team".to_string(), "ops".to_string()),
                    ("empty".to_string(), String::new()),
                ]
                .into_iter()
                .collect(),
                aliases: vec![TemplateAlias {
                    mount_accessor: "auth_userpass_1".into(),
                    id: "alias-id".into(),
                    name: "alice-login".into(),
                    metadata: [("k".to_string(), "v".to_string())].into_iter().collect(),
                    custom_metadata: [("c".to_string(), "d".to_string())].into_iter().collect(),
                }],
            }),
            groups: vec![
                TemplateGroup {
                    id: "gid-1".into(),
                    name: "admins".into(),
                    namespace_id: "root".into(),
                    metadata: [("env".to_string(), "prod".to_string())]
                        .into_iter()
                        .collect(),
                },
                TemplateGroup {
                    id: "gid-2".into(),
                    name: "other-ns".into(),
                    namespace_id: "ns2".into(),
                    metadata: BTreeMap::new(),
                },
            ],
            namespace_id: "root".into(),
            now: Some(UNIX_EPOCH + Duration::from_secs(1_000_000)),
        }
    }

    fn fill(s: &str) -> Result<String, TemplateError> {
        populate(s, &ctx(), TemplateOptions::default())
    }

    #[test]
    fn validity_check() {
        assert_eq!(has_templating("plain/path"), Ok(false));
        assert_eq!(has_templating(""), Ok(false));
        assert_eq!(has_templating("a/{{identity.entity.id}}/b"), Ok(true));
        assert_eq!(has_templating("a/{{x}}{{y}}"), Ok(true));
        assert_eq!(has_templating("a/{{x"), Err(TemplateError::Unbalanced));
        assert_eq!(has_templating("a/}}"), Err(TemplateError::Unbalanced));
        assert_eq!(has_templating("a/{{x}}}}"), Err(TemplateError::Unbalanced));
    }

    #[test]
    fn entity_directives() {
        assert_eq!(fill("s/{{identity.entity.id}}/x").unwrap(), "s/ent-id/x");
        assert_eq!(fill("s/{{ identity.entity.name }}").unwrap(), "s/alice");
        assert_eq!(
            fill("s/{{identity.entity.metadata.team}}").unwrap(),
            "s/ops"
        );
        assert_eq!(
            fill("s/{{identity.entity.metadata.empty}}/x").unwrap(),
            "s//x"
        );
        assert_eq!(
            fill("s/{{identity.entity.metadata.missing}}"),
            Err(TemplateError::ValueNotFound)
        );
        assert_eq!(
            fill("s/{{identity.entity.metadata}}"),
            Err(TemplateError::ValueNotFound)
        );
        assert_eq!(
            fill("s/{{identity.entity.aliases.auth_userpass_1.name}}").unwrap(),
            "s/alice-login"
        );
        assert_eq!(
            fill("{{identity.entity.aliases.auth_userpass_1.metadata.k}}/{{identity.entity.aliases.auth_userpass_1.custom_metadata.c}}")
                .unwrap(),
            "v/d"
        );
        assert_eq!(
            fill("{{identity.entity.aliases.nope.name}}"),
            Err(TemplateError::AliasNotFound)
        );
        assert_eq!(
            fill("{{identity.entity.aliases.nope}}"),
            Err(TemplateError::InvalidAliasSelector)
        );
        assert_eq!(
            fill("{{identity.entity.groups.names}}"),
            Err(TemplateError::ValueNotFound)
        );
        assert_eq!(
            fill("{{something.else}}"),
            Err(TemplateError::ValueNotFound)
        );
        let no_entity = IdentityContext::default();
        assert_eq!(
            populate(
                "{{identity.entity.id}}",
                &no_entity,
                TemplateOptions::default()
            ),
            Err(TemplateError::NoEntity)
        );
        assert_eq!(
            populate(
                "{{identity.groups.ids.x.name}}",
                &no_entity,
                TemplateOptions::default()
            ),
            Err(TemplateError::NoGroups)
        );
    }

    #[test]
    fn group_directives() {
        assert_eq!(
            fill("{{identity.groups.ids.gid-1.name}}").unwrap(),
            "admins"
        );
        assert_eq!(
            fill("{{identity.groups.names.admins.id}}").unwrap(),
            "gid-1"
        );
        assert_eq!(
            fill("{{identity.groups.names.admins.metadata.env}}").unwrap(),
            "prod"
        );
        // Names only match groups of the ACL's namespace; IDs match anywhere.
        assert_eq!(
            fill("{{identity.groups.names.other-ns.id}}"),
            Err(TemplateError::NotGroupMember("other-ns".into()))
        );
        assert_eq!(fill("{{identity.groups.ids.gid-2.id}}").unwrap(), "gid-2");
        assert_eq!(
            fill("{{identity.groups.foo.x.id}}"),
            Err(TemplateError::InvalidGroupsSelector)
        );
        assert_eq!(
            fill("{{identity.groups.ids.gid-1}}"),
            Err(TemplateError::InvalidGroupsAccessor)
        );
    }

    #[test]
    fn time_directives() {
        assert_eq!(fill("{{time.now}}").unwrap(), "1000000");
        assert_eq!(fill("{{time.now.plus.1h}}").unwrap(), "1003600");
        assert_eq!(fill("{{time.now.minus.100}}").unwrap(), "999900");
        assert_eq!(
            fill("{{time.now.plus}}"),
            Err(TemplateError::MissingTimeOperand)
        );
        assert_eq!(
            fill("{{time.now.times.1h}}"),
            Err(TemplateError::InvalidTimeOperator("times".into()))
        );
        assert_eq!(
            fill("{{time.later}}"),
            Err(TemplateError::InvalidTimeSelector("later".into()))
        );
        assert!(matches!(
            fill("{{time.now.plus.xyz}}"),
            Err(TemplateError::InvalidDuration(_))
        ));
    }

    #[test]
    fn forbidden_characters_follow_the_options() {
        let mut c = ctx();
        c.entity.as_mut().unwrap().name = "a/b".into();
        let err =
            populate("x/{{identity.entity.name}}", &c, TemplateOptions::default()).unwrap_err();
        assert_eq!(err, TemplateError::ForbiddenValue("/".into()));
        assert!(err.is_fatal());
        assert_eq!(
            err.to_string(),
            r#"template substitution contains forbidden value: "/""#
        );
        let slashes = TemplateOptions {
            allow_slashes: true,
            allow_wildcards: false,
        };
        assert_eq!(
            populate("x/{{identity.entity.name}}", &c, slashes).unwrap(),
            "x/a/b"
        );
        for wild in ["ab*", "+"] {
            c.entity.as_mut().unwrap().name = wild.into();
            let err = populate("x/{{identity.entity.name}}", &c, slashes).unwrap_err();
            assert!(matches!(err, TemplateError::ForbiddenValue(_)));
            let all = TemplateOptions {
                allow_slashes: true,
                allow_wildcards: true,
            };
            assert_eq!(
                populate("x/{{identity.entity.name}}", &c, all).unwrap(),
                format!("x/{wild}")
            );
        }
        // Literal text of the path may hold slashes and wildcards; only substitutions are checked.
        assert_eq!(
            fill("a/+/{{identity.entity.id}}/*").unwrap(),
            "a/+/ent-id/*"
        );
    }

    #[test]
    fn filter_paths() {
        let t = KeysFilterPath::parse("{{ .path }}{{ .key }}").unwrap();
        assert!(t.uses_key());
        assert_eq!(t.render("kv/metadata/", "a"), "kv/metadata/a");
        let t = KeysFilterPath::parse("kv/data/{{- .key -}} /x").unwrap();
        assert_eq!(t.render("ignored", "k"), "kv/data/k/x");
        assert_eq!(t.as_str(), "kv/data/{{- .key -}} /x");
        let t = KeysFilterPath::parse("kv/static").unwrap();
        assert!(!t.uses_key());
        assert!(KeysFilterPath::parse("{{ .path }}{{ .bogus")
            .unwrap_err()
            .contains("unclosed action"));
        assert!(KeysFilterPath::parse("{{ printf \"%s\" .key }}").is_err());
    }
}
