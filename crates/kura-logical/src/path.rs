//! Declarative path tables: each backend lists its paths once — pattern, fields, operations,
//! existence check, forwarding flag, help — and routes requests through the table.

use std::collections::HashMap;

use regex::Regex;

use crate::{FieldData, FieldSpec, LogicalError, Operation, Request, Result};

/// One path of a backend.
#[derive(Debug, Clone)]
pub struct PathSpec {
    /// Regular expression (anchored automatically) with named captures, e.g.
    /// `data/(?P<path>.+)`.
    pub pattern: &'static str,
    /// Fields, including the named captures.
    pub fields: Vec<FieldSpec>,
    /// Operations served.
    pub operations: Vec<Operation>,
    /// True if create/update requests should be told apart with an existence check.
    pub existence_check: bool,
    /// True if this path always runs on the active node.
    pub forward_on_standby: bool,
    /// One-line help.
    pub synopsis: &'static str,
}

impl PathSpec {
    /// A path with the given pattern and operations and no fields.
    pub fn new(pattern: &'static str, operations: &[Operation], synopsis: &'static str) -> Self {
        PathSpec {
            pattern,
            fields: Vec::new(),
            operations: operations.to_vec(),
            existence_check: false,
            forward_on_standby: false,
            synopsis,
        }
    }

    /// Builder: sets the fields.
    pub fn fields(mut self, fields: Vec<FieldSpec>) -> Self {
        self.fields = fields;
        self
    }

    /// Builder: enables the existence check.
    pub fn with_existence_check(mut self) -> Self {
        self.existence_check = true;
        self
    }

    /// Builder: always forward to the active node.
    pub fn forwarded(mut self) -> Self {
        self.forward_on_standby = true;
        self
    }
}

/// A matched path: which entry, and its typed fields.
pub struct Route<'a, R> {
    /// The backend's identifier for this path.
    pub id: R,
    /// The matched spec.
    pub spec: &'a PathSpec,
    /// Request fields with URL captures merged in.
    pub fields: FieldData,
}

/// The literal text every match of `pattern` (anchored at the start) begins with: the
/// characters before the first regex syntax, less one before a quantifier; empty when the
/// pattern has an alternation anywhere (it may apply to the first characters).
fn literal_prefix(pattern: &str) -> String {
    if pattern.contains('|') {
        return String::new();
    }
    let mut prefix = String::new();
    for c in pattern.chars() {
        match c {
            '?' | '*' | '{' | '+' => {
                prefix.pop();
                break;
            }
            '.' | '^' | '$' | '(' | ')' | '[' | ']' | '}' | '\\' => break,
            c => prefix.push(c),
        }
    }
    prefix
}

/// A compiled path table mapping patterns to backend-defined identifiers `R`.
pub struct PathTable<R> {
    entries: Vec<(Regex, PathSpec, R)>,
    /// Each entry's literal prefix: a path that does not start with it cannot match, and is
    /// passed over without running the regex.
    prefixes: Vec<String>,
    /// Each entry's field specs, shared with every request routed to it.
    fields: Vec<std::sync::Arc<[FieldSpec]>>,
}

impl<R: Copy> PathTable<R> {
    /// Compiles the table. Panics on an invalid pattern: patterns are compile-time constants
    /// and a broken one is a programming error caught by every test that builds the backend.
    pub fn new(entries: Vec<(PathSpec, R)>) -> Self {
        let entries: Vec<(Regex, PathSpec, R)> = entries
            .into_iter()
            .map(|(spec, id)| {
                let re = Regex::new(&format!("^(?:{})$", spec.pattern))
                    .unwrap_or_else(|e| panic!("invalid path pattern {:?}: {e}", spec.pattern));
                (re, spec, id)
            })
            .collect();
        let fields = entries
            .iter()
            .map(|(_, spec, _)| spec.fields.clone().into())
            .collect();
        let prefixes = entries
            .iter()
            .map(|(_, spec, _)| literal_prefix(spec.pattern))
            .collect();
        PathTable {
            entries,
            prefixes,
            fields,
        }
    }

    /// The index of the first entry matching `path`, with its captures.
    fn find(&self, path: &str) -> Option<(usize, HashMap<String, String>)> {
        for (i, (re, _, _)) in self.entries.iter().enumerate() {
            if !path.starts_with(self.prefixes[i].as_str()) {
                continue;
            }
            if let Some(caps) = re.captures(path) {
                let captures = re
                    .capture_names()
                    .flatten()
                    .filter_map(|n| {
                        caps.name(n)
                            .map(|m| (n.to_string(), m.as_str().to_string()))
                    })
                    .collect();
                return Some((i, captures));
            }
        }
        None
    }

    /// Finds the first entry matching `path` (no operation check).
    pub fn lookup(&self, path: &str) -> Option<(&PathSpec, R, HashMap<String, String>)> {
        let (i, captures) = self.find(path)?;
        let (_, spec, id) = &self.entries[i];
        Some((spec, *id, captures))
    }

    /// Routes a request by its relative path and operation. Unknown path → `UnsupportedPath`;
    /// known path, wrong operation → `UnsupportedOperation`. Create falls back to Update's
    /// handler when only one is declared, as OpenBao's framework does.
    pub fn route(&self, req: &Request) -> Result<Route<'_, R>> {
        let (i, captures) = self
            .find(&req.relative_path)
            .ok_or(LogicalError::UnsupportedPath)?;
        let (_, spec, id) = &self.entries[i];
        let id = *id;
        let op_ok = spec.operations.contains(&req.operation)
            || (req.operation == Operation::Create && spec.operations.contains(&Operation::Update))
            || (req.operation == Operation::Update && spec.operations.contains(&Operation::Create));
        if !op_ok {
            return Err(LogicalError::UnsupportedOperation);
        }
        Ok(Route {
            id,
            spec,
            fields: FieldData::new(req.data.clone(), captures, self.fields[i].clone()),
        })
    }

    /// True if the path (any operation) is marked as always forwarded.
    pub fn forwards(&self, path: &str) -> bool {
        self.lookup(path)
            .is_some_and(|(s, _, _)| s.forward_on_standby)
    }

    /// True if the path declares an existence check.
    pub fn has_existence_check(&self, path: &str) -> bool {
        self.lookup(path).is_some_and(|(s, _, _)| s.existence_check)
    }

    /// All specs, for help output.
    pub fn specs(&self) -> impl Iterator<Item = &PathSpec> {
        self.entries.iter().map(|(_, s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldType;

    #[test]
    fn literal_prefixes_never_exclude_a_match() {
        assert_eq!(literal_prefix("config"), "config");
        assert_eq!(literal_prefix("data/(?P<path>.+)"), "data/");
        assert_eq!(literal_prefix("keys?"), "key");
        assert_eq!(literal_prefix("keys*/x"), "key");
        assert_eq!(literal_prefix("role/{1}"), "role");
        assert_eq!(literal_prefix("a+"), "");
        assert_eq!(literal_prefix("roles?/(?P<name>\\w+)"), "role");
        assert_eq!(literal_prefix("issuer/(?P<r>[^/]+)/pem"), "issuer/");
        assert_eq!(literal_prefix("login|logout"), "");
        assert_eq!(literal_prefix("(?:a|b)/c"), "");
        assert_eq!(literal_prefix("x\\.y"), "x");
        // Every path a pattern matches starts with its prefix.
        for (pattern, path) in [
            ("keys?", "key"),
            ("keys?", "keys"),
            ("roles?/(?P<name>\\w+)", "role/a"),
            ("login|logout", "logout"),
            ("x\\.y", "x.y"),
        ] {
            let re = Regex::new(&format!("^(?:{pattern})$")).unwrap();
            assert!(re.is_match(path), "{pattern} {path}");
            assert!(
                path.starts_with(&literal_prefix(pattern)),
                "{pattern} {path}"
            );
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum P {
        Config,
        Data,
    }

    fn table() -> PathTable<P> {
        PathTable::new(vec![
            (
                PathSpec::new("config", &[Operation::Read, Operation::Update], "cfg"),
                P::Config,
            ),
            (
                PathSpec::new(
                    "data/(?P<path>.+)",
                    &[Operation::Read, Operation::Update],
                    "data",
                )
                .fields(vec![FieldSpec::new("path", FieldType::String, "")])
                .with_existence_check()
                .forwarded(),
                P::Data,
            ),
        ])
    }

    #[test]
    fn routes_with_captures_and_ops() {
        let t = table();
        let mut req = Request::new(Operation::Read, "secret/data/a/b");
        req.relative_path = "data/a/b".into();
        let r = t.route(&req).unwrap();
        assert_eq!(r.id, P::Data);
        assert_eq!(r.fields.string("path").unwrap(), "a/b");
        req.operation = Operation::Create;
        assert_eq!(t.route(&req).unwrap().id, P::Data);
        req.operation = Operation::Delete;
        assert!(matches!(
            t.route(&req),
            Err(LogicalError::UnsupportedOperation)
        ));
        req.relative_path = "configx".into();
        assert!(matches!(t.route(&req), Err(LogicalError::UnsupportedPath)));
        assert!(t.forwards("data/x"));
        assert!(!t.forwards("config"));
        assert!(t.has_existence_check("data/x"));
    }
}
