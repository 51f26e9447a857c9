//! A small syntax tree shared by the HCL and JSON readers.
//!
//! OpenBao parses both formats into HCL 1's object lists: a body is a list of items, each with a
//! key, possibly labels, and either a plain value or a nested body; keys may repeat (several
//! `listener` blocks). This module builds the same shape from `hcl-rs` (HCL 2 syntax), from the
//! small HCL 1 reader in [`crate::hcl1`] when `hcl-rs` rejects a file, and from `serde_json`,
//! keeping line numbers where the parser provides them (HCL only).

use crate::error::ConfigError;
use hcl::edit::structure::{Body, Structure};
use hcl::edit::Span;
use serde_json::{Map, Value};

/// One `key = value` or `key "label" { ... }` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    /// The attribute key or block type.
    pub key: String,
    /// Block labels (HCL) — empty for attributes and for JSON, whose labels are nested objects.
    pub labels: Vec<String>,
    /// The value.
    pub value: Val,
    /// One-based line of the item, when known.
    pub line: Option<usize>,
    /// Written as an HCL block (`key "label" { ... }`), whose labels are all given by the
    /// syntax; false for JSON objects and `key = { ... }` values, whose labels may be nested.
    pub block: bool,
}

/// The value of an item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    /// A plain value: string, number, boolean, null, or a list that is not a list of objects.
    Scalar(Value),
    /// A block or object body.
    Body(Vec<Item>),
}

/// A block after its labels have been resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Labeled {
    /// The labels found (possibly fewer than asked for: the body may name them instead).
    pub labels: Vec<String>,
    /// The block's body.
    pub body: Vec<Item>,
    /// One-based line of the block, when known.
    pub line: Option<usize>,
}

/// Parses HCL text into items.
pub(crate) fn parse_hcl(text: &str, file: &str) -> Result<Vec<Item>, ConfigError> {
    match hcl::edit::parser::parse_body(text) {
        Ok(body) => convert_body(&body, &LineIndex::new(text), file),
        // HCL 1 (OpenBao's dialect) accepts a few spellings HCL 2 does not; try it before
        // giving up, and report HCL 2's error, which is the more precise, when both fail.
        Err(e) => crate::hcl1::parse(text, file).map_err(|_| ConfigError::Syntax {
            file: file.to_string(),
            line: e.location().line(),
            column: e.location().column(),
            message: e.message().to_string(),
        }),
    }
}

/// Parses JSON text into items. The document must be an object.
pub(crate) fn parse_json(text: &str, file: &str) -> Result<Vec<Item>, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    match value {
        Value::Object(map) => Ok(object_items(map, None)),
        _ => Err(ConfigError::Invalid {
            file: file.to_string(),
            line: Some(1),
            message: "the configuration must be a JSON object".to_string(),
        }),
    }
}

/// Items for `key = value`: an object becomes a body, a non-empty list of objects becomes one
/// body per element (as HCL 1 flattens them), anything else stays a scalar.
pub(crate) fn value_items(key: &str, value: Value, line: Option<usize>) -> Vec<Item> {
    match value {
        Value::Object(map) => vec![Item {
            key: key.to_string(),
            labels: Vec::new(),
            value: Val::Body(object_items(map, line)),
            line,
            block: false,
        }],
        Value::Array(list) if !list.is_empty() && list.iter().all(Value::is_object) => list
            .into_iter()
            .flat_map(|element| value_items(key, element, line))
            .collect(),
        other => vec![Item {
            key: key.to_string(),
            labels: Vec::new(),
            value: Val::Scalar(other),
            line,
            block: false,
        }],
    }
}

fn object_items(map: Map<String, Value>, line: Option<usize>) -> Vec<Item> {
    map.into_iter()
        .flat_map(|(k, v)| value_items(&k, v, line))
        .collect()
}

/// Resolves up to `wanted` labels for a block item.
///
/// HCL gives labels directly (`audit "file" "to-stdout" { ... }`). JSON nests them as objects
/// (`{"audit": {"file": {"to-stdout": {...}}}}`); a nested level is taken as a label when every
/// entry of the body is itself an object, as HCL 1 does, but never more than `wanted` levels.
/// One body may thus yield several blocks (`{"listener": {"tcp": {...}, "unix": {...}}}`).
pub(crate) fn labeled_blocks(item: &Item, wanted: usize) -> Option<Vec<Labeled>> {
    let Val::Body(body) = &item.value else {
        return None;
    };
    let mut out = Vec::new();
    if item.block {
        // HCL block syntax gives every label; the body is never read as more labels.
        out.push(Labeled {
            labels: item.labels.clone(),
            body: body.clone(),
            line: item.line,
        });
    } else {
        peel(item.labels.clone(), body, item.line, wanted, &mut out);
    }
    Some(out)
}

fn peel(
    labels: Vec<String>,
    body: &[Item],
    line: Option<usize>,
    wanted: usize,
    out: &mut Vec<Labeled>,
) {
    let nested = !body.is_empty()
        && body.iter().all(|child| {
            !child.block && child.labels.is_empty() && matches!(child.value, Val::Body(_))
        });
    if labels.len() >= wanted || !nested {
        out.push(Labeled {
            labels,
            body: body.to_vec(),
            line,
        });
        return;
    }
    for child in body {
        if let Val::Body(inner) = &child.value {
            let mut next = labels.clone();
            next.push(child.key.clone());
            peel(next, inner, child.line.or(line), wanted, out);
        }
    }
}

/// Turns a body back into a JSON object (for raw option maps). Repeated keys become lists.
pub(crate) fn body_to_json(body: &[Item]) -> Map<String, Value> {
    let mut map = Map::new();
    for item in body {
        let mut value = match &item.value {
            Val::Scalar(v) => v.clone(),
            Val::Body(inner) => Value::Object(body_to_json(inner)),
        };
        // Labels nest, as in OpenBao's JSON form.
        for label in item.labels.iter().rev() {
            let mut wrapped = Map::new();
            wrapped.insert(label.clone(), value);
            value = Value::Object(wrapped);
        }
        let repeated_block = matches!(item.value, Val::Body(_));
        match map.get_mut(&item.key) {
            Some(Value::Array(list)) if repeated_block => list.push(value),
            Some(existing) if repeated_block && existing.is_object() => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            _ => {
                map.insert(item.key.clone(), value);
            }
        }
    }
    map
}

fn convert_body(body: &Body, lines: &LineIndex, file: &str) -> Result<Vec<Item>, ConfigError> {
    let mut items = Vec::new();
    for structure in body.iter() {
        let line = structure.span().map(|span| lines.line_of(span.start));
        match structure {
            Structure::Attribute(attr) => {
                let key = attr.key.as_str().to_string();
                let value = evaluate(attr.value.clone(), &key, line, file)?;
                items.extend(value_items(&key, value, line));
            }
            Structure::Block(block) => {
                items.push(Item {
                    key: block.ident.as_str().to_string(),
                    labels: block
                        .labels
                        .iter()
                        .map(|label| label.as_str().to_string())
                        .collect(),
                    value: Val::Body(convert_body(&block.body, lines, file)?),
                    line,
                    block: true,
                });
            }
        }
    }
    Ok(items)
}

/// Evaluates an attribute's expression without variables or functions.
///
/// A quoted string with `${...}` is a template in HCL 2 but plain text in HCL 1 (which OpenBao
/// uses); when such a template cannot be evaluated, its text is kept as written, as OpenBao would.
fn evaluate(
    expr: hcl::edit::expr::Expression,
    key: &str,
    line: Option<usize>,
    file: &str,
) -> Result<Value, ConfigError> {
    use hcl::eval::{Context, Evaluate};
    let expr: hcl::Expression = expr.into();
    let ctx = Context::new();
    let value = match expr.evaluate(&ctx) {
        Ok(value) => value,
        Err(err) => match &expr {
            hcl::Expression::TemplateExpr(template) => match template.as_ref() {
                hcl::TemplateExpr::QuotedString(s) => hcl::Value::String(s.clone()),
                hcl::TemplateExpr::Heredoc(h) => hcl::Value::String(h.template.clone()),
            },
            _ => {
                return Err(ConfigError::InvalidValue {
                    file: file.to_string(),
                    line,
                    option: key.to_string(),
                    context: "in this file".to_string(),
                    message: format!("only literal values are allowed ({err})"),
                })
            }
        },
    };
    serde_json::to_value(value).map_err(|e| ConfigError::InvalidValue {
        file: file.to_string(),
        line,
        option: key.to_string(),
        context: "in this file".to_string(),
        message: e.to_string(),
    })
}

/// Byte offset to line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hcl_blocks_keep_labels_and_lines() {
        let items = parse_hcl(
            "ui = true\n\nlistener \"tcp\" {\n  address = \"a\"\n}\n",
            "t.hcl",
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].key, "ui");
        assert_eq!(items[0].line, Some(1));
        assert_eq!(items[0].value, Val::Scalar(json!(true)));
        assert_eq!(items[1].labels, vec!["tcp".to_string()]);
        assert_eq!(items[1].line, Some(3));
        let Val::Body(body) = &items[1].value else {
            panic!("block expected")
        };
        assert_eq!(body[0].line, Some(4));
    }

    #[test]
    fn json_labels_are_peeled_up_to_the_wanted_depth() {
        let items = parse_json(
            r#"{"audit": {"file": {"p": {"options": {"file_path": "x"}}}}}"#,
            "t.json",
        )
        .unwrap();
        let blocks = labeled_blocks(&items[0], 2).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].labels, vec!["file".to_string(), "p".to_string()]);
        assert_eq!(blocks[0].body[0].key, "options");
    }

    #[test]
    fn json_lists_of_objects_become_repeated_blocks() {
        let items = parse_json(
            r#"{"listener": [{"tcp": {"address": "a"}}, {"tcp": {"address": "b"}}], "x": ["s"]}"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(items.iter().filter(|i| i.key == "listener").count(), 2);
        assert_eq!(items[2].value, Val::Scalar(json!(["s"])));
    }

    #[test]
    fn body_round_trips_to_json() {
        let items = parse_hcl(
            "a = 1\nb { c = \"d\" }\nb { c = \"e\" }\nl \"x\" { y = [1, 2] }\n",
            "t.hcl",
        )
        .unwrap();
        assert_eq!(
            Value::Object(body_to_json(&items)),
            json!({"a": 1, "b": [{"c": "d"}, {"c": "e"}], "l": {"x": {"y": [1, 2]}}})
        );
    }

    #[test]
    fn interpolation_is_kept_as_text() {
        let items = parse_hcl("a = \"x-${foo}\"\n", "t.hcl").unwrap();
        assert_eq!(items[0].value, Val::Scalar(json!("x-${foo}")));
    }

    #[test]
    fn variables_are_rejected_with_file_and_line() {
        let err = parse_hcl("\nui = yes\n", "t.hcl").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.hcl:2:"), "{text}");
        assert!(text.contains("\"ui\""), "{text}");
    }
}
