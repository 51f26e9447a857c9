//! Reads policy text into one small tree, the way OpenBao's policy parser (HCL 1) does.
//!
//! OpenBao parses policies with HCL version 1, which is laxer than HCL 2 about layout:
//! `path "x" { capabilities = ["read"] policy = "write" }` on one line, a closing brace right
//! after a value, commas between items, extra block labels. A policy that `bao` accepts must
//! parse here too, so this module implements the HCL 1 grammar (and, for text starting with
//! `{`, HCL 1's forgiving JSON reader) rather than using an HCL 2 parser.
//!
//! The tree keeps what HCL 1 keeps: each item has a list of keys (`path "x" {}` is one item
//! with keys `path`, `x`), repeated keys stay separate items, and each item remembers the line
//! of its `=` (0 for blocks, as OpenBao reports them).

use std::fmt;

/// A value in a policy document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// `null` (JSON only).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number, integer or float.
    Number(serde_json::Number),
    /// A string (quoted or heredoc).
    String(String),
    /// A list of values.
    List(Vec<Node>),
    /// An object or block body: items in source order, repeats kept.
    Object(Vec<Item>),
}

/// One item of an object: its keys and value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    /// The keys, unquoted: `path "x" { }` has `["path", "x"]`, `a = 1` has `["a"]`.
    pub keys: Vec<String>,
    /// The line of the item's `=` (of its key, in JSON); 0 for a block, which has no `=`.
    pub line: usize,
    /// The value.
    pub value: Node,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    /// Top-level items.
    pub items: Vec<Item>,
    /// The text was JSON.
    pub json: bool,
}

impl Item {
    /// The first key (every item has one).
    pub(crate) fn key(&self) -> &str {
        self.keys.first().map(String::as_str).unwrap_or_default()
    }
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
            Node::Object(items) => Value::Object(
                items
                    .iter()
                    .map(|i| (i.key().to_string(), i.value.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A syntax error, shown as HCL 1 shows it: `At line:col: message` for HCL, `line:col:
/// message` for a JSON character error, and the bare message for JSON structure errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    line: usize,
    col: usize,
    message: String,
    style: ErrorStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorStyle {
    Hcl,
    JsonPositioned,
    JsonBare,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.style {
            ErrorStyle::Hcl => write!(f, "At {}:{}: {}", self.line, self.col, self.message),
            ErrorStyle::JsonPositioned => write!(f, "{}:{}: {}", self.line, self.col, self.message),
            ErrorStyle::JsonBare => f.write_str(&self.message),
        }
    }
}

/// Parses a policy document. Text whose first non-blank character is `{` is JSON (as OpenBao
/// decides); anything else is HCL.
pub(crate) fn parse_document(text: &str) -> Result<Document, SyntaxError> {
    let json = text.trim_start().starts_with('{');
    let mut parser = Parser::new(text, json)?;
    let items = if json {
        parser.json_document()?
    } else {
        parser.object_list(false)?
    };
    Ok(Document { items, json })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Eof,
    Ident,
    Number,
    Float,
    Bool,
    Null,
    String,
    Heredoc,
    LBrack,
    RBrack,
    LBrace,
    RBrace,
    Comma,
    Colon,
    Assign,
    Period,
    Add,
    Sub,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Eof => "EOF",
            Kind::Ident => "IDENT",
            Kind::Number => "NUMBER",
            Kind::Float => "FLOAT",
            Kind::Bool => "BOOL",
            Kind::Null => "NULL",
            Kind::String => "STRING",
            Kind::Heredoc => "HEREDOC",
            Kind::LBrack => "LBRACK",
            Kind::RBrack => "RBRACK",
            Kind::LBrace => "LBRACE",
            Kind::RBrace => "RBRACE",
            Kind::Comma => "COMMA",
            Kind::Colon => "COLON",
            Kind::Assign => "ASSIGN",
            Kind::Period => "PERIOD",
            Kind::Add => "ADD",
            Kind::Sub => "SUB",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    kind: Kind,
    line: usize,
    col: usize,
    /// Raw text of the token (strings with their quotes).
    text: String,
}

/// Turns text into tokens, HCL 1 style (or JSON style).
struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    col: usize,
    json: bool,
}

fn is_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (!c.is_ascii() && c.is_alphabetic())
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, json: bool) -> Self {
        Lexer {
            chars: text.chars().peekable(),
            line: 1,
            col: 1,
            json,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn error(&self, line: usize, col: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line,
            col,
            message: message.into(),
            style: if self.json {
                ErrorStyle::JsonPositioned
            } else {
                ErrorStyle::Hcl
            },
        }
    }

    /// Skips blanks and comments.
    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') if !self.json => self.skip_line(),
                Some('/') if !self.json => {
                    let (line, col) = (self.line, self.col);
                    let mut ahead = self.chars.clone();
                    ahead.next();
                    match ahead.next() {
                        Some('/') => self.skip_line(),
                        Some('*') => {
                            self.bump();
                            self.bump();
                            let mut prev = '\0';
                            loop {
                                match self.bump() {
                                    None => {
                                        return Err(self.error(line, col, "comment not terminated"))
                                    }
                                    Some('/') if prev == '*' => break,
                                    Some(c) => prev = c,
                                }
                            }
                        }
                        _ => return Err(self.error(line, col, "illegal char")),
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, SyntaxError> {
        self.skip_trivia()?;
        let (line, col) = (self.line, self.col);
        let token = |kind: Kind, text: String| Token {
            kind,
            line,
            col,
            text,
        };
        let Some(c) = self.peek() else {
            // HCL 1 reports the end of input one column further on.
            return Ok(Token {
                kind: Kind::Eof,
                line,
                col: col + 1,
                text: String::new(),
            });
        };
        let single = |lexer: &mut Self, kind: Kind| {
            lexer.bump();
            Ok(token(kind, c.to_string()))
        };
        match c {
            '[' => single(self, Kind::LBrack),
            ']' => single(self, Kind::RBrack),
            '{' => single(self, Kind::LBrace),
            '}' => single(self, Kind::RBrace),
            ',' => single(self, Kind::Comma),
            ':' if self.json => single(self, Kind::Colon),
            '=' if !self.json => single(self, Kind::Assign),
            '.' if !self.json => single(self, Kind::Period),
            '+' if !self.json => single(self, Kind::Add),
            other
                if self.json
                    && !is_letter(other)
                    && !other.is_ascii_digit()
                    && !matches!(other, '-' | '"') =>
            {
                self.bump();
                Err(self.error(line, col, format!("illegal char: {other}")))
            }
            '"' => {
                let text = self.scan_string(line, col)?;
                Ok(token(Kind::String, text))
            }
            '<' if !self.json => {
                let text = self.scan_heredoc(line, col)?;
                Ok(token(Kind::Heredoc, text))
            }
            '-' => {
                let mut ahead = self.chars.clone();
                ahead.next();
                if ahead.next().is_some_and(|d| d.is_ascii_digit()) {
                    let (kind, text) = self.scan_number();
                    Ok(token(kind, text))
                } else if self.json {
                    Err(self.error(line, col, "illegal char"))
                } else {
                    single(self, Kind::Sub)
                }
            }
            d if d.is_ascii_digit() => {
                let (kind, text) = self.scan_number();
                Ok(token(kind, text))
            }
            l if is_letter(l) => {
                let mut text = String::new();
                while let Some(c) = self.peek() {
                    let ok = if self.json {
                        c.is_ascii_alphanumeric()
                    } else {
                        is_letter(c) || c.is_ascii_digit() || c == '-' || c == '.'
                    };
                    if !ok {
                        break;
                    }
                    text.push(c);
                    self.bump();
                }
                let kind = match text.as_str() {
                    "true" | "false" => Kind::Bool,
                    "null" if self.json => Kind::Null,
                    _ if self.json => return Err(self.error(line, col, "illegal char")),
                    _ => Kind::Ident,
                };
                Ok(token(kind, text))
            }
            _ => {
                self.bump();
                Err(self.error(line, col, "illegal char"))
            }
        }
    }

    fn scan_number(&mut self) -> (Kind, String) {
        let mut text = String::new();
        if self.peek() == Some('-') {
            text.push('-');
            self.bump();
        }
        let mut kind = Kind::Number;
        // Hex numbers.
        if self.peek() == Some('0') {
            let mut ahead = self.chars.clone();
            ahead.next();
            if matches!(ahead.next(), Some('x' | 'X')) {
                text.push('0');
                self.bump();
                text.push(self.bump().unwrap_or('x'));
                while let Some(c) = self.peek().filter(char::is_ascii_hexdigit) {
                    text.push(c);
                    self.bump();
                }
                return (kind, text);
            }
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                text.push(c);
            } else if c == '.' && kind == Kind::Number {
                kind = Kind::Float;
                text.push(c);
            } else if matches!(c, 'e' | 'E') {
                kind = Kind::Float;
                text.push(c);
                self.bump();
                if let Some(sign) = self.peek().filter(|s| *s == '+' || *s == '-') {
                    text.push(sign);
                    self.bump();
                }
                continue;
            } else {
                break;
            }
            self.bump();
        }
        (kind, text)
    }

    /// Scans a quoted string; `${ ... }` may hold quotes and spans newlines, as in HCL 1.
    fn scan_string(&mut self, line: usize, col: usize) -> Result<String, SyntaxError> {
        let mut text = String::new();
        text.push(self.bump().unwrap_or('"'));
        let mut braces = 0usize;
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error(line, col, "literal not terminated"));
            };
            if c == '\n' && braces == 0 {
                return Err(self.error(self.line - 1, col, "literal not terminated"));
            }
            text.push(c);
            if c == '"' && braces == 0 {
                return Ok(text);
            }
            if !self.json {
                if braces == 0 && c == '$' && self.peek() == Some('{') {
                    braces += 1;
                    text.push('{');
                    self.bump();
                    continue;
                } else if braces > 0 && c == '{' {
                    braces += 1;
                }
                if braces > 0 && c == '}' {
                    braces -= 1;
                }
            }
            if c == '\\' {
                match self.bump() {
                    Some(escaped) => text.push(escaped),
                    None => return Err(self.error(line, col, "literal not terminated")),
                }
            }
        }
    }

    /// Scans `<<ANCHOR` / `<<-ANCHOR` ... `ANCHOR`, returning the body (lines kept with their
    /// newlines; for `<<-` the closing anchor's indentation is removed from every line).
    fn scan_heredoc(&mut self, line: usize, col: usize) -> Result<String, SyntaxError> {
        self.bump();
        if self.bump() != Some('<') {
            return Err(self.error(line, col, "illegal char"));
        }
        let indented = if self.peek() == Some('-') {
            self.bump();
            true
        } else {
            false
        };
        let mut anchor = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            anchor.push(c);
            self.bump();
        }
        if anchor.is_empty() || !anchor.chars().all(|c| is_letter(c) || c.is_ascii_digit()) {
            return Err(self.error(line, col, "heredoc expected marker"));
        }
        if self.peek() == Some('\r') {
            self.bump();
        }
        if self.bump() != Some('\n') {
            return Err(self.error(line, col, "heredoc not terminated"));
        }
        let mut lines: Vec<String> = Vec::new();
        loop {
            let mut current = String::new();
            let mut ended = false;
            loop {
                match self.bump() {
                    None => {
                        ended = true;
                        break;
                    }
                    Some('\n') => break,
                    Some(c) => current.push(c),
                }
            }
            let bare = current.trim_end_matches('\r');
            if bare.trim_start() == anchor && (indented || bare == anchor) {
                let indent = &bare[..bare.len() - anchor.len()];
                let body: Vec<&str> = if indented && lines.iter().all(|l| l.starts_with(indent)) {
                    lines.iter().map(|l| &l[indent.len()..]).collect()
                } else {
                    lines.iter().map(String::as_str).collect()
                };
                let mut text = String::new();
                for l in body {
                    text.push_str(l);
                    text.push('\n');
                }
                return Ok(text);
            }
            if ended {
                return Err(self.error(line, col, "heredoc not terminated"));
            }
            lines.push(current);
        }
    }
}

/// Undoes the escapes of a quoted string; `${ ... }` sections are kept verbatim.
fn unquote(raw: &str, json: bool, tok: &Token) -> Result<String, SyntaxError> {
    let err = |m: &str| SyntaxError {
        line: tok.line,
        col: tok.col,
        message: m.to_string(),
        style: if json {
            ErrorStyle::JsonPositioned
        } else {
            ErrorStyle::Hcl
        },
    };
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or_else(|| err("literal not terminated"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    let mut braces = 0usize;
    while let Some(c) = chars.next() {
        if !json {
            if braces == 0 && c == '$' && chars.peek() == Some(&'{') {
                braces = 1;
                out.push('$');
                out.push('{');
                chars.next();
                continue;
            }
            if braces > 0 {
                match c {
                    '{' => braces += 1,
                    '}' => braces -= 1,
                    _ => {}
                }
                out.push(c);
                continue;
            }
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next().ok_or_else(|| err("invalid syntax"))?;
        match escaped {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' if !json => out.push('\''),
            '/' if json => out.push('/'),
            'u' | 'U' | 'x' => {
                let n = match escaped {
                    'u' => 4,
                    'U' => 8,
                    _ => 2,
                };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                let code = u32::from_str_radix(&hex, 16).map_err(|_| err("invalid syntax"))?;
                let ch = char::from_u32(code)
                    .or_else(|| {
                        // A JSON surrogate pair: \uD83D\uDE00.
                        if !(0xD800..0xDC00).contains(&code) {
                            return None;
                        }
                        let mut ahead = chars.clone();
                        if ahead.next() != Some('\\') || ahead.next() != Some('u') {
                            return None;
                        }
                        let low: String = (0..4).filter_map(|_| ahead.next()).collect();
                        let low = u32::from_str_radix(&low, 16).ok()?;
                        let combined =
                            0x10000 + ((code - 0xD800) << 10) + (low.checked_sub(0xDC00)?);
                        let c = char::from_u32(combined)?;
                        chars = ahead;
                        Some(c)
                    })
                    .ok_or_else(|| err("invalid syntax"))?;
                out.push(ch);
            }
            d @ '0'..='7' if !json => {
                let mut code = d.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let next = chars
                        .next()
                        .and_then(|c| c.to_digit(8))
                        .ok_or_else(|| err("invalid syntax"))?;
                    code = code * 8 + next;
                }
                out.push(char::from_u32(code).ok_or_else(|| err("invalid syntax"))?);
            }
            _ => return Err(err("invalid syntax")),
        }
    }
    Ok(out)
}

/// HCL 1 grammar (and the JSON reader) over the lexer, with one token of look-ahead.
struct Parser<'a> {
    lexer: Lexer<'a>,
    current: Token,
    peeked: Option<Token>,
    json: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, json: bool) -> Result<Self, SyntaxError> {
        Ok(Parser {
            lexer: Lexer::new(text, json),
            current: Token {
                kind: Kind::Eof,
                line: 0,
                col: 0,
                text: String::new(),
            },
            peeked: None,
            json,
        })
    }

    fn scan(&mut self) -> Result<Token, SyntaxError> {
        let tok = match self.peeked.take() {
            Some(t) => t,
            None => self.lexer.next_token()?,
        };
        self.current = tok.clone();
        Ok(tok)
    }

    fn unscan(&mut self) {
        self.peeked = Some(self.current.clone());
    }

    fn error(&self, tok: &Token, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            line: tok.line,
            col: tok.col,
            message: message.into(),
            style: if self.json {
                ErrorStyle::JsonBare
            } else {
                ErrorStyle::Hcl
            },
        }
    }

    /// `item*` up to EOF (top level) or a closing brace (inside an object).
    fn object_list(&mut self, in_object: bool) -> Result<Vec<Item>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            if in_object {
                let tok = self.scan()?;
                self.unscan();
                if tok.kind == Kind::RBrace {
                    break;
                }
            }
            match self.object_item()? {
                Some(item) => items.push(item),
                None => break,
            }
            let tok = self.scan()?;
            if tok.kind != Kind::Comma {
                self.unscan();
            }
        }
        Ok(items)
    }

    /// `keys = value` or `keys { ... }`; `None` at end of input.
    fn object_item(&mut self) -> Result<Option<Item>, SyntaxError> {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let tok = self.scan()?;
            match tok.kind {
                Kind::Eof => {
                    if keys.is_empty() {
                        return Ok(None);
                    }
                    return Err(self.error(
                        &tok,
                        format!(
                            "key '{}' expected start of object ('{{') or assignment ('=')",
                            keys.join(" ")
                        ),
                    ));
                }
                Kind::Assign => {
                    if keys.len() > 1 {
                        return Err(self.error(&tok, "nested object expected: LBRACE got: ASSIGN"));
                    }
                    if keys.is_empty() {
                        return Err(self.error(&tok, "no object keys found!"));
                    }
                    let value = self.value()?;
                    return Ok(Some(Item {
                        keys,
                        line: tok.line,
                        value,
                    }));
                }
                Kind::LBrace => {
                    if keys.is_empty() {
                        return Err(self.error(&tok, "expected: IDENT | STRING got: LBRACE"));
                    }
                    let value = self.object_body()?;
                    return Ok(Some(Item {
                        keys,
                        line: 0,
                        value,
                    }));
                }
                Kind::Ident => keys.push(tok.text.clone()),
                Kind::String => keys.push(unquote(&tok.text, false, &tok)?),
                other => {
                    return Err(self.error(
                        &tok,
                        format!("expected: IDENT | STRING | ASSIGN | LBRACE got: {other}"),
                    ))
                }
            }
        }
    }

    /// After `{`: the items and the closing `}`.
    fn object_body(&mut self) -> Result<Node, SyntaxError> {
        let items = self.object_list(true)?;
        let tok = self.scan()?;
        if tok.kind != Kind::RBrace {
            return Err(self.error(
                &tok,
                format!("object expected closing RBRACE got: {}", tok.kind),
            ));
        }
        Ok(Node::Object(items))
    }

    /// The value after `=`.
    fn value(&mut self) -> Result<Node, SyntaxError> {
        let tok = self.scan()?;
        match tok.kind {
            Kind::Number | Kind::Float | Kind::Bool | Kind::String | Kind::Heredoc => {
                self.literal(&tok)
            }
            Kind::LBrace => self.object_body(),
            Kind::LBrack => self.list(),
            Kind::Eof => Err(self.error(&tok, "expected a value, got: EOF")),
            other => Err(self.error(
                &tok,
                format!(
                    "Unknown token: {}:{} {} {}",
                    tok.line, tok.col, other, tok.text
                ),
            )),
        }
    }

    fn literal(&self, tok: &Token) -> Result<Node, SyntaxError> {
        Ok(match tok.kind {
            Kind::Bool => Node::Bool(tok.text == "true"),
            Kind::Null => Node::Null,
            Kind::String => Node::String(unquote(&tok.text, self.json, tok)?),
            Kind::Heredoc => Node::String(tok.text.clone()),
            Kind::Number => Node::Number(parse_int(&tok.text).ok_or_else(|| {
                self.error(
                    tok,
                    format!(
                        "strconv.ParseInt: parsing {:?}: value out of range",
                        tok.text
                    ),
                )
            })?),
            Kind::Float => {
                let f: f64 = tok
                    .text
                    .parse()
                    .map_err(|_| self.error(tok, format!("invalid number {:?}", tok.text)))?;
                Node::Number(
                    serde_json::Number::from_f64(f)
                        .ok_or_else(|| self.error(tok, format!("invalid number {:?}", tok.text)))?,
                )
            }
            _ => return Err(self.error(tok, format!("unexpected token: {}", tok.kind))),
        })
    }

    /// After `[`: values separated by commas (trailing comma allowed) and the closing `]`.
    fn list(&mut self) -> Result<Node, SyntaxError> {
        let mut items = Vec::new();
        let mut need_comma = false;
        loop {
            let tok = self.scan()?;
            // HCL 1's JSON reader does not insist on commas between list elements.
            if need_comma && !self.json && !matches!(tok.kind, Kind::Comma | Kind::RBrack) {
                return Err(self.error(
                    &tok,
                    format!(
                        "error parsing list, expected comma or list end, got: {}",
                        tok.kind
                    ),
                ));
            }
            match tok.kind {
                Kind::Bool | Kind::Number | Kind::Float | Kind::String | Kind::Heredoc => {
                    items.push(self.literal(&tok)?);
                    need_comma = true;
                }
                Kind::Null if self.json => {
                    items.push(Node::Null);
                    need_comma = true;
                }
                Kind::Comma => need_comma = false,
                Kind::LBrace => {
                    items.push(if self.json {
                        self.json_object_body()?
                    } else {
                        self.object_body()?
                    });
                    need_comma = true;
                }
                Kind::LBrack => {
                    items.push(self.list()?);
                    need_comma = true;
                }
                Kind::RBrack => return Ok(Node::List(items)),
                other => {
                    return Err(self.error(
                        &tok,
                        format!("unexpected token while parsing list: {other}"),
                    ))
                }
            }
        }
    }

    /// A JSON document: one object; what follows it is ignored, as HCL 1's reader does.
    fn json_document(&mut self) -> Result<Vec<Item>, SyntaxError> {
        let tok = self.scan()?;
        if tok.kind != Kind::LBrace {
            return Err(self.error(&tok, "does not contain a root object"));
        }
        match self.json_object_body()? {
            Node::Object(items) => Ok(items),
            _ => unreachable!("json_object_body returns objects"),
        }
    }

    /// After `{` in JSON: `"key": value` pairs up to `}` (or the end of the input).
    fn json_object_body(&mut self) -> Result<Node, SyntaxError> {
        let mut items = Vec::new();
        loop {
            let tok = self.scan()?;
            match tok.kind {
                Kind::RBrace | Kind::Eof => return Ok(Node::Object(items)),
                Kind::Comma => continue,
                Kind::String => {
                    let key = unquote(&tok.text, true, &tok)?;
                    let colon = self.scan()?;
                    if colon.kind != Kind::Colon {
                        return Err(
                            self.error(&colon, format!("expected: STRING got: {}", colon.kind))
                        );
                    }
                    let value = self.json_value()?;
                    items.push(Item {
                        keys: vec![key],
                        line: tok.line,
                        value,
                    });
                }
                other => {
                    return Err(self.error(&tok, format!("expected: STRING got: {other}")));
                }
            }
        }
    }

    fn json_value(&mut self) -> Result<Node, SyntaxError> {
        let tok = self.scan()?;
        match tok.kind {
            Kind::Number | Kind::Float | Kind::Bool | Kind::Null | Kind::String => {
                self.literal(&tok)
            }
            Kind::LBrace => self.json_object_body(),
            Kind::LBrack => self.list(),
            other => Err(self.error(&tok, format!("Unexpected token: {other}"))),
        }
    }
}

/// An HCL integer literal (`strconv.ParseInt(s, 0, 64)`: decimal, `0x` hex, leading-zero
/// octal).
fn parse_int(text: &str) -> Option<serde_json::Number> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let magnitude: i128 = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i128::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    let value = if neg { -magnitude } else { magnitude };
    i64::try_from(value).ok().map(serde_json::Number::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(items: &[Item]) -> Vec<(Vec<&str>, usize)> {
        items
            .iter()
            .map(|i| (i.keys.iter().map(String::as_str).collect(), i.line))
            .collect()
    }

    #[test]
    fn hcl_blocks_and_attributes() {
        let doc = parse_document(
            "# comment\npath \"a/*\" {\n  capabilities = [\"read\"]\n}\npath \"a/*\" \"b\" { policy = \"deny\" }\nname = \"n\"\n",
        )
        .unwrap();
        assert!(!doc.json);
        assert_eq!(
            keys(&doc.items),
            vec![
                (vec!["path", "a/*"], 0),
                (vec!["path", "a/*", "b"], 0),
                (vec!["name"], 6)
            ]
        );
        let Node::Object(body) = &doc.items[0].value else {
            panic!("block body is an object")
        };
        assert_eq!(keys(body), vec![(vec!["capabilities"], 3)]);
        assert_eq!(body[0].value, Node::List(vec![Node::String("read".into())]));
    }

    #[test]
    fn hcl1_layouts_that_hcl2_rejects() {
        for text in [
            r#"path "x" { capabilities = ["read"] policy = "write" }"#,
            "path \"x\" {\n capabilities = [\"read\"] }",
            r#"path "x" { capabilities = ["read"], policy = "write", }"#,
            r#"path "x" { capabilities = ["read"] } path "y" { capabilities = ["read"] }"#,
            r#"path "x" { capabilities = ["read"] } ,path "y" { capabilities = ["list"] }"#,
            r#"path x { capabilities = ["read",] }"#,
            "/* c */ path \"x\" { // c\ncapabilities = [\"read\"] # c\n}",
        ] {
            let doc = parse_document(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!doc.items.is_empty());
        }
    }

    #[test]
    fn hcl_values() {
        let doc = parse_document(
            "a = 1\nb = -2\nc = 1.5\nd = true\ne = { \"x\" = [], y = [\"z\"] }\nf = \"{{identity.entity.id}}/${x}\"\ng = 0x10\nh = 1e2\ni = \"q\\\"\\n\\u00e9\"\nj = [<<EOF\nread\nEOF\n]\nk = <<-EOT\n    one\n      two\n    EOT\n",
        )
        .unwrap();
        let values: Vec<serde_json::Value> = doc.items.iter().map(|e| e.value.to_json()).collect();
        assert_eq!(
            values,
            vec![
                json!(1),
                json!(-2),
                json!(1.5),
                json!(true),
                json!({"x": [], "y": ["z"]}),
                json!("{{identity.entity.id}}/${x}"),
                json!(16),
                json!(100.0),
                json!("q\"\né"),
                json!(["read\n"]),
                json!("one\n  two\n"),
            ]
        );
    }

    #[test]
    fn interpolation_may_hold_quotes() {
        let doc = parse_document(r#"a = "x/${foo("b")}/y""#).unwrap();
        assert_eq!(
            doc.items[0].value,
            Node::String(r#"x/${foo("b")}/y"#.into())
        );
    }

    #[test]
    fn hcl_errors_match_hcl1() {
        let err = |t: &str| parse_document(t).unwrap_err().to_string();
        assert_eq!(
            err(r#"path "x" { capabilities = ["read" }"#),
            "At 1:35: error parsing list, expected comma or list end, got: RBRACE"
        );
        assert_eq!(
            err(r#"path "x" { capabilities = ["read" "list"] }"#),
            "At 1:35: error parsing list, expected comma or list end, got: STRING"
        );
        assert_eq!(
            err(r#"path "x" { capabilities = ["read"] "#),
            "At 1:37: object expected closing RBRACE got: EOF"
        );
        assert_eq!(
            err("path \"x\" {\n\n  "),
            "At 3:4: object expected closing RBRACE got: EOF"
        );
        assert_eq!(
            err(r#"path "x" { policy = read }"#),
            "At 1:21: Unknown token: 1:21 IDENT read"
        );
        assert_eq!(
            err(r#"path "x" { capabilities = ["read"]; }"#),
            "At 1:35: illegal char"
        );
        assert_eq!(
            err(r#"path "x" { capabilities = ["read"] }}"#),
            "At 1:37: expected: IDENT | STRING | ASSIGN | LBRACE got: RBRACE"
        );
        assert_eq!(err("path \"x\ny\" { }"), "At 1:6: literal not terminated");
        assert!(err("a = /* open").contains("comment not terminated"));
        assert!(err("a b = 1").contains("nested object expected"));
        assert!(err("a = <<EOF\nnever closed\n").contains("heredoc not terminated"));
    }

    #[test]
    fn json_documents() {
        let doc =
            parse_document(" {\"path\": {\"a/*\": {\"capabilities\": [\"read\"]}},\n \"x\": null}")
                .unwrap();
        assert!(doc.json);
        assert_eq!(keys(&doc.items), vec![(vec!["path"], 1), (vec!["x"], 2)]);
        assert_eq!(
            doc.items[0].value.to_json(),
            json!({"a/*": {"capabilities": ["read"]}})
        );
        // HCL 1's JSON reader tolerates a missing closing brace and trailing text.
        assert!(parse_document(r#"{"path": {"x": {"capabilities": ["read"]}}"#).is_ok());
        assert!(parse_document(r#"{"path": {}} trailing"#).is_ok());
        // ... and commas between list elements are optional.
        assert_eq!(
            parse_document(r#"{"a": ["read" "list"]}"#).unwrap().items[0]
                .value
                .to_json(),
            json!(["read", "list"])
        );
        assert!(parse_document(r#"{"path": [1 }"#).is_err());
        // Errors read as OpenBao's JSON reader words them (bao).
        let err = |t: &str| parse_document(t).unwrap_err().to_string();
        assert_eq!(err(r#"{"path" {"x": {}}}"#), "expected: STRING got: LBRACE");
        assert_eq!(err(r#"{1: 2}"#), "expected: STRING got: NUMBER");
        assert_eq!(
            err(r#"{"path": {"x": {"capabilities": @}}}"#),
            "1:33: illegal char: @"
        );
        assert!(parse_document(r#"{"path" {}}"#).is_err());
        assert_eq!(
            parse_document(r#"{"a": "\ud83d\ude00\/"}"#).unwrap().items[0].value,
            Node::String("😀/".into())
        );
    }
}
