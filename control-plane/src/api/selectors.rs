//! Label selectors (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) and field
//! selectors (`metadata.name=x,status.phase!=Failed`) on JSON objects.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector(Vec<Requirement>);

/// A token of upstream's selector grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    End,
    Ident(String),
    Bang,
    NotEquals,
    Equals,
    DoubleEquals,
    Greater,
    Less,
    Comma,
    Open,
    Close,
}

impl Token {
    /// The literal upstream's messages quote.
    fn literal(&self) -> &str {
        match self {
            Self::End => "",
            Self::Ident(s) => s,
            Self::Bang => "!",
            Self::NotEquals => "!=",
            Self::Equals => "=",
            Self::DoubleEquals => "==",
            Self::Greater => ">",
            Self::Less => "<",
            Self::Comma => ",",
            Self::Open => "(",
            Self::Close => ")",
        }
    }
}

fn lex(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, width) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('!', Some('=')) => (Token::NotEquals, 2),
            ('!', _) => (Token::Bang, 1),
            ('=', Some('=')) => (Token::DoubleEquals, 2),
            ('=', _) => (Token::Equals, 1),
            ('>', _) => (Token::Greater, 1),
            ('<', _) => (Token::Less, 1),
            (',', _) => (Token::Comma, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"!=><,()".contains(chars[i])
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
                continue;
            }
        };
        out.push(token);
        i += width;
    }
    out.push(Token::End);
    out
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.at).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.at += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = *self.peek() == Token::Bang;
        if negated {
            self.at += 1;
        }
        let key = match self.next() {
            Token::Ident(k) => k,
            t => return Err(format!("found '{}', expected: identifier", t.literal())),
        };
        check_label_key(&key)?;
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(if negated {
                Requirement::DoesNotExist(key)
            } else {
                Requirement::Exists(key)
            });
        }
        if negated {
            return Err(format!(
                "found '{}', expected: ',' or 'end of string'",
                self.peek().literal()
            ));
        }
        let op = self.next();
        match op {
            Token::Ident(ref w) if w == "in" || w == "notin" => {
                let values = self.set()?;
                for v in &values {
                    check_label_value(v)?;
                }
                Ok(if w == "in" {
                    Requirement::In(key, values)
                } else {
                    Requirement::NotIn(key, values)
                })
            }
            Token::Equals
            | Token::DoubleEquals
            | Token::NotEquals
            | Token::Greater
            | Token::Less => {
                let value = match self.peek().clone() {
                    Token::End | Token::Comma => String::new(),
                    Token::Ident(v) => {
                        self.at += 1;
                        v
                    }
                    t => return Err(format!("found '{}', expected: identifier", t.literal())),
                };
                if matches!(op, Token::Greater | Token::Less) {
                    let n: i64 = value.parse().map_err(|_| {
                        "for 'Gt', 'Lt' operators, the value must be an integer".to_string()
                    })?;
                    return Ok(if op == Token::Greater {
                        Requirement::GreaterThan(key, n)
                    } else {
                        Requirement::LessThan(key, n)
                    });
                }
                check_label_value(&value)?;
                Ok(if op == Token::NotEquals {
                    Requirement::NotEquals(key, value)
                } else {
                    Requirement::Equals(key, value)
                })
            }
            t => Err(format!(
                "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                t.literal()
            )),
        }
    }

    /// `(a, b, c)`; an empty set or empty members are allowed, as upstream.
    fn set(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Token::Open => {}
            t => return Err(format!("found '{}', expected: '('", t.literal())),
        }
        let mut values = Vec::new();
        let mut pending = true;
        loop {
            match self.next() {
                Token::Ident(v) if pending => {
                    values.push(v);
                    pending = false;
                }
                Token::Comma => {
                    if pending {
                        values.push(String::new());
                    }
                    pending = true;
                }
                Token::Close => {
                    if pending && !values.is_empty() {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.literal()
                    ));
                }
            }
        }
    }
}

const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label key is a qualified name: `[prefix/]name`.
fn check_label_key(key: &str) -> Result<(), String> {
    let invalid = |why: &str| format!("key: Invalid value: {key:?}: {why}");
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if !skiff_api_rules::names::is_dns1123_subdomain(prefix) {
                return Err(invalid(
                    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                ));
            }
            name
        }
        None => key,
    };
    if name.len() > 63 {
        return Err(invalid("name part must be no more than 63 bytes"));
    }
    if !is_name_part(name) {
        return Err(invalid(NAME_PART));
    }
    Ok(())
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err(format!(
            "values[0][{value}]: Invalid value: {value:?}: must be no more than 63 bytes"
        ));
    }
    if !value.is_empty() && !is_name_part(value) {
        return Err(format!(
            "values[0]: Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ));
    }
    Ok(())
}

impl LabelSelector {
    /// Parses the `labelSelector` query value with upstream's grammar and
    /// messages (`a==b==c` is refused, not read as `a` = `b==c`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            tokens: lex(text),
            at: 0,
        };
        let mut reqs = Vec::new();
        loop {
            match p.peek() {
                Token::End if reqs.is_empty() => return Ok(Self(reqs)),
                Token::Ident(_) | Token::Bang => {}
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ));
                }
            }
            let r = p
                .requirement()
                .map_err(|e| format!("unable to parse requirement: {e}"))?;
            reqs.push(r);
            match p.next() {
                Token::End => return Ok(Self(reqs)),
                Token::Comma => {
                    if !matches!(p.peek(), Token::Ident(_) | Token::Bang) {
                        return Err(format!(
                            "found '{}', expected: identifier after ','",
                            p.peek().literal()
                        ));
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        t.literal()
                    ));
                }
            }
        }
    }

    /// Whether `labels` (an object's `metadata.labels`) match.
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
            Requirement::GreaterThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::LessThan(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// A parsed field selector: `path=value` / `path!=value` terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses the `fieldSelector` query value as upstream does: terms split
    /// at unescaped commas, `\\`, `\,` and `\=` escapes in values, and an
    /// unescaped `=` in a value refused (`a==b==c`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for part in split_unescaped(text) {
            if part.is_empty() {
                continue;
            }
            let (path, equal, value) = split_term(&part)
                .ok_or_else(|| format!("invalid selector: '{text}'; can't understand '{part}'"))?;
            terms.push((path.to_string(), equal, unescape(value)?));
        }
        Ok(Self(terms))
    }

    /// Whether `object` matches every term (a missing field is `""`).
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, value)| {
            let mut cur = object;
            for segment in path.split('.') {
                cur = cur.get(segment).unwrap_or(&Value::Null);
            }
            let actual = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *value) == *equal
        })
    }
}

/// Splits at commas not escaped by a backslash (escapes are kept).
fn split_unescaped(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

/// `path op value` at the first unescaped operator (`!=`, `==`, `=`).
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], false, &term[i + 2..]));
            }
            b'=' if bytes.get(i + 1) == Some(&b'=') => {
                return Some((&term[..i], true, &term[i + 2..]));
            }
            b'=' => return Some((&term[..i], true, &term[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    None
}

fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{e}"
                    ));
                }
                None => {
                    return Err("invalid field selector: invalid escape sequence: \\".into());
                }
            },
            ',' | '=' => {
                return Err(format!("invalid field selector: unescaped character '{c}'"));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_label_operator_works() {
        let labels = json!({"app": "web", "env": "prod", "tier": "front"});
        let yes = [
            "app=web",
            "app==web",
            "app!=api",
            "env in (prod, qa)",
            "env notin (dev)",
            "tier",
            "!canary",
            "app=web,env in (prod)",
        ];
        let no = [
            "app=api",
            "app!=web",
            "env in (dev)",
            "env notin (prod,qa)",
            "canary",
            "!tier",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s)
                    .expect("parses")
                    .matches(Some(&labels)),
                "{s}"
            );
        }
        for s in no {
            assert!(
                !LabelSelector::parse(s)
                    .expect("parses")
                    .matches(Some(&labels)),
                "{s}"
            );
        }
        assert!(LabelSelector::parse("a in x").is_err());
    }

    #[test]
    fn malformed_selectors_are_refused_with_upstreams_words() {
        assert_eq!(
            LabelSelector::parse("a==b==c").expect_err("a==b==c"),
            "found '==', expected: ',' or 'end of string'"
        );
        for bad in [
            "a=b,",
            ",a",
            "=b",
            "a in (x",
            "a=b c",
            "a=(b)",
            "a>x",
            "app=none\u{ff}",
            "-bad=x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
        assert!(LabelSelector::parse("").expect("empty").matches(None));
        let n = LabelSelector::parse("n>3,m<2").expect("gt lt");
        assert!(n.matches(Some(&json!({"n": "4", "m": "1"}))));
        assert!(!n.matches(Some(&json!({"n": "3", "m": "1"}))));
        assert_eq!(
            FieldSelector::parse("a==b==c").expect_err("a==b==c"),
            "invalid field selector: unescaped character '='"
        );
        assert!(FieldSelector::parse("nooperator").is_err());
        assert!(FieldSelector::parse("a=b\\q").is_err());
        let escaped = FieldSelector::parse("metadata.name=a\\,b").expect("escaped comma");
        assert!(escaped.matches(&json!({"metadata": {"name": "a,b"}})));
    }

    #[test]
    fn field_selectors_follow_paths() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let s =
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed")
                .expect("parses");
        assert!(s.matches(&pod));
        assert!(
            !FieldSelector::parse("metadata.name=q")
                .expect("parses")
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("involvedObject.uid=")
                .expect("parses")
                .matches(&pod)
        );
    }
}
