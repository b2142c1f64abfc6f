//! From statement text to what the endpoint runs, with `sqlparser`'s tokenizer and parser
//! (GenericDialect, which reads ksqlDB's back-quoted names). ksqlDB words that are not SQL are
//! handled on the token stream before parsing: a leading `LIST` reads as `SHOW`, a trailing
//! `EXTENDED` (`DESCRIBE x EXTENDED`, `SHOW TABLES EXTENDED`) and a trailing `EMIT CHANGES` /
//! `EMIT FINAL` (push queries, refused) are taken off. Names are upper-cased unless quoted,
//! as ksqlDB does.
//!
//! Here: the statement types the endpoint runs ([`Statement`], [`PullQuery`], [`Condition`]),
//! splitting a request into statements and telling their kinds apart. The `SELECT` of a pull
//! query is read into a [`PullQuery`] in `pull_query`.

mod pull_query;
#[cfg(test)]
mod tests;

use super::ApiError;
use pull_query::pull;
use sqlparser::ast::{Ident, ObjectName, Statement as Sql};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace, Word};

/// Longest statement text taken, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;
/// Most values in one `IN (...)` list.
pub const MAX_IN_VALUES: usize = 1000;
/// Deepest expression nesting the parser follows.
const RECURSION_LIMIT: usize = 40;

/// One statement and its text as ksqlDB echoes it (`statementText`).
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub text: String,
    pub statement: Statement,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    ShowStreams { extended: bool },
    ShowTables { extended: bool },
    Describe { source: String, extended: bool },
    Pull(PullQuery),
}

/// `SELECT <columns> FROM <source> [WHERE <conditions joined by AND>] [LIMIT n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PullQuery {
    pub source: String,
    /// `None` for `SELECT *`; else (column, output name).
    pub columns: Option<Vec<(String, String)>>,
    pub conditions: Vec<Condition>,
    pub limit: Option<usize>,
}

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Int(i64),
    Text(String),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// One condition of a WHERE clause; all must hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Compare(String, Cmp, Literal),
    In(String, Vec<Literal>),
    Between(String, Literal, Literal),
}

impl Condition {
    pub fn column(&self) -> &str {
        match self {
            Condition::Compare(c, _, _) | Condition::In(c, _) | Condition::Between(c, _, _) => c,
        }
    }
}

fn bad(message: impl Into<String>, text: &str) -> ApiError {
    ApiError::statement(message, text)
}

/// A name as ksqlDB resolves it: upper case unless quoted.
pub fn name(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_uppercase(),
    }
}

fn object_name(n: &ObjectName, text: &str) -> Result<String, ApiError> {
    match n.0.as_slice() {
        [part] => part
            .as_ident()
            .map(name)
            .ok_or_else(|| bad(format!("`{n}` is not a stream or table name"), text)),
        _ => Err(bad(
            format!("`{n}`: qualified names are not supported; name the stream or table alone"),
            text,
        )),
    }
}

fn word_is(t: &Token, kw: Keyword) -> bool {
    matches!(t, Token::Word(Word { keyword, quote_style: None, .. }) if *keyword == kw)
}

fn word_upper(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Statements of a request. Empty statements are skipped; text over
/// [`MAX_STATEMENT_BYTES`] is refused before it is read.
pub fn parse(sql: &str) -> Result<Vec<Parsed>, ApiError> {
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(ApiError::statement(
            format!(
                "statement text is {} bytes; this server takes at most {MAX_STATEMENT_BYTES}",
                sql.len()
            ),
            &crate::integrations::flatten(&sql.chars().take(80).collect::<String>()),
        ));
    }
    // The parser is not known to panic; should it on some input, that input is refused like
    // any other unparsable statement instead of ending the connection.
    std::panic::catch_unwind(|| parse_all(sql))
        .unwrap_or_else(|_| Err(bad("cannot parse the statement", sql.trim())))
}

fn parse_all(sql: &str) -> Result<Vec<Parsed>, ApiError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| bad(format!("cannot read the statement: {e}"), sql.trim()))?;
    let mut out = Vec::new();
    let mut cur: Vec<Token> = Vec::new();
    for t in tokens {
        if t == Token::SemiColon {
            if let Some(p) = statement(std::mem::take(&mut cur), true)? {
                out.push(p);
            }
        } else {
            cur.push(t);
        }
    }
    if let Some(p) = statement(cur, false)? {
        out.push(p);
    }
    if out.is_empty() {
        return Err(bad("no statement given", sql.trim()));
    }
    Ok(out)
}

/// Parses the tokens of one statement; `None` when there are none but whitespace.
fn statement(tokens: Vec<Token>, terminated: bool) -> Result<Option<Parsed>, ApiError> {
    let mut text = String::new();
    for t in &tokens {
        match t {
            Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_)) => text.push(' '),
            Token::Whitespace(_) => text.push(' '),
            other => text.push_str(&other.to_string()),
        }
    }
    let mut text = crate::integrations::flatten(&text);
    if text.is_empty() {
        return Ok(None);
    }
    if terminated {
        text.push(';');
    }
    let mut sig: Vec<Token> = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let first = sig.first().and_then(word_upper).unwrap_or_default();
    if first == "LIST" {
        sig[0] = Token::make_keyword("SHOW");
    }
    let mut extended = false;
    let mut push = false;
    let n = sig.len();
    if n >= 2 && word_upper(&sig[n - 2]).as_deref() == Some("EMIT") {
        if let Some("CHANGES" | "FINAL") = word_upper(&sig[n - 1]).as_deref() {
            push = true;
            sig.truncate(n - 2);
        }
    }
    let is_show_or_describe = matches!(first.as_str(), "SHOW" | "LIST" | "DESCRIBE");
    if is_show_or_describe && sig.last().is_some_and(|t| word_is(t, Keyword::EXTENDED)) {
        extended = true;
        sig.pop();
    }
    if push {
        return Err(bad(
            "push queries (EMIT CHANGES) are not supported by this server: it answers pull \
             queries on its tables; leave out EMIT CHANGES",
            &text,
        ));
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens(sig);
    let ast = match parser.parse_statement() {
        Ok(s) => s,
        Err(e) => return Err(unparsable(&first, &e.to_string(), &text)),
    };
    let rest = parser.peek_token().token;
    if rest != Token::EOF {
        return Err(unparsable(
            &first,
            &format!("unexpected `{rest}` after the statement"),
            &text,
        ));
    }
    let statement = convert(ast, extended, &first, &text)?;
    Ok(Some(Parsed { text, statement }))
}

/// Kinds of statement ksqlDB has that change or run things: refused by name.
const UNSUPPORTED_KINDS: [&str; 14] = [
    "CREATE",
    "DROP",
    "INSERT",
    "TERMINATE",
    "ALTER",
    "PAUSE",
    "RESUME",
    "DEFINE",
    "UNDEFINE",
    "RUN",
    "SET",
    "UNSET",
    "ASSERT",
    "PRINT",
];

fn unsupported_kind(kind: &str, text: &str) -> ApiError {
    bad(
        format!(
            "{kind} statements are not supported: this server serves the tables cta-stream \
             declares and answers SHOW STREAMS, SHOW TABLES, DESCRIBE and pull queries (SELECT)"
        ),
        text,
    )
}

fn unparsable(first: &str, reason: &str, text: &str) -> ApiError {
    if UNSUPPORTED_KINDS.contains(&first) {
        return unsupported_kind(first, text);
    }
    bad(format!("cannot parse the statement: {reason}"), text)
}

fn convert(ast: Sql, extended: bool, first: &str, text: &str) -> Result<Statement, ApiError> {
    match ast {
        Sql::ShowTables { .. } => Ok(Statement::ShowTables { extended }),
        Sql::ShowVariable { variable } => match variable.as_slice() {
            [v] if name(v) == "STREAMS" => Ok(Statement::ShowStreams { extended }),
            _ => Err(bad(
                "this server shows STREAMS and TABLES only (SHOW STREAMS; SHOW TABLES;)",
                text,
            )),
        },
        Sql::ExplainTable { table_name, .. } if first == "DESCRIBE" => Ok(Statement::Describe {
            source: object_name(&table_name, text)?,
            extended,
        }),
        Sql::Query(q) => Ok(Statement::Pull(pull(*q, text)?)),
        _ if first.is_empty() => Err(bad("not a statement", text)),
        _ => Err(unsupported_kind(first, text)),
    }
}
