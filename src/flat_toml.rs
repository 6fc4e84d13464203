//! Reads a flat TOML document: `key = value` lines and comments, no tables.
//!
//! The config file needs only this part of TOML, and the TOML crates cost
//! 110 KB or more of the binary's 1.5 MiB budget (see README, "Config
//! file"), so it is read here. Every document this accepts is valid TOML
//! and means what TOML says it means (a test compares with the `toml`
//! crate); what it does not take (tables, dotted keys, inline tables,
//! multi-line strings, lists of lists) it refuses, naming the line.

use std::fmt;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key, unquoted.
    pub key: String,
    /// The line the key is on, from 1.
    pub line: usize,
    /// What the key is set to.
    pub value: Value,
}

/// A value, with where and how it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The line the value starts on, from 1.
    pub line: usize,
    /// The value as written, quotes included, for messages.
    pub written: String,
    /// What it is.
    pub kind: Kind,
}

/// The kinds of value a flat file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A quoted string, its escapes resolved.
    String(String),
    /// A whole number.
    Integer(i64),
    /// `true` or `false`.
    Boolean(bool),
    /// `[a, b, …]`, possibly over several lines.
    List(Vec<Value>),
    /// A word that is none of the above (a float, a date, a forgotten
    /// pair of quotes): it is no setting's type, so whoever reads the
    /// entry refuses it, naming the key.
    Other,
}

/// A document that is not flat TOML, and the line where that shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The line, from 1.
    pub line: usize,
    /// What is wrong there.
    pub problem: Problem,
}

/// What makes a document unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A line starts with something that cannot begin a key.
    ExpectedKey,
    /// A key is not followed by `=`.
    ExpectedEquals,
    /// Nothing follows `=`, or a list has an empty place.
    ExpectedValue,
    /// More follows a complete value.
    ExpectedEndOfLine,
    /// A list item is followed by neither `,` nor `]`.
    ExpectedComma,
    /// `[table]` or `[[table]]`.
    Table,
    /// `a.b = …`.
    DottedKey,
    /// `{ … }`.
    InlineTable,
    /// `"""…"""` or `'''…'''`.
    MultiLineString,
    /// A list inside a list.
    NestedList,
    /// A string without its closing quote on its line.
    UnterminatedString,
    /// A list without its closing `]`.
    UnterminatedList,
    /// A backslash sequence TOML does not have (as written).
    BadEscape(String),
    /// A control character where TOML allows none.
    ControlCharacter,
    /// A key set a second time.
    DuplicateKey(String),
    /// A whole number out of the 64-bit range (as written).
    IntegerTooLarge(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::ExpectedKey => f.write_str("expected a key, such as max-connections"),
            Problem::ExpectedEquals => f.write_str("expected \"=\" after the key"),
            Problem::ExpectedValue => f.write_str("expected a value"),
            Problem::ExpectedEndOfLine => {
                f.write_str("expected the end of the line after the value")
            }
            Problem::ExpectedComma => f.write_str("expected \",\" or \"]\" after a list item"),
            Problem::Table => f.write_str("tables are not used: write every key at the top level"),
            Problem::DottedKey => {
                f.write_str("dotted keys are not used: write every key at the top level")
            }
            Problem::InlineTable => f.write_str("inline tables are not used"),
            Problem::MultiLineString => {
                f.write_str("multi-line strings are not used: write the string on one line")
            }
            Problem::NestedList => f.write_str("lists of lists are not used"),
            Problem::UnterminatedString => f.write_str("the string has no closing quote"),
            Problem::UnterminatedList => f.write_str("the list has no closing \"]\""),
            Problem::BadEscape(escape) => write!(f, "{escape} is not an escape TOML knows"),
            Problem::ControlCharacter => {
                f.write_str("a control character (write it as an escape, such as \\t)")
            }
            Problem::DuplicateKey(key) => write!(f, "{key:?} is set twice"),
            Problem::IntegerTooLarge(number) => {
                write!(f, "{number} does not fit in a 64-bit integer")
            }
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for SyntaxError {}

/// Reads `text`: its entries in the order written.
pub fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut reader = Reader {
        text,
        at: 0,
        line: 1,
    };
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        reader.skip_spaces();
        match reader.peek() {
            None => return Ok(entries),
            Some('\n' | '\r') => reader.newline()?,
            Some('#') => reader.comment()?,
            Some('[') => return Err(reader.error(Problem::Table)),
            Some(_) => {
                let entry = reader.entry()?;
                if entries.iter().any(|e| e.key == entry.key) {
                    let problem = Problem::DuplicateKey(entry.key);
                    return Err(SyntaxError {
                        line: entry.line,
                        problem,
                    });
                }
                entries.push(entry);
                reader.end_of_line()?;
            }
        }
    }
}

/// A cursor over the document.
struct Reader<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    at: usize,
    /// The line of the next character, from 1.
    line: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, problem: Problem) -> SyntaxError {
        SyntaxError {
            line: self.line,
            problem,
        }
    }

    fn skip_spaces(&mut self) {
        while let Some(' ' | '\t') = self.peek() {
            self.bump();
        }
    }

    /// `\n` or `\r\n`; a lone `\r` is a control character.
    fn newline(&mut self) -> Result<(), SyntaxError> {
        if self.peek() == Some('\r') {
            self.bump();
            if self.peek() != Some('\n') {
                return Err(self.error(Problem::ControlCharacter));
            }
        }
        self.bump();
        Ok(())
    }

    /// From `#` to the end of the line (the newline left for the caller).
    fn comment(&mut self) -> Result<(), SyntaxError> {
        self.bump();
        while let Some(c) = self.peek() {
            match c {
                '\n' => return Ok(()),
                '\r' if self.text[self.at..].starts_with("\r\n") => return Ok(()),
                c if is_control(c) => return Err(self.error(Problem::ControlCharacter)),
                _ => {
                    self.bump();
                }
            }
        }
        Ok(())
    }

    /// After a value: spaces, perhaps a comment, then the line ends.
    fn end_of_line(&mut self) -> Result<(), SyntaxError> {
        self.skip_spaces();
        match self.peek() {
            None => Ok(()),
            Some('#') => self.comment(),
            Some('\n' | '\r') => self.newline(),
            Some(_) => Err(self.error(Problem::ExpectedEndOfLine)),
        }
    }

    fn entry(&mut self) -> Result<Entry, SyntaxError> {
        let line = self.line;
        let key = self.key()?;
        self.skip_spaces();
        match self.peek() {
            Some('=') => self.bump(),
            Some('.') => return Err(self.error(Problem::DottedKey)),
            _ => return Err(self.error(Problem::ExpectedEquals)),
        };
        self.skip_spaces();
        let value = self.value()?;
        Ok(Entry { key, line, value })
    }

    /// A bare key (`A-Za-z0-9_-`) or a quoted one.
    fn key(&mut self) -> Result<String, SyntaxError> {
        match self.peek() {
            Some('"') => self.basic_string(),
            Some('\'') => self.literal_string(),
            _ => {
                let start = self.at;
                while let Some('A'..='Z' | 'a'..='z' | '0'..='9' | '_' | '-') = self.peek() {
                    self.bump();
                }
                match &self.text[start..self.at] {
                    "" => Err(self.error(Problem::ExpectedKey)),
                    key => Ok(key.to_string()),
                }
            }
        }
    }

    fn value(&mut self) -> Result<Value, SyntaxError> {
        match self.peek() {
            Some('[') => {
                let (line, start) = (self.line, self.at);
                let items = self.list()?;
                Ok(self.written(line, start, Kind::List(items)))
            }
            _ => self.scalar(),
        }
    }

    /// Anything but a list.
    fn scalar(&mut self) -> Result<Value, SyntaxError> {
        let (line, start) = (self.line, self.at);
        let rest = &self.text[self.at..];
        let kind = match self.peek() {
            _ if rest.starts_with("\"\"\"") || rest.starts_with("'''") => {
                return Err(self.error(Problem::MultiLineString))
            }
            Some('"') => Kind::String(self.basic_string()?),
            Some('\'') => Kind::String(self.literal_string()?),
            Some('[') => return Err(self.error(Problem::NestedList)),
            Some('{') => return Err(self.error(Problem::InlineTable)),
            _ => self.word()?,
        };
        Ok(self.written(line, start, kind))
    }

    fn written(&self, line: usize, start: usize, kind: Kind) -> Value {
        Value {
            line,
            written: self.text[start..self.at].to_string(),
            kind,
        }
    }

    /// An unquoted value: a boolean, a whole number, or something else.
    fn word(&mut self) -> Result<Kind, SyntaxError> {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ',' | ']' | '#') {
                break;
            }
            self.bump();
        }
        match &self.text[start..self.at] {
            "" => Err(self.error(Problem::ExpectedValue)),
            "true" => Ok(Kind::Boolean(true)),
            "false" => Ok(Kind::Boolean(false)),
            word => match integer(word) {
                Some(Ok(n)) => Ok(Kind::Integer(n)),
                Some(Err(())) => Err(self.error(Problem::IntegerTooLarge(word.to_string()))),
                None => Ok(Kind::Other),
            },
        }
    }

    /// `[` items separated by commas, over any number of lines `]`.
    fn list(&mut self) -> Result<Vec<Value>, SyntaxError> {
        let line = self.line;
        let unterminated = SyntaxError {
            line,
            problem: Problem::UnterminatedList,
        };
        self.bump();
        let mut items = Vec::new();
        loop {
            self.skip_list_space()?;
            match self.peek() {
                None => return Err(unterminated),
                Some(']') => break,
                Some(_) => items.push(self.scalar()?),
            }
            self.skip_list_space()?;
            match self.peek() {
                None => return Err(unterminated),
                Some(',') => {
                    self.bump();
                }
                Some(']') => break,
                Some(_) => return Err(self.error(Problem::ExpectedComma)),
            }
        }
        self.bump();
        Ok(items)
    }

    /// Inside a list, newlines and comments are space too.
    fn skip_list_space(&mut self) -> Result<(), SyntaxError> {
        loop {
            self.skip_spaces();
            match self.peek() {
                Some('\n' | '\r') => self.newline()?,
                Some('#') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    /// `"…"`, with escapes.
    fn basic_string(&mut self) -> Result<String, SyntaxError> {
        self.bump();
        let mut string = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.error(Problem::UnterminatedString)),
                Some('"') => break,
                Some('\\') => {
                    self.bump();
                    string.push(self.escape()?);
                    continue;
                }
                Some(c) if is_control(c) => return Err(self.error(Problem::ControlCharacter)),
                Some(c) => string.push(c),
            }
            self.bump();
        }
        self.bump();
        Ok(string)
    }

    /// What follows a backslash.
    fn escape(&mut self) -> Result<char, SyntaxError> {
        let c = self
            .peek()
            .ok_or_else(|| self.error(Problem::UnterminatedString))?;
        let simple = match c {
            'b' => Some('\u{8}'),
            't' => Some('\t'),
            'n' => Some('\n'),
            'f' => Some('\u{c}'),
            'r' => Some('\r'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(escaped) = simple {
            self.bump();
            return Ok(escaped);
        }
        let digits = match c {
            'u' => 4,
            'U' => 8,
            '\n' => return Err(self.error(Problem::UnterminatedString)),
            other => return Err(self.error(Problem::BadEscape(format!("\\{other}")))),
        };
        let rest = &self.text[self.at + 1..];
        let hex = rest
            .char_indices()
            .nth(digits)
            .map_or(rest, |(end, _)| &rest[..end]);
        let bad = || Problem::BadEscape(format!("\\{c}{hex}"));
        if hex.len() != digits || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error(bad()));
        }
        let scalar = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
        let escaped = scalar.ok_or_else(|| self.error(bad()))?;
        self.at += 1 + digits; // all ASCII: no newline to count
        Ok(escaped)
    }

    /// `'…'`, taken as written.
    fn literal_string(&mut self) -> Result<String, SyntaxError> {
        self.bump();
        let start = self.at;
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.error(Problem::UnterminatedString)),
                Some('\'') => break,
                Some(c) if is_control(c) => return Err(self.error(Problem::ControlCharacter)),
                Some(_) => {
                    self.bump();
                }
            }
        }
        let string = self.text[start..self.at].to_string();
        self.bump();
        Ok(string)
    }
}

/// What TOML forbids in strings and comments: controls other than tab.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}')
}

/// A TOML integer (`42`, `-1_000`, `0x2A`, `0o52`, `0b101010`): `None` if
/// `word` is not written as one, `Some(Err(()))` if it is but does not fit.
fn integer(word: &str) -> Option<Result<i64, ()>> {
    let prefixed = [("0x", 16), ("0o", 8), ("0b", 2)]
        .into_iter()
        .find_map(|(prefix, radix)| Some((word.strip_prefix(prefix)?, radix)));
    let (sign, digits, radix) = match prefixed {
        Some((digits, radix)) => ("", digits, radix),
        None => match word.strip_prefix(['+', '-']) {
            Some(digits) => (&word[..1], digits, 10),
            None => ("", word, 10),
        },
    };
    let digits = without_underscores(digits, radix)?;
    if radix == 10 && digits.len() > 1 && digits.starts_with('0') {
        return None; // TOML forbids leading zeros
    }
    Some(i64::from_str_radix(&format!("{sign}{digits}"), radix).map_err(|_| ()))
}

/// `digits` without its underscores, if every underscore stands between
/// two digits of `radix` and there is at least one digit.
fn without_underscores(digits: &str, radix: u32) -> Option<String> {
    let well_placed = !digits.starts_with('_') && !digits.ends_with('_') && !digits.contains("__");
    let all_digits = digits.chars().all(|c| c == '_' || c.is_digit(radix));
    (well_placed && all_digits && !digits.is_empty()).then(|| digits.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(String, Kind)> {
        let entries = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        entries.into_iter().map(|e| (e.key, e.value.kind)).collect()
    }

    fn problem(text: &str) -> (usize, Problem) {
        let error = parse(text).expect_err(text);
        (error.line, error.problem)
    }

    fn string(s: &str) -> Kind {
        Kind::String(s.to_string())
    }

    #[test]
    fn keys_values_comments_and_lines() {
        let text = "# a comment\n\nlisten = \"0.0.0.0:80\"  # trailing\r\n\
                    max-connections = 1_000\n\"quoted key\" = 'C:\\dir'\n\tquiet=true\n";
        let entries = parse(text).unwrap();
        let lines: Vec<usize> = entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 6]);
        assert_eq!(entries[0].value.written, "\"0.0.0.0:80\"");
        assert_eq!(
            kinds(text),
            [
                ("listen".into(), string("0.0.0.0:80")),
                ("max-connections".into(), Kind::Integer(1000)),
                ("quoted key".into(), string("C:\\dir")),
                ("quiet".into(), Kind::Boolean(true)),
            ]
        );
        assert_eq!(kinds(""), []);
        assert_eq!(kinds("a = 1"), [("a".into(), Kind::Integer(1))]);
    }

    #[test]
    fn escapes_are_resolved() {
        assert_eq!(
            kinds(r#"a = "tab\there \"q\" \\ \u00e9 \U0001F600""#),
            [("a".into(), string("tab\there \"q\" \\ é 😀"))]
        );
        assert_eq!(kinds("a = \"\""), [("a".into(), string(""))]);
    }

    #[test]
    fn integers_as_toml_writes_them() {
        for (word, n) in [("0", 0), ("+7", 7), ("-12", -12), ("1_000_000", 1_000_000)] {
            assert_eq!(integer(word), Some(Ok(n)), "{word}");
        }
        assert_eq!(integer("0xff"), Some(Ok(255)));
        assert_eq!(integer("0o17"), Some(Ok(15)));
        assert_eq!(integer("0b101"), Some(Ok(5)));
        assert_eq!(integer("9223372036854775807"), Some(Ok(i64::MAX)));
        assert_eq!(integer("9223372036854775808"), Some(Err(())));
        for not_integer in [
            "01", "1__0", "_1", "1_", "0x", "0x_1", "-0x1", "1.5", "abc", "1e3", "",
        ] {
            assert_eq!(integer(not_integer), None, "{not_integer}");
        }
    }

    #[test]
    fn lists_over_lines_with_comments() {
        let text = "world = [\n  \"a\",  # first\n  'b',\n]\nx = []\n";
        let entries = parse(text).unwrap();
        let Kind::List(items) = &entries[0].value.kind else {
            panic!("{entries:?}")
        };
        let items: Vec<(usize, &Kind)> = items.iter().map(|v| (v.line, &v.kind)).collect();
        assert_eq!(items, [(2, &string("a")), (3, &string("b"))]);
        assert_eq!(entries[1].line, 5);
        assert_eq!(entries[1].value.kind, Kind::List(vec![]));
    }

    #[test]
    fn words_that_are_no_kind_are_left_to_the_reader() {
        assert_eq!(
            kinds("a = 1.5\nb = abc\nc = 1979-05-27"),
            [
                ("a".into(), Kind::Other),
                ("b".into(), Kind::Other),
                ("c".into(), Kind::Other)
            ]
        );
    }

    #[test]
    fn every_problem_names_its_line() {
        let cases: &[(&str, usize, Problem)] = &[
            ("a = 1\n= 2", 2, Problem::ExpectedKey),
            ("a 1", 1, Problem::ExpectedEquals),
            ("a =\n", 1, Problem::ExpectedValue),
            ("a = [1,,2]", 1, Problem::ExpectedValue),
            ("a = 1 2", 1, Problem::ExpectedEndOfLine),
            ("a = \"x\" y", 1, Problem::ExpectedEndOfLine),
            ("a = [1 2]", 1, Problem::ExpectedComma),
            ("\n[server]\n", 2, Problem::Table),
            ("[[server]]", 1, Problem::Table),
            ("a.b = 1", 1, Problem::DottedKey),
            ("a = { b = 1 }", 1, Problem::InlineTable),
            ("a = \"\"\"x\"\"\"", 1, Problem::MultiLineString),
            ("a = '''x'''", 1, Problem::MultiLineString),
            ("a = [[1]]", 1, Problem::NestedList),
            ("a = \"x\nb = 1", 1, Problem::UnterminatedString),
            ("a = 'x", 1, Problem::UnterminatedString),
            ("\na = [1,\n2\n", 2, Problem::UnterminatedList),
            ("a = \"\\x41\"", 1, Problem::BadEscape("\\x".into())),
            ("a = \"\\u12\"", 1, Problem::BadEscape("\\u12\"".into())),
            ("a = \"\\uD800\"", 1, Problem::BadEscape("\\uD800".into())),
            ("a = \"\u{1}\"", 1, Problem::ControlCharacter),
            ("# bell \u{7}", 1, Problem::ControlCharacter),
            ("a = 1\r", 1, Problem::ControlCharacter),
            ("a = 1\n\"a\" = 2", 2, Problem::DuplicateKey("a".into())),
            (
                "a = 99999999999999999999",
                1,
                Problem::IntegerTooLarge("99999999999999999999".into()),
            ),
        ];
        for (text, line, expected) in cases {
            assert_eq!(problem(text), (*line, expected.clone()), "{text:?}");
        }
        let error = parse("a = 1\nb 2").unwrap_err();
        assert_eq!(error.to_string(), "line 2: expected \"=\" after the key");
    }

    /// The same documents read by the `toml` crate: what this reads, TOML
    /// reads the same; and documents that are not TOML, this refuses too.
    #[test]
    fn agrees_with_the_toml_crate() {
        let accepted = [
            "listen = \"0.0.0.0:80\" # c\nmax-connections = 1_000\nquiet = false\n",
            "'lit' = 'a\\b'\n\"q\\u0041\" = \"\\t\\\"x\\\"\\\\\\U0001F600\"\r\n",
            "world = [\n  \"a\", # first\n  'b',\n]\nnone = []\nn = [1, -2, 0x1F, 0o7, 0b11]",
            "big = 9223372036854775807\nsmall = -9223372036854775808\nz = +0",
            include_str!("../examples/switchboard.toml"),
        ];
        for text in accepted {
            let ours = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            let theirs = ::toml::de::DeTable::parse(text)
                .unwrap_or_else(|e| panic!("{text:?}: {e}"))
                .into_inner();
            assert_eq!(ours.len(), theirs.len(), "{text:?}");
            for entry in &ours {
                let (_, value) = theirs
                    .iter()
                    .find(|(key, _)| key.get_ref() == &entry.key)
                    .unwrap_or_else(|| panic!("{:?} in {text:?}", entry.key));
                assert_same(&entry.value.kind, value.get_ref(), text);
            }
        }
        let refused = [
            "= 1",
            "a 1",
            "a =",
            "a = 1 2",
            "a = [1 2]",
            "a = [1,,2]",
            "a = \"x",
            "a = \"\\q\"",
            "a = \"\\uD800\"",
            "a = \"\u{1}\"",
            "a = 1\na = 2",
            "a = 1\n'a' = 2",
            "a = 01",
            "a = 1__0",
            "a = 1\r",
            "a = [1, abc]",
            "a = yes",
        ];
        // `Other` is never a setting's value, so refused too, with the key.
        let other = |value: &Value| match &value.kind {
            Kind::List(items) => items.iter().any(|item| item.kind == Kind::Other),
            kind => *kind == Kind::Other,
        };
        for text in refused {
            let read = parse(text).is_ok_and(|entries| !entries.iter().any(|e| other(&e.value)));
            assert!(!read, "we accept {text:?}");
            assert!(
                ::toml::de::DeTable::parse(text).is_err(),
                "TOML accepts {text:?}"
            );
        }
    }

    fn assert_same(ours: &Kind, theirs: &::toml::de::DeValue<'_>, text: &str) {
        use ::toml::de::DeValue;
        match (ours, theirs) {
            (Kind::String(a), DeValue::String(b)) => assert_eq!(a, b, "{text:?}"),
            (Kind::Boolean(a), DeValue::Boolean(b)) => assert_eq!(a, b, "{text:?}"),
            (Kind::Integer(a), DeValue::Integer(b)) => {
                assert_eq!(
                    Ok(*a),
                    i64::from_str_radix(b.as_str(), b.radix()),
                    "{text:?}"
                );
            }
            (Kind::List(a), DeValue::Array(b)) => {
                assert_eq!(a.len(), b.len(), "{text:?}");
                for (a, b) in a.iter().zip(b.iter()) {
                    assert_same(&a.kind, b.get_ref(), text);
                }
            }
            (a, b) => panic!("{text:?}: we read {a:?}, TOML reads {b:?}"),
        }
    }
}
