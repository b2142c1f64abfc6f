//! [`KsqlClient`]: one ksqlDB server over its REST API. Lists what exists, submits the CREATE
//! statements that are missing ([`KsqlClient::apply`]), and answers the turnstile queries with
//! pull queries on the summary table ([`TurnstileSource`]).
//!
//! Not here: reading the statements from their file (`statements`).

use super::statements::{first_words, Kind, Statement};
use super::{KsqlError, KSQL_V1, SUMMARY_KEY, SUMMARY_TABLE};
use crate::integrations::{check_http_url, excerpt, join, one_line, HTTP_TIMEOUT};
use crate::transit::models::TurnstileSummary;
use crate::transit::queries::{QueryError, TurnstileSource};
use std::collections::{BTreeMap, BTreeSet};

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
pub(super) fn parse_rows(v: &serde_json::Value) -> Result<Vec<TurnstileSummary>, String> {
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
