//! The CREATE statements of a `ksql/` file: split on `;` outside quotes, comments dropped,
//! each read for the stream or table it creates ([`parse_statements`]).
//!
//! Not here: submitting them (`client`).

use super::KsqlError;
use crate::integrations::flatten;

/// Whether a statement creates a stream or a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Table,
}

/// One CREATE statement of a `ksql/` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement as submitted, ending with `;`.
    pub text: String,
    pub kind: Kind,
    /// The stream or table name as ksqlDB lists it (upper case unless back-quoted).
    pub name: String,
}

/// Splits a file into statements (`;` outside quotes ends one; `--` comments are dropped) and
/// reads what each creates. Only `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE` is accepted.
pub fn parse_statements(sql: &str, source_name: &str) -> Result<Vec<Statement>, KsqlError> {
    let mut raw = Vec::new();
    let mut cur = String::new();
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '`' | '"' => {
                    quote = Some(c);
                    cur.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for n in chars.by_ref() {
                        if n == '\n' {
                            cur.push('\n');
                            break;
                        }
                    }
                }
                ';' => raw.push((std::mem::take(&mut cur), true)),
                _ => cur.push(c),
            },
        }
    }
    if quote.is_some() {
        return Err(KsqlError::Parse {
            source_name: source_name.to_string(),
            index: raw.len() + 1,
            reason: "unclosed quote".into(),
        });
    }
    raw.push((cur, false));
    let mut out = Vec::new();
    for (body, terminated) in raw {
        let body = body.trim();
        if body.is_empty() {
            continue;
        }
        let index = out.len() + 1;
        let err = |reason: String| KsqlError::Parse {
            source_name: source_name.to_string(),
            index,
            reason,
        };
        if !terminated {
            return Err(err(format!(
                "`{}` does not end with ';'",
                first_words(body)
            )));
        }
        let (kind, name) = created_object(body).ok_or_else(|| {
            err(format!(
                "`{}` is not a CREATE STREAM or CREATE TABLE statement",
                first_words(body)
            ))
        })?;
        out.push(Statement {
            text: format!("{body};"),
            kind,
            name,
        });
    }
    if out.is_empty() {
        return Err(KsqlError::Parse {
            source_name: source_name.to_string(),
            index: 0,
            reason: "no statements".into(),
        });
    }
    Ok(out)
}

pub(super) fn first_words(s: &str) -> String {
    let flat = flatten(s);
    let words: Vec<&str> = flat.split(' ').take(6).collect();
    words.join(" ")
}

/// `CREATE [OR REPLACE] [SOURCE] STREAM|TABLE [IF NOT EXISTS] name …` → (kind, NAME).
fn created_object(stmt: &str) -> Option<(Kind, String)> {
    let mut rest = stmt.trim_start();
    let mut word = |expect: &str| -> bool {
        let n = expect.len();
        if rest.len() > n
            && rest[..n].eq_ignore_ascii_case(expect)
            && rest[n..].starts_with(char::is_whitespace)
        {
            rest = rest[n..].trim_start();
            true
        } else {
            false
        }
    };
    if !word("CREATE") {
        return None;
    }
    if word("OR") && !word("REPLACE") {
        return None;
    }
    word("SOURCE");
    let kind = if word("STREAM") {
        Kind::Stream
    } else if word("TABLE") {
        Kind::Table
    } else {
        return None;
    };
    if word("IF") && !(word("NOT") && word("EXISTS")) {
        return None;
    }
    let name = if let Some(quoted) = rest.strip_prefix('`') {
        quoted.split('`').next()?.to_string()
    } else {
        rest.split(|c: char| c.is_whitespace() || c == '(' || c == ';')
            .next()?
            .to_ascii_uppercase()
    };
    (!name.is_empty()).then_some((kind, name))
}
