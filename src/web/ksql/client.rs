//! `worker query "<statement>"`: sends a statement to a worker's ksqlDB-compatible endpoint
//! (pull queries to `/query`, SHOW and DESCRIBE to `/ksql`) and prints the answer as the
//! ksqlDB CLI would, or the raw JSON with `--json`.

use super::parse::{self, Statement};
use super::{format, KSQL_V1};
use crate::web::client::ClientError;
use serde_json::Value as Json;

/// Runs `sql` against the worker at `base` and formats the answer.
pub async fn run(base: &str, sql: &str, json: bool) -> Result<String, ClientError> {
    // Statements this side cannot read go to /ksql, which answers with the reason.
    let is_query = parse::parse(sql)
        .is_ok_and(|p| p.iter().all(|p| matches!(p.statement, Statement::Pull(_))));
    let path = if is_query { "query" } else { "ksql" };
    let url = crate::integrations::join(base, path);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", KSQL_V1)
        .header("accept", KSQL_V1)
        .json(&serde_json::json!({"ksql": sql, "streamsProperties": {}}))
        .send()
        .await
        .map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: crate::integrations::one_line(&e),
        })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| ClientError::Body {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if !status.is_success() {
        // ksqlDB's error object: show its message.
        let message = serde_json::from_str::<Json>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Json::as_str).map(str::to_string))
            .unwrap_or(text);
        return Err(ClientError::Status {
            url,
            status: status.as_u16(),
            body: message,
        });
    }
    if json {
        return Ok(format!("{text}\n"));
    }
    let body_err = |reason: String| ClientError::Body {
        url: url.clone(),
        reason,
    };
    let v: Json = serde_json::from_str(&text).map_err(|e| body_err(e.to_string()))?;
    let table = if is_query {
        format::query_table(&v)
    } else {
        format::entities_table(&v)
    };
    table.ok_or_else(|| {
        body_err(format!(
            "not a ksqlDB answer: {}",
            crate::integrations::flatten(&text)
        ))
    })
}
