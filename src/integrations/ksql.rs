//! ksqlDB (`worker --ksql-url URL`): submits the CREATE statements of `ksql/` to `/ksql`, skipping
//! each stream or table that `SHOW STREAMS;` / `SHOW TABLES;` already lists, then answers the
//! turnstile queries with pull queries on TURNSTILE_SUMMARY through `/query` (HTTP/1.1; the
//! newer `/query-stream` needs HTTP/2). The rows come back in the same shape as the worker's own
//! table, so `GET /api/turnstile` answers alike in both modes.

use crate::integrations::{check_http_url, excerpt, flatten, join, one_line, HTTP_TIMEOUT};
use crate::transit::models::TurnstileSummary;
use crate::transit::queries::{QueryError, TurnstileSource};
use std::collections::{BTreeMap, BTreeSet};

/// The statements the worker submits, compiled in from `ksql/turnstile.sql`.
pub const TURNSTILE_SQL: &str = include_str!("../../ksql/turnstile.sql");
/// Where [`TURNSTILE_SQL`] comes from, for messages.
pub const TURNSTILE_SQL_NAME: &str = "ksql/turnstile.sql";
/// The table the worker reads, as ksqlDB names it.
pub const SUMMARY_TABLE: &str = "TURNSTILE_SUMMARY";
/// Its key column (`station_id AS station_key` in the CREATE TABLE).
pub const SUMMARY_KEY: &str = "STATION_KEY";
/// Content type of the ksqlDB REST API.
pub const KSQL_V1: &str = "application/vnd.ksql.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum KsqlError {
    #[error("{0}")]
    Config(String),
    #[error("{source_name} statement {index}: {reason}")]
    Parse {
        source_name: String,
        index: usize,
        reason: String,
    },
    #[error("ksqlDB at {url} is unreachable: {reason} (is it running? check --ksql-url)")]
    Unreachable { url: String, reason: String },
    #[error("ksqlDB {url}: `{statement}` failed: HTTP {status}: {message}")]
    Statement {
        url: String,
        statement: String,
        status: u16,
        message: String,
    },
    #[error("ksqlDB {url}: `{statement}`: unexpected answer: {reason}")]
    Body {
        url: String,
        statement: String,
        reason: String,
    },
}

impl KsqlError {
    /// Errors the user fixes in the flags themselves (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, KsqlError::Config(_))
    }
}

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

fn first_words(s: &str) -> String {
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

/// What [`KsqlClient::apply`] did with each statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Created(String),
    Skipped(String),
}

/// A ksqlDB server.
#[derive(Clone)]
pub struct KsqlClient {
    base: String,
    client: reqwest::Client,
    /// `user:password` (Confluent Cloud: API key and secret).
    auth: Option<(String, String)>,
}

impl KsqlClient {
    pub fn new(url: &str, auth: Option<&str>) -> Result<Self, KsqlError> {
        check_http_url("--ksql-url", url).map_err(KsqlError::Config)?;
        let auth = auth.map(|a| match a.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (a.to_string(), String::new()),
        });
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| KsqlError::Unreachable {
                url: url.to_string(),
                reason: one_line(&e),
            })?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            client,
            auth,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// POSTs `{"ksql": statement, "streamsProperties": {…}}` to `path` and returns the JSON
    /// answer; a non-2xx answer becomes [`KsqlError::Statement`] with ksqlDB's message.
    async fn post(
        &self,
        path: &str,
        statement: &str,
        properties: serde_json::Value,
    ) -> Result<serde_json::Value, KsqlError> {
        let url = join(&self.base, path);
        let body = serde_json::json!({ "ksql": statement, "streamsProperties": properties });
        let mut req = self
            .client
            .post(&url)
            .header("Content-Type", KSQL_V1)
            .header("Accept", KSQL_V1)
            .json(&body);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await.map_err(|e| KsqlError::Unreachable {
            url: self.base.clone(),
            reason: one_line(&e),
        })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let short = first_words(statement);
        if !(200..300).contains(&status) {
            // Errors are {"@type": "statement_error", "error_code": …, "message": "…"}.
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(excerpt))
                .unwrap_or_else(|| excerpt(&text));
            return Err(KsqlError::Statement {
                url,
                statement: short,
                status,
                message,
            });
        }
        serde_json::from_str(&text).map_err(|e| KsqlError::Body {
            url,
            statement: short,
            reason: format!("not JSON ({e}): {}", excerpt(&text)),
        })
    }

    /// Names of the existing streams and tables (`SHOW STREAMS;`, `SHOW TABLES;`).
    pub async fn existing(&self) -> Result<(BTreeSet<String>, BTreeSet<String>), KsqlError> {
        let mut found = Vec::new();
        for (statement, field) in [("SHOW STREAMS;", "streams"), ("SHOW TABLES;", "tables")] {
            let v = self.post("ksql", statement, serde_json::json!({})).await?;
            let entities = v.as_array().ok_or_else(|| KsqlError::Body {
                url: join(&self.base, "ksql"),
                statement: statement.to_string(),
                reason: format!("expected a JSON array, got {}", excerpt(&v.to_string())),
            })?;
            let mut names = BTreeSet::new();
            for e in entities {
                let Some(list) = e.get(field).and_then(|l| l.as_array()) else {
                    continue;
                };
                for item in list {
                    if let Some(n) = item.get("name").and_then(|n| n.as_str()) {
                        names.insert(n.to_string());
                    }
                }
            }
            found.push(names);
        }
        let tables = found.pop().unwrap_or_default();
        let streams = found.pop().unwrap_or_default();
        Ok((streams, tables))
    }

    /// Submits each statement whose stream or table does not exist yet, in order.
    pub async fn apply(&self, statements: &[Statement]) -> Result<Vec<Applied>, KsqlError> {
        let (streams, tables) = self.existing().await?;
        let mut done = Vec::new();
        for s in statements {
            let exists = match s.kind {
                Kind::Stream => streams.contains(&s.name),
                Kind::Table => tables.contains(&s.name),
            };
            if exists {
                tracing::info!(name = %s.name, "ksqlDB already has it; statement skipped");
                done.push(Applied::Skipped(s.name.clone()));
                continue;
            }
            let v = self
                .post(
                    "ksql",
                    &s.text,
                    serde_json::json!({ "ksql.streams.auto.offset.reset": "earliest" }),
                )
                .await?;
            // A command that ksqlDB accepted but could not run reports status ERROR.
            let failed = v.as_array().into_iter().flatten().find_map(|e| {
                let st = e.get("commandStatus")?;
                (st.get("status")?.as_str()? == "ERROR").then(|| {
                    st.get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("no message")
                        .to_string()
                })
            });
            if let Some(message) = failed {
                return Err(KsqlError::Statement {
                    url: join(&self.base, "ksql"),
                    statement: first_words(&s.text),
                    status: 200,
                    message: excerpt(&message),
                });
            }
            tracing::info!(name = %s.name, "ksqlDB statement submitted");
            done.push(Applied::Created(s.name.clone()));
        }
        Ok(done)
    }

    /// Pull query on TURNSTILE_SUMMARY; `station` narrows it to one key.
    pub async fn turnstile(
        &self,
        station: Option<i32>,
    ) -> Result<Vec<TurnstileSummary>, KsqlError> {
        let statement = turnstile_query(station);
        let v = self
            .post("query", &statement, serde_json::json!({}))
            .await?;
        parse_rows(&v).map_err(|reason| KsqlError::Body {
            url: join(&self.base, "query"),
            statement: first_words(&statement),
            reason,
        })
    }
}

/// The pull query the worker sends.
pub fn turnstile_query(station: Option<i32>) -> String {
    match station {
        None => format!("SELECT `STATION_ID`, `COUNT` FROM `{SUMMARY_TABLE}`;"),
        Some(id) => format!(
            "SELECT `STATION_ID`, `COUNT` FROM `{SUMMARY_TABLE}` WHERE `{SUMMARY_KEY}` = {id};"
        ),
    }
}

/// Reads `/query`'s answer: `[{"header": …}, {"row": {"columns": [id, count]}}, …,
/// {"finalMessage": …}]`; an `errorMessage` element is an error.
fn parse_rows(v: &serde_json::Value) -> Result<Vec<TurnstileSummary>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("expected a JSON array, got {}", excerpt(&v.to_string())))?;
    let mut rows = BTreeMap::new();
    for item in items {
        if let Some(e) = item.get("errorMessage") {
            let m = e
                .get("message")
                .and_then(|m| m.as_str())
                .map(excerpt)
                .unwrap_or_else(|| excerpt(&e.to_string()));
            return Err(m);
        }
        let Some(row) = item.get("row") else {
            continue;
        };
        let cols = row
            .get("columns")
            .and_then(|c| c.as_array())
            .ok_or_else(|| format!("row without columns: {}", excerpt(&row.to_string())))?;
        let (id, count) = match cols.as_slice() {
            [id, count] => (id.as_i64(), count.as_i64()),
            _ => (None, None),
        };
        let (Some(id), Some(count)) = (id, count) else {
            return Err(format!(
                "expected [STATION_ID, COUNT] integers, got {}",
                excerpt(&serde_json::Value::Array(cols.clone()).to_string())
            ));
        };
        let station_id = i32::try_from(id).map_err(|_| format!("station id {id} out of range"))?;
        rows.insert(station_id, count);
    }
    Ok(rows
        .into_iter()
        .map(|(station_id, count)| TurnstileSummary { station_id, count })
        .collect())
}

impl TurnstileSource for KsqlClient {
    fn all(&self) -> futures::future::BoxFuture<'_, Result<Vec<TurnstileSummary>, QueryError>> {
        Box::pin(async move {
            self.turnstile(None)
                .await
                .map_err(|e| QueryError::Source(e.to_string()))
        })
    }

    fn one(
        &self,
        station_id: i32,
    ) -> futures::future::BoxFuture<'_, Result<Option<TurnstileSummary>, QueryError>> {
        Box::pin(async move {
            let rows = self
                .turnstile(Some(station_id))
                .await
                .map_err(|e| QueryError::Source(e.to_string()))?;
            Ok(rows.into_iter().find(|r| r.station_id == station_id))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turnstile_sql_has_the_stream_then_the_table() {
        let s = parse_statements(TURNSTILE_SQL, TURNSTILE_SQL_NAME).unwrap();
        let what: Vec<(Kind, &str)> = s.iter().map(|s| (s.kind, s.name.as_str())).collect();
        assert_eq!(
            what,
            vec![(Kind::Stream, "TURNSTILE"), (Kind::Table, SUMMARY_TABLE)]
        );
        assert!(s[1]
            .text
            .starts_with("CREATE TABLE IF NOT EXISTS turnstile_summary"));
        assert!(s[1].text.ends_with("EMIT CHANGES;"));
        assert!(!s[1].text.contains("--"));
    }

    #[test]
    fn statement_forms_and_errors() {
        let s = parse_statements(
            "create or replace source table `Mixed` (a INT) WITH (KAFKA_TOPIC='x;y');\n-- done\n",
            "f.sql",
        )
        .unwrap();
        assert_eq!((s[0].kind, s[0].name.as_str()), (Kind::Table, "Mixed"));
        assert!(s[0].text.ends_with("'x;y');"));
        let e = parse_statements("CREATE STREAM a (x INT);\nDROP TABLE b;", "f.sql")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "f.sql statement 2: `DROP TABLE b` is not a CREATE STREAM or CREATE TABLE statement"
        );
        let e = parse_statements("CREATE STREAM a (x INT)", "f.sql")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not end with ';'"), "{e}");
        assert!(parse_statements("-- nothing\n", "f.sql").is_err());
    }

    #[test]
    fn rows_are_read_and_errors_reported() {
        let v: serde_json::Value = serde_json::from_str(
            r#"[{"header":{"queryId":"q","schema":"`STATION_ID` INTEGER, `COUNT` BIGINT"}},
                {"row":{"columns":[40380,12]}},{"row":{"columns":[40010,3]}},{"finalMessage":"done"}]"#,
        )
        .unwrap();
        assert_eq!(
            parse_rows(&v).unwrap(),
            vec![
                TurnstileSummary {
                    station_id: 40010,
                    count: 3
                },
                TurnstileSummary {
                    station_id: 40380,
                    count: 12
                }
            ]
        );
        let bad: serde_json::Value =
            serde_json::from_str(r#"[{"row":{"columns":["x",1]}}]"#).unwrap();
        assert!(parse_rows(&bad).unwrap_err().contains("integers"));
        let err: serde_json::Value =
            serde_json::from_str(r#"[{"errorMessage":{"message":"boom"}}]"#).unwrap();
        assert_eq!(parse_rows(&err).unwrap_err(), "boom");
        assert!(KsqlClient::new("ksqldb:8088", None)
            .err()
            .unwrap()
            .is_config());
    }
}
