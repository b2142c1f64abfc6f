//! ksqlDB (`worker --ksql-url URL`): submits the CREATE statements of `ksql/` to `/ksql`, skipping
//! each stream or table that `SHOW STREAMS;` / `SHOW TABLES;` already lists, then answers the
//! turnstile queries with pull queries on TURNSTILE_SUMMARY through `/query` (HTTP/1.1; the
//! newer `/query-stream` needs HTTP/2). The rows come back in the same shape as the worker's own
//! table, so `GET /api/turnstile` answers alike in both modes.
//!
//! Where things are: this file holds the names the worker uses (the statements file, the table
//! and its key, the content type) and [`KsqlError`]; `statements` reads the CREATE statements of
//! a `ksql/` file; `client` is [`KsqlClient`], which submits them and runs the pull queries.

mod client;
mod statements;
#[cfg(test)]
mod tests;

pub use client::{turnstile_query, Applied, KsqlClient};
pub use statements::{parse_statements, Kind, Statement};

/// The statements the worker submits, compiled in from `ksql/turnstile.sql`.
pub const TURNSTILE_SQL: &str = include_str!("../../../ksql/turnstile.sql");
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
