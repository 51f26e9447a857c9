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

/// A compiled path table mapping patterns to backend-defined identifiers `R`.
pub struct PathTable<R> {
    entries: Vec<(Regex, PathSpec, R)>,
}

impl<R: Copy> PathTable<R> {
    /// Compiles the table. Panics on an invalid pattern: patterns are compile-time constants
    /// and a broken one is a programming error caught by every test that builds the backend.
    pub fn new(entries: Vec<(PathSpec, R)>) -> Self {
        let entries = entries
            .into_iter()
            .map(|(spec, id)| {
                let re = Regex::new(&format!("^(?:{})$", spec.pattern))
                    .unwrap_or_else(|e| panic!("invalid path pattern {:?}: {e}", spec.pattern));
                (re, spec, id)
            })
            .collect();
        PathTable { entries }
    }

    /// Finds the first entry matching `path` (no operation check).
    pub fn lookup(&self, path: &str) -> Option<(&PathSpec, R, HashMap<String, String>)> {
        for (re, spec, id) in &self.entries {
            if let Some(caps) = re.captures(path) {
                let captures = re
                    .capture_names()
                    .flatten()
                    .filter_map(|n| {
                        caps.name(n)
                            .map(|m| (n.to_string(), m.as_str().to_string()))
                    })
                    .collect();
                return Some((spec, *id, captures));
            }
        }
        None
    }

    /// Routes a request by its relative path and operation. Unknown path → `UnsupportedPath`;
    /// known path, wrong operation → `UnsupportedOperation`. Create falls back to Update's
    /// handler when only one is declared, as OpenBao's framework does.
    pub fn route(&self, req: &Request) -> Result<Route<'_, R>> {
        let (spec, id, captures) = self
            .lookup(&req.relative_path)
            .ok_or(LogicalError::UnsupportedPath)?;
        let op_ok = spec.operations.contains(&req.operation)
            || (req.operation == Operation::Create && spec.operations.contains(&Operation::Update))
            || (req.operation == Operation::Update && spec.operations.contains(&Operation::Create));
        if !op_ok {
            return Err(LogicalError::UnsupportedOperation);
        }
        Ok(Route {
            id,
            spec,
            fields: FieldData::new(req.data.clone(), captures, spec.fields.clone()),
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
