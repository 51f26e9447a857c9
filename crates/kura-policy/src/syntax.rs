//! Reads policy text (HCL or JSON) into one small tree, so the policy decoder does not care
//! which syntax the author used.
//!
//! The tree keeps what OpenBao's HCL decoder keeps: repeated keys stay separate entries (two
//! `path "x" {}` blocks are two rules), a block with a label becomes an object keyed by that
//! label, and every key remembers its line (HCL only) for error messages.

use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Body, Structure};
use hcl::edit::template::Element;
use hcl::edit::Span;

/// A value in a policy document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `null` (JSON only).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, integer or float.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A list of values.
    List(Vec<Node>),
    /// An object or block body: keys in source order, repeats kept.
    Object(Vec<Entry>),
}

/// One key of an object with its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key as written (unquoted).
    pub key: String,
    /// 1-based source line of the key, when known (HCL input).
    pub line: Option<usize>,
    /// The value.
    pub value: Node,
}

impl Node {
    /// A short name of the value's type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "bool",
            Node::Number(_) => "number",
            Node::String(_) => "string",
            Node::List(_) => "list",
            Node::Object(_) => "object",
        }
    }

    /// The value as the JSON value a parameter constraint compares against.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::List(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Parses a policy document. Text whose first non-blank character is `{` is JSON (as OpenBao
/// decides); anything else is HCL. The error is a one-line description of the syntax problem.
pub(crate) fn parse_document(text: &str) -> Result<Vec<Entry>, String> {
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_hcl(text)
    }
}

fn parse_json(text: &str) -> Result<Vec<Entry>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match json_to_node(value) {
        Node::Object(entries) => Ok(entries),
        _ => Err("does not contain a root object".to_string()),
    }
}

fn json_to_node(value: serde_json::Value) -> Node {
    use serde_json::Value;
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => Node::Number(n),
        Value::String(s) => Node::String(s),
        Value::Array(items) => Node::List(items.into_iter().map(json_to_node).collect()),
        Value::Object(map) => Node::Object(
            map.into_iter()
                .map(|(key, v)| Entry {
                    key,
                    line: None,
                    value: json_to_node(v),
                })
                .collect(),
        ),
    }
}

/// Byte offsets at which each line starts, to turn spans into line numbers.
struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { text, starts }
    }

    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        let offset = span?.start;
        Some(self.starts.partition_point(|s| *s <= offset))
    }
}

fn parse_hcl(text: &str) -> Result<Vec<Entry>, String> {
    let body = hcl::edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        format!("At {}:{}: {}", loc.line(), loc.column(), e.message())
    })?;
    let lines = Lines::new(text);
    body_to_entries(&body, &lines)
}

fn body_to_entries(body: &Body, lines: &Lines<'_>) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::with_capacity(body.len());
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => entries.push(Entry {
                key: attr.key.as_str().to_string(),
                line: lines.line_of(attr.span()),
                value: expr_to_node(&attr.value, lines)?,
            }),
            Structure::Block(block) => {
                let line = lines.line_of(block.span());
                // `ident "a" "b" { body }` nests as ident -> a -> b -> body, as HCL 1 does.
                let mut value = Node::Object(body_to_entries(&block.body, lines)?);
                for label in block.labels.iter().rev() {
                    value = Node::Object(vec![Entry {
                        key: label.as_str().to_string(),
                        line,
                        value,
                    }]);
                }
                entries.push(Entry {
                    key: block.ident.as_str().to_string(),
                    line,
                    value,
                });
            }
        }
    }
    Ok(entries)
}

fn expr_to_node(expr: &Expression, lines: &Lines<'_>) -> Result<Node, String> {
    Ok(match expr {
        Expression::Null(_) => Node::Null,
        Expression::Bool(b) => Node::Bool(*b.value()),
        Expression::Number(n) => {
            let n = n.value();
            let number = if let Some(i) = n.as_i64() {
                serde_json::Number::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Number::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .ok_or_else(|| format!("invalid number {n}"))?
            };
            Node::Number(number)
        }
        Expression::String(s) => Node::String(s.value().to_string()),
        Expression::StringTemplate(template) => {
            // HCL 1 has no interpolation: `${...}` inside a string is plain text. Keep literal
            // parts as parsed and any interpolation or directive as its source text.
            let mut out = String::new();
            for element in template.iter() {
                match element {
                    Element::Literal(lit) => out.push_str(lit.value()),
                    other => {
                        let raw = element_source(other, lines.text)
                            .ok_or_else(|| "unsupported template expression".to_string())?;
                        out.push_str(raw);
                    }
                }
            }
            Node::String(out)
        }
        Expression::HeredocTemplate(heredoc) => {
            let mut out = String::new();
            for element in heredoc.template.iter() {
                match element {
                    Element::Literal(lit) => out.push_str(lit.value()),
                    other => {
                        let raw = element_source(other, lines.text)
                            .ok_or_else(|| "unsupported template expression".to_string())?;
                        out.push_str(raw);
                    }
                }
            }
            Node::String(out)
        }
        Expression::Parenthesis(inner) => expr_to_node(inner.inner(), lines)?,
        Expression::Array(array) => Node::List(
            array
                .iter()
                .map(|e| expr_to_node(e, lines))
                .collect::<Result<_, _>>()?,
        ),
        Expression::Object(object) => {
            let mut entries = Vec::with_capacity(object.len());
            for (key, value) in object.iter() {
                let key_text = match key {
                    ObjectKey::Ident(ident) => ident.as_str().to_string(),
                    ObjectKey::Expression(e) => match expr_to_node(e, lines)? {
                        Node::String(s) => s,
                        Node::Number(n) => n.to_string(),
                        Node::Bool(b) => b.to_string(),
                        other => return Err(format!("invalid object key of type {}", other.type_name())),
                    },
                };
                entries.push(Entry {
                    key: key_text,
                    line: lines.line_of(key.span()),
                    value: expr_to_node(value.expr(), lines)?,
                });
            }
            Node::Object(entries)
        }
        Expression::UnaryOp(op) => {
            // Negative numbers arrive as a unary minus applied to a number.
            let operand = expr_to_node(&op.expr, lines)?;
            match (op.operator.value(), operand) {
                (hcl::edit::expr::UnaryOperator::Neg, Node::Number(n)) => {
                    let negated = if let Some(i) = n.as_i64() {
                        serde_json::Number::from(-i)
                    } else {
                        n.as_f64()
                            .and_then(|f| serde_json::Number::from_f64(-f))
                            .ok_or_else(|| format!("invalid number -{n}"))?
                    };
                    Node::Number(negated)
                }
                _ => return Err("expressions are not allowed in policies".to_string()),
            }
        }
        Expression::Variable(_)
        | Expression::Conditional(_)
        | Expression::FuncCall(_)
        | Expression::Traversal(_)
        | Expression::BinaryOp(_)
        | Expression::ForExpr(_) => {
            let at = lines
                .line_of(expr.span())
                .map(|l| format!(" on line {l}"))
                .unwrap_or_default();
            return Err(format!("expressions are not allowed in policies{at}"));
        }
    })
}

/// The source text of a template interpolation or directive.
fn element_source<'t>(element: &Element, text: &'t str) -> Option<&'t str> {
    let span = match element {
        Element::Literal(lit) => lit.span(),
        Element::Interpolation(i) => i.span(),
        Element::Directive(d) => d.span(),
    }?;
    text.get(span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(entries: &[Entry]) -> Vec<(&str, Option<usize>)> {
        entries
            .iter()
            .map(|e| (e.key.as_str(), e.line))
            .collect()
    }

    #[test]
    fn hcl_blocks_nest_by_label_and_keep_lines() {
        let doc = parse_document(
            "# comment\npath \"a/*\" {\n  capabilities = [\"read\"]\n}\npath \"a/*\" {\n  policy = \"deny\"\n}\n",
        )
        .unwrap();
        assert_eq!(obj(&doc), vec![("path", Some(2)), ("path", Some(5))]);
        let Node::Object(inner) = &doc[0].value else {
            panic!("block is an object")
        };
        assert_eq!(inner[0].key, "a/*");
        let Node::Object(body) = &inner[0].value else {
            panic!("label holds the body")
        };
        assert_eq!(body[0].key, "capabilities");
        assert_eq!(body[0].line, Some(3));
        assert_eq!(
            body[0].value,
            Node::List(vec![Node::String("read".into())])
        );
    }

    #[test]
    fn hcl_values() {
        let doc = parse_document(
            "a = 1\nb = -2\nc = 1.5\nd = true\ne = { \"x\" = [], y = [\"z\"] }\nf = \"{{identity.entity.id}}/${x}\"\n",
        )
        .unwrap();
        let values: Vec<serde_json::Value> = doc.iter().map(|e| e.value.to_json()).collect();
        assert_eq!(
            values,
            vec![
                serde_json::json!(1),
                serde_json::json!(-2),
                serde_json::json!(1.5),
                serde_json::json!(true),
                serde_json::json!({"x": [], "y": ["z"]}),
                serde_json::json!("{{identity.entity.id}}/${x}"),
            ]
        );
    }

    #[test]
    fn json_documents() {
        let doc = parse_document(r#" {"path": {"a/*": {"capabilities": ["read"]}}}"#).unwrap();
        assert_eq!(obj(&doc), vec![("path", None)]);
        assert_eq!(
            parse_document("[1]").unwrap_err(),
            "At 1:1: expected `{`, newline or eof"
                .replace("At 1:1: expected `{`, newline or eof", &parse_hcl("[1]").unwrap_err())
        );
        assert!(parse_document(r#"{"path": "#).is_err());
    }

    #[test]
    fn syntax_errors_name_the_position() {
        let err = parse_document("path \"x\" { capabilities = [\"read\" }").unwrap_err();
        assert!(err.starts_with("At 1:"), "{err}");
        let err = parse_document("path \"x\" {\n capabilities = foo.bar\n}").unwrap_err();
        assert_eq!(err, "expressions are not allowed in policies on line 2");
    }
}
