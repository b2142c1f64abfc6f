//! From statement text to what the endpoint runs, with `sqlparser`'s tokenizer and parser
//! (GenericDialect, which reads ksqlDB's back-quoted names). ksqlDB words that are not SQL are
//! handled on the token stream before parsing: a leading `LIST` reads as `SHOW`, a trailing
//! `EXTENDED` (`DESCRIBE x EXTENDED`, `SHOW TABLES EXTENDED`) and a trailing `EMIT CHANGES` /
//! `EMIT FINAL` (push queries, refused) are taken off. Names are upper-cased unless quoted,
//! as ksqlDB does.

use super::ApiError;
use sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, InTarget, LimitClause, ObjectName, Query, Select,
    SelectItem, SetExpr, Statement as Sql, TableFactor, UnaryOperator, Value,
};
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

fn not_supported(what: &str, text: &str) -> ApiError {
    bad(
        format!("{what} not supported in pull queries by this server"),
        text,
    )
}

fn pull(q: Query, text: &str) -> Result<PullQuery, ApiError> {
    if q.with.is_some() {
        return Err(not_supported("WITH is", text));
    }
    if q.order_by.is_some() {
        return Err(not_supported("ORDER BY is", text));
    }
    if q.fetch.is_some() || !q.locks.is_empty() || q.for_clause.is_some() {
        return Err(not_supported("FETCH / FOR clauses are", text));
    }
    if q.settings.is_some() || q.format_clause.is_some() || !q.pipe_operators.is_empty() {
        return Err(not_supported(
            "SETTINGS / FORMAT / pipe operators are",
            text,
        ));
    }
    let limit = match q.limit_clause {
        None => None,
        Some(LimitClause::LimitOffset {
            limit: Some(limit),
            offset: None,
            limit_by,
        }) if limit_by.is_empty() => match literal(&limit, text)? {
            Literal::Int(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => return Err(bad("LIMIT takes a non-negative integer", text)),
        },
        Some(_) => return Err(not_supported("OFFSET is", text)),
    };
    let select = match *q.body {
        SetExpr::Select(s) => *s,
        SetExpr::Query(_) => return Err(not_supported("nested queries are", text)),
        SetExpr::SetOperation { op, .. } => {
            return Err(not_supported(&format!("{op} is"), text));
        }
        _ => return Err(not_supported("this statement form is", text)),
    };
    from_select(select, limit, text)
}

fn from_select(s: Select, limit: Option<usize>, text: &str) -> Result<PullQuery, ApiError> {
    if s.distinct.is_some() || s.top.is_some() {
        return Err(not_supported("DISTINCT / TOP are", text));
    }
    if s.into.is_some() || !s.lateral_views.is_empty() || s.prewhere.is_some() {
        return Err(not_supported("INTO / LATERAL VIEW / PREWHERE are", text));
    }
    let grouped = match &s.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(e, m) => !e.is_empty() || !m.is_empty(),
    };
    if grouped || s.having.is_some() {
        return Err(bad(
            "GROUP BY / HAVING are not supported in pull queries: the tables are already \
             aggregated (TURNSTILE_SUMMARY counts per station)",
            text,
        ));
    }
    if !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || !s.named_window.is_empty()
        || s.qualify.is_some()
        || !s.connect_by.is_empty()
    {
        return Err(not_supported(
            "CLUSTER/DISTRIBUTE/SORT BY, WINDOW, QUALIFY are",
            text,
        ));
    }
    let source = match s.from.as_slice() {
        [] => return Err(bad("a pull query needs FROM <table>", text)),
        [one] if one.joins.is_empty() => match &one.relation {
            TableFactor::Table {
                name, args: None, ..
            } => object_name(name, text)?,
            _ => return Err(not_supported("sub-queries and table functions are", text)),
        },
        _ => {
            return Err(bad(
                "joins are not supported by this server: a pull query reads one table",
                text,
            ))
        }
    };
    let mut columns = Vec::new();
    let mut star = false;
    for item in &s.projection {
        match item {
            SelectItem::Wildcard(_) => star = true,
            SelectItem::UnnamedExpr(e) => {
                let c = column(e, text)?;
                columns.push((c.clone(), c));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                columns.push((column(expr, text)?, name(alias)));
            }
            other => {
                return Err(bad(
                    format!("only column names and * can be selected here, not `{other}`"),
                    text,
                ))
            }
        }
    }
    if star && !columns.is_empty() {
        return Err(bad("select * or a list of columns, not both", text));
    }
    let mut conditions = Vec::new();
    if let Some(w) = &s.selection {
        conjuncts(w, text, &mut conditions)?;
    }
    Ok(PullQuery {
        source,
        columns: (!star).then_some(columns),
        conditions,
        limit,
    })
}

/// A column reference: `COL` or `T.COL`.
fn column(e: &Expr, text: &str) -> Result<String, ApiError> {
    match e {
        Expr::Identifier(i) => Ok(name(i)),
        Expr::CompoundIdentifier(parts) if parts.len() == 2 => Ok(name(&parts[1])),
        Expr::Nested(inner) => column(inner, text),
        other => Err(bad(
            format!("expected a column name, got `{other}` (expressions and functions are not supported here)"),
            text,
        )),
    }
}

fn literal(e: &Expr, text: &str) -> Result<Literal, ApiError> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<i64>()
                .map(Literal::Int)
                .map_err(|_| bad(format!("{n} is not a 64-bit integer"), text)),
            Value::SingleQuotedString(s) => Ok(Literal::Text(s.clone())),
            other => Err(bad(
                format!("unsupported literal `{other}`: use integers or 'quoted' timestamps"),
                text,
            )),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr, text)? {
            Literal::Int(n) => {
                Ok(Literal::Int(n.checked_neg().ok_or_else(|| {
                    bad(format!("-{n} is not a 64-bit integer"), text)
                })?))
            }
            Literal::Text(_) => Err(bad("a minus sign before a string", text)),
        },
        Expr::Nested(inner) => literal(inner, text),
        other => Err(bad(
            format!("expected a literal value, got `{other}`"),
            text,
        )),
    }
}

fn cmp(op: &BinaryOperator) -> Option<Cmp> {
    Some(match op {
        BinaryOperator::Eq => Cmp::Eq,
        BinaryOperator::Lt => Cmp::Lt,
        BinaryOperator::LtEq => Cmp::LtEq,
        BinaryOperator::Gt => Cmp::Gt,
        BinaryOperator::GtEq => Cmp::GtEq,
        _ => None?,
    })
}

fn flip(c: Cmp) -> Cmp {
    match c {
        Cmp::Eq => Cmp::Eq,
        Cmp::Lt => Cmp::Gt,
        Cmp::LtEq => Cmp::GtEq,
        Cmp::Gt => Cmp::Lt,
        Cmp::GtEq => Cmp::LtEq,
    }
}

fn is_column(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) => true,
        Expr::CompoundIdentifier(p) => p.len() == 2,
        Expr::Nested(inner) => is_column(inner),
        _ => false,
    }
}

/// Splits a WHERE clause on AND into conditions.
fn conjuncts(e: &Expr, text: &str, out: &mut Vec<Condition>) -> Result<(), ApiError> {
    match e {
        Expr::Nested(inner) => conjuncts(inner, text, out),
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, text, out)?;
            conjuncts(right, text, out)
        }
        Expr::BinaryOp {
            op: BinaryOperator::Or,
            ..
        } => Err(bad(
            "OR is not supported in pull queries by this server; use STATION_ID IN (...) for several keys",
            text,
        )),
        Expr::BinaryOp { left, op, right } => {
            let Some(c) = cmp(op) else {
                return Err(bad(format!("unsupported operator {op} in WHERE"), text));
            };
            if is_column(left) && !is_column(right) {
                out.push(Condition::Compare(column(left, text)?, c, literal(right, text)?));
            } else if is_column(right) && !is_column(left) {
                out.push(Condition::Compare(
                    column(right, text)?,
                    flip(c),
                    literal(left, text)?,
                ));
            } else {
                return Err(bad(
                    format!("`{e}`: a condition compares one column with a literal"),
                    text,
                ));
            }
            Ok(())
        }
        Expr::In {
            expr,
            target: InTarget::List(list),
            negated: false,
            ..
        } => {
            if list.len() > MAX_IN_VALUES {
                return Err(bad(
                    format!(
                        "IN list of {} values; this server takes at most {MAX_IN_VALUES}",
                        list.len()
                    ),
                    text,
                ));
            }
            let values = list
                .iter()
                .map(|v| literal(v, text))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(Condition::In(column(expr, text)?, values));
            Ok(())
        }
        Expr::Between {
            expr,
            negated: false,
            low,
            high,
        } => {
            out.push(Condition::Between(
                column(expr, text)?,
                literal(low, text)?,
                literal(high, text)?,
            ));
            Ok(())
        }
        other => Err(bad(
            format!("unsupported condition `{other}`: use =, <, <=, >, >=, BETWEEN and IN joined by AND"),
            text,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Statement {
        let mut p = parse(sql).unwrap();
        assert_eq!(p.len(), 1, "{sql}");
        p.remove(0).statement
    }

    fn error(sql: &str) -> String {
        parse(sql).unwrap_err().message
    }

    #[test]
    fn ksqldb_statements() {
        assert_eq!(
            one("show tables;"),
            Statement::ShowTables { extended: false }
        );
        assert_eq!(
            one("LIST STREAMS EXTENDED"),
            Statement::ShowStreams { extended: true }
        );
        assert_eq!(
            one("DESCRIBE turnstile_summary EXTENDED;"),
            Statement::Describe {
                source: "TURNSTILE_SUMMARY".into(),
                extended: true
            }
        );
        let p = parse("SHOW STREAMS; -- comment\n SHOW TABLES;").unwrap();
        assert_eq!(p[0].text, "SHOW STREAMS;");
        assert_eq!(p[1].text, "SHOW TABLES;");
        assert!(error("   ; -- nothing").contains("no statement"));
    }

    #[test]
    fn pull_queries() {
        let Statement::Pull(q) = one(
            "SELECT `STATION_ID`, count AS n FROM turnstile_hourly WHERE station_id IN (1, -2) \
             AND 5 <= WINDOWSTART AND (WINDOWEND BETWEEN '2026-11-24T13:00:00' AND 9) LIMIT 3",
        ) else {
            panic!("not a query")
        };
        assert_eq!(q.source, "TURNSTILE_HOURLY");
        assert_eq!(
            q.columns,
            Some(vec![
                ("STATION_ID".into(), "STATION_ID".into()),
                ("COUNT".into(), "N".into())
            ])
        );
        assert_eq!(
            q.conditions,
            vec![
                Condition::In("STATION_ID".into(), vec![Literal::Int(1), Literal::Int(-2)]),
                Condition::Compare("WINDOWSTART".into(), Cmp::GtEq, Literal::Int(5)),
                Condition::Between(
                    "WINDOWEND".into(),
                    Literal::Text("2026-11-24T13:00:00".into()),
                    Literal::Int(9)
                ),
            ]
        );
        assert_eq!(q.limit, Some(3));
        let Statement::Pull(q) = one("select * from `turnstile_summary`") else {
            panic!("not a query")
        };
        assert_eq!((q.source.as_str(), q.columns), ("turnstile_summary", None));
    }

    #[test]
    fn refusals_say_why() {
        for (sql, says) in [
            (
                "SELECT * FROM A JOIN B ON A.X = B.X",
                "joins are not supported",
            ),
            ("SELECT * FROM T EMIT CHANGES;", "push queries"),
            (
                "CREATE STREAM S (A INT) WITH (KAFKA_TOPIC='s');",
                "CREATE statements",
            ),
            ("INSERT INTO T VALUES (1)", "INSERT statements"),
            (
                "SELECT * FROM T WHERE A = 1 OR A = 2",
                "OR is not supported",
            ),
            ("SELECT COUNT(*) FROM T", "expected a column name"),
            ("SELECT * FROM T WHERE A LIKE 'x'", "unsupported"),
            ("SELECT * FROM T GROUP BY A", "GROUP BY"),
            (
                "SELECT * FROM T WHERE A = 99999999999999999999",
                "not a 64-bit integer",
            ),
            ("SELEC * FROM T", "cannot parse"),
            ("SELECT * FROM T; x", "cannot parse"),
            ("SELECT * FROM T ORDER BY A", "ORDER BY"),
            ("SHOW QUERIES", "STREAMS and TABLES only"),
        ] {
            let e = error(sql);
            assert!(e.contains(says), "{sql}: {e}");
        }
        let many = (0..=MAX_IN_VALUES)
            .map(|i| i.to_string())
            .collect::<Vec<_>>();
        let e = error(&format!("SELECT * FROM T WHERE K IN ({})", many.join(",")));
        assert!(e.contains("at most 1000"), "{e}");
        let e = error(&format!(
            "SELECT * FROM T WHERE K = 1{}",
            " ".repeat(MAX_STATEMENT_BYTES)
        ));
        assert!(e.contains("at most 16384"), "{e}");
        let deep = format!(
            "SELECT * FROM T WHERE {}K = 1{}",
            "(".repeat(500),
            ")".repeat(500)
        );
        assert!(error(&deep).contains("cannot parse"));
    }
}
