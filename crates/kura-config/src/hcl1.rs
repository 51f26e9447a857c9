//! A small reader for HCL 1, the dialect OpenBao itself parses.
//!
//! `hcl-rs` reads HCL 2, which covers nearly every OpenBao configuration. HCL 1 also accepts a
//! few spellings HCL 2 rejects and that OpenBao configurations do use: several items or nested
//! blocks on one line (`listener "tcp" { address = "x", tls_disable = true }`), quoted keys
//! (`"ui" = true`), `key = { ... }` objects without separators. When `hcl-rs` rejects a file, it
//! is read again with this module; the resulting tree is the same shape (see [`crate::tree`]).
//!
//! Grammar (after hashicorp/hcl v1): a body is a list of items, optionally separated by commas;
//! an item is one or more keys (identifiers or strings) followed by `= value` (one key only) or
//! by `{ body }` (the extra keys are labels). Values are numbers, `true`/`false`, strings,
//! heredocs (`<<EOF`, `<<-EOF`), lists `[a, b,]` and objects `{ body }`. Comments are `#`,
//! `//` and `/* */`. In strings, `${...}` is kept as written (HCL 1 does not interpolate).

use crate::error::ConfigError;
use crate::tree::{body_to_json, value_items, Item, Val};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Number(Value),
    Bool(bool),
    LBrace,
    RBrace,
    LBrack,
    RBrack,
    Comma,
    Assign,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    column: usize,
}

/// Parses HCL 1 text into items.
pub(crate) fn parse(text: &str, file: &str) -> Result<Vec<Item>, ConfigError> {
    let tokens = Lexer::new(text, file).run()?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        file,
    };
    let items = parser.body(false)?;
    Ok(items)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    column: usize,
    file: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(text: &str, file: &'a str) -> Self {
        Self {
            chars: text.chars().collect(),
            pos: 0,
            line: 1,
            column: 1,
            file,
        }
    }

    fn err(&self, line: usize, column: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn run(mut self) -> Result<Vec<Token>, ConfigError> {
        let mut out = Vec::new();
        loop {
            self.skip_trivia()?;
            let (line, column) = (self.line, self.column);
            let Some(c) = self.peek(0) else {
                out.push(Token {
                    tok: Tok::Eof,
                    line,
                    column,
                });
                return Ok(out);
            };
            let tok = match c {
                '{' => self.single(Tok::LBrace),
                '}' => self.single(Tok::RBrace),
                '[' => self.single(Tok::LBrack),
                ']' => self.single(Tok::RBrack),
                ',' => self.single(Tok::Comma),
                '=' => self.single(Tok::Assign),
                '"' => Tok::Str(self.string()?),
                '<' if self.peek(1) == Some('<') => Tok::Str(self.heredoc()?),
                c if c.is_ascii_digit()
                    || (c == '-' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) =>
                {
                    self.number()?
                }
                c if c.is_alphabetic() || c == '_' => {
                    let mut ident = String::new();
                    while let Some(c) = self.peek(0) {
                        if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c == ':' {
                            ident.push(c);
                            self.bump();
                        } else {
                            break;
                        }
                    }
                    match ident.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        _ => Tok::Ident(ident),
                    }
                }
                other => {
                    return Err(self.err(line, column, format!("unexpected character {other:?}")))
                }
            };
            out.push(Token { tok, line, column });
        }
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.bump();
        tok
    }

    fn skip_trivia(&mut self) -> Result<(), ConfigError> {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(c), _) if c.is_whitespace() => {
                    self.bump();
                }
                (Some('#'), _) | (Some('/'), Some('/')) => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                (Some('/'), Some('*')) => {
                    let (line, column) = (self.line, self.column);
                    self.bump();
                    self.bump();
                    loop {
                        match (self.peek(0), self.peek(1)) {
                            (Some('*'), Some('/')) => {
                                self.bump();
                                self.bump();
                                break;
                            }
                            (Some(_), _) => {
                                self.bump();
                            }
                            (None, _) => {
                                return Err(self.err(line, column, "comment not terminated"))
                            }
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn string(&mut self) -> Result<String, ConfigError> {
        let (line, column) = (self.line, self.column);
        self.bump(); // opening quote
        let mut out = String::new();
        let mut braces = 0usize;
        loop {
            let Some(c) = self.bump() else {
                return Err(self.err(line, column, "string not terminated"));
            };
            match c {
                '"' if braces == 0 => return Ok(out),
                '\n' if braces == 0 => {
                    return Err(self.err(line, column, "newline in string"));
                }
                '$' if self.peek(0) == Some('{') => {
                    out.push('$');
                    out.push('{');
                    self.bump();
                    braces += 1;
                }
                '{' if braces > 0 => {
                    braces += 1;
                    out.push(c);
                }
                '}' if braces > 0 => {
                    braces -= 1;
                    out.push(c);
                }
                '\\' if braces == 0 => out.push(self.escape(line, column)?),
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, line: usize, column: usize) -> Result<char, ConfigError> {
        let bad = |lexer: &Self| lexer.err(line, column, "invalid escape sequence in string");
        let c = self.bump().ok_or_else(|| bad(self))?;
        let hex = |lexer: &mut Self, n: usize| -> Result<char, ConfigError> {
            let mut code = 0u32;
            for _ in 0..n {
                let d = lexer
                    .bump()
                    .and_then(|c| c.to_digit(16))
                    .ok_or_else(|| bad(lexer))?;
                code = code * 16 + d;
            }
            char::from_u32(code).ok_or_else(|| bad(lexer))
        };
        Ok(match c {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'x' => hex(self, 2)?,
            'u' => hex(self, 4)?,
            'U' => hex(self, 8)?,
            _ => return Err(bad(self)),
        })
    }

    fn heredoc(&mut self) -> Result<String, ConfigError> {
        let (line, column) = (self.line, self.column);
        self.bump();
        self.bump();
        let indented = self.peek(0) == Some('-');
        if indented {
            self.bump();
        }
        let mut marker = String::new();
        while let Some(c) = self.peek(0) {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                marker.push(c);
                self.bump();
            } else {
                break;
            }
        }
        if self.peek(0) == Some('\r') {
            self.bump();
        }
        if marker.is_empty() || self.bump() != Some('\n') {
            return Err(self.err(line, column, "invalid heredoc anchor"));
        }
        let mut lines = Vec::new();
        loop {
            let mut current = String::new();
            let mut ended = false;
            loop {
                match self.bump() {
                    Some('\n') => break,
                    Some(c) => current.push(c),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            let trimmed = current.trim_end_matches('\r');
            let is_end = if indented {
                trimmed.trim_start() == marker
            } else {
                trimmed == marker
            };
            if is_end {
                if indented {
                    // Remove the closing marker's indentation from every line, as HCL 1 does.
                    let indent = trimmed.len() - trimmed.trim_start().len();
                    for l in &mut lines {
                        let l: &mut String = l;
                        let strip = l
                            .chars()
                            .take(indent)
                            .take_while(|c| c.is_whitespace())
                            .count();
                        l.drain(..strip);
                    }
                }
                let mut text = lines.join("\n");
                text.push('\n');
                return Ok(text);
            }
            if ended {
                return Err(self.err(line, column, format!("heredoc not terminated by {marker}")));
            }
            lines.push(current);
        }
    }

    fn number(&mut self) -> Result<Tok, ConfigError> {
        let (line, column) = (self.line, self.column);
        let mut text = String::new();
        while let Some(c) = self.peek(0) {
            let sign_after_exponent =
                (c == '-' || c == '+') && text.ends_with(['e', 'E']) && !text.starts_with("0x");
            if c.is_ascii_alphanumeric()
                || c == '.'
                || sign_after_exponent
                || (c == '-' && text.is_empty())
            {
                text.push(c);
                self.bump();
            } else {
                break;
            }
        }
        let bad = || self.err(line, column, format!("invalid number {text:?}"));
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let integer = if let Some(hex) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            i64::from_str_radix(hex, 16).ok()
        } else if digits.len() > 1
            && digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            i64::from_str_radix(&digits[1..], 8).ok()
        } else if digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse::<i64>().ok()
        } else {
            None
        };
        if let Some(i) = integer {
            return Ok(Tok::Number(Value::from(if negative { -i } else { i })));
        }
        let f: f64 = text.parse().map_err(|_| bad())?;
        serde_json::Number::from_f64(f)
            .map(|n| Tok::Number(Value::Number(n)))
            .ok_or_else(bad)
    }
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    file: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn err(&self, token: &Token, message: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            file: self.file.to_string(),
            line: token.line,
            column: token.column,
            message: message.into(),
        }
    }

    /// Items up to `}` (inside an object) or the end of input (top level).
    fn body(&mut self, in_object: bool) -> Result<Vec<Item>, ConfigError> {
        let mut items = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Eof if in_object => {
                    return Err(self.err(&t, "expected \"}\", found end of file"))
                }
                Tok::Eof => return Ok(items),
                Tok::RBrace if in_object => {
                    self.next();
                    return Ok(items);
                }
                _ => {}
            }
            self.item(&mut items)?;
            if self.peek().tok == Tok::Comma {
                self.next();
            }
        }
    }

    fn item(&mut self, items: &mut Vec<Item>) -> Result<(), ConfigError> {
        let first = self.peek().clone();
        let mut keys = Vec::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::Ident(s) | Tok::Str(s) => keys.push(s),
                Tok::Assign if keys.len() == 1 => {
                    let line = Some(first.line);
                    let value = self.value()?;
                    let key = keys.remove(0);
                    match value {
                        Parsed::Body(body) => items.push(Item {
                            key,
                            labels: Vec::new(),
                            value: Val::Body(body),
                            line,
                            block: false,
                        }),
                        Parsed::Value(v) => items.extend(value_items(&key, v, line)),
                    }
                    return Ok(());
                }
                Tok::Assign if keys.is_empty() => {
                    return Err(self.err(&t, "expected a key before \"=\""))
                }
                Tok::Assign => {
                    return Err(self.err(
                        &t,
                        "nested object expected: \"{\" after block labels, found \"=\"",
                    ))
                }
                Tok::LBrace if !keys.is_empty() => {
                    let body = self.body(true)?;
                    let key = keys.remove(0);
                    items.push(Item {
                        key,
                        labels: keys,
                        value: Val::Body(body),
                        line: Some(first.line),
                        block: true,
                    });
                    return Ok(());
                }
                _ => return Err(self.err(&t, "expected a key, \"=\" or \"{\"")),
            }
        }
    }

    fn value(&mut self) -> Result<Parsed, ConfigError> {
        let t = self.next();
        Ok(match t.tok {
            Tok::Str(s) => Parsed::Value(Value::String(s)),
            Tok::Number(n) => Parsed::Value(n),
            Tok::Bool(b) => Parsed::Value(Value::Bool(b)),
            Tok::LBrace => Parsed::Body(self.body(true)?),
            Tok::LBrack => Parsed::Value(self.list()?),
            _ => return Err(self.err(&t, "expected a value")),
        })
    }

    fn list(&mut self) -> Result<Value, ConfigError> {
        let mut out = Vec::new();
        loop {
            if self.peek().tok == Tok::RBrack {
                self.next();
                return Ok(Value::Array(out));
            }
            let element = match self.value()? {
                Parsed::Value(v) => v,
                Parsed::Body(body) => Value::Object(body_to_json(&body)),
            };
            out.push(element);
            let t = self.next();
            match t.tok {
                Tok::Comma => {}
                Tok::RBrack => return Ok(Value::Array(out)),
                _ => return Err(self.err(&t, "expected \",\" or \"]\" in list")),
            }
        }
    }
}

enum Parsed {
    Value(Value),
    Body(Vec<Item>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_hcl2_rejects() {
        let items = parse(
            "\"ui\" = true\nlistener \"tcp\" { address = \"a\", tls_disable = 1 }\naudit \"file\" \"x\" { options { file_path = \"p\" } }\ncustom = { a = 1 b = 2 }\n",
            "t.hcl",
        )
        .unwrap();
        assert_eq!(items[0].key, "ui");
        assert_eq!(items[0].value, Val::Scalar(json!(true)));
        assert_eq!(items[1].labels, vec!["tcp".to_string()]);
        assert_eq!(items[1].line, Some(2));
        assert_eq!(
            Value::Object(body_to_json(&items)),
            json!({
                "ui": true,
                "listener": {"tcp": {"address": "a", "tls_disable": 1}},
                "audit": {"file": {"x": {"options": {"file_path": "p"}}}},
                "custom": {"a": 1, "b": 2}
            })
        );
    }

    #[test]
    fn literals() {
        let items = parse(
            "a = 0x10\nb = 010\nc = -5\nd = 1.5\ne = 1e3\nf = \"x\\n\\\"y\\u00e9\"\ng = \"${foo(\"bar\")}\"\nh = [1, \"two\", false,]\n# c1\n// c2\n/* c3\n*/ i = <<EOT\nline1\n  line2\nEOT\nj = <<-EOT\n    x\n      y\n    EOT\n",
            "t.hcl",
        )
        .unwrap();
        let obj = Value::Object(body_to_json(&items));
        assert_eq!(obj["a"], json!(16));
        assert_eq!(obj["b"], json!(8));
        assert_eq!(obj["c"], json!(-5));
        assert_eq!(obj["d"], json!(1.5));
        assert_eq!(obj["e"], json!(1000.0));
        assert_eq!(obj["f"], json!("x\n\"yé"));
        assert_eq!(obj["g"], json!("${foo(\"bar\")}"));
        assert_eq!(obj["h"], json!([1, "two", false]));
        assert_eq!(obj["i"], json!("line1\n  line2\n"));
        assert_eq!(obj["j"], json!("x\n  y\n"));
        assert_eq!(items[8].line, Some(12));
    }

    #[test]
    fn lists_of_objects_become_blocks() {
        let items = parse(
            "retry_join = [{ leader_api_addr = \"a\" }, { leader_api_addr = \"b\" }]\n",
            "t.hcl",
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert!(matches!(items[1].value, Val::Body(_)));
    }

    #[test]
    fn errors_carry_line_and_column() {
        for (text, line) in [
            ("a = 1\nb = \n}", 3),
            ("listener \"tcp\" {\n address = \"x\"\n", 3),
            ("a = \"unterminated\n", 1),
            ("a b = 1\n", 1),
            ("a = [1 2]\n", 1),
            ("a = @\n", 1),
            ("/* open\n", 1),
        ] {
            match parse(text, "t.hcl") {
                Err(ConfigError::Syntax { line: l, file, .. }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert_eq!(file, "t.hcl");
                }
                other => panic!("{text:?}: expected a syntax error, got {other:?}"),
            }
        }
    }
}
