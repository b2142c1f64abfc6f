//! Runs a pull query: resolves its columns against the [`catalog`], turns the WHERE clause
//! into a key set and window bounds (a condition on any other column is refused, as ksqlDB
//! refuses one on a non-key column), and reads the rows through the same cross-worker
//! answers as the JSON API ([`crate::web::cluster`]), so each row comes from the worker that
//! owns its partition.
//!
//! Here: [`run`] and its answer ([`ResultSet`]). The WHERE clause becomes a `Filter` in
//! `filter`; the rows of each kind of table are read in `rows`.

mod filter;
mod rows;

use super::catalog::{self, Column, Data, Source};
use super::parse::PullQuery;
use super::ApiError;
use crate::web::WebState;
use filter::{filter, resolve};
use rows::{entity_table_rows, summary_rows, window_rows};
use serde_json::Value as Json;

/// A pull query's answer: the output columns (name, column) and the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSet {
    pub columns: Vec<(String, Column)>,
    pub rows: Vec<Vec<Json>>,
}

impl ResultSet {
    /// The `schema` string of ksqlDB's `/query` header: "`A` INTEGER KEY, `B` BIGINT".
    pub fn schema(&self) -> String {
        self.columns
            .iter()
            .map(|(n, c)| {
                let key = if c.key { " KEY" } else { "" };
                format!("`{n}` {}{key}", c.ty.as_str())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs `q` across the app's workers.
pub async fn run(state: &WebState, q: &PullQuery, text: &str) -> Result<ResultSet, ApiError> {
    let source = queried_table(q, text)?;
    let all = source.query_columns();
    let columns = output_columns(source, &all, q, text)?;
    let f = filter(source, &all, q, text)?;
    if let Some(r) = super::recovering(state) {
        return Err(r);
    }
    let limit = q.limit.unwrap_or(usize::MAX);
    if f.stations.as_ref().is_some_and(|s| s.is_empty()) || limit == 0 {
        return Ok(ResultSet {
            columns,
            rows: Vec::new(),
        });
    }
    let mut rows = match source.data {
        Data::Summary => summary_rows(state, &columns, &f).await?,
        Data::Windowed(window) => window_rows(state, window, &columns, &f).await?,
        Data::Entities(entity) => entity_table_rows(state, source, entity, &columns, &f).await?,
        Data::Stream => Vec::new(),
    };
    rows.truncate(limit);
    Ok(ResultSet { columns, rows })
}

/// The table `q` reads; a stream or an unknown name is refused.
fn queried_table(q: &PullQuery, text: &str) -> Result<&'static Source, ApiError> {
    let source = catalog::find(&q.source).ok_or_else(|| {
        ApiError::statement(
            format!(
                "{} does not exist; the tables are {}",
                q.source,
                catalog::table_names()
            ),
            text,
        )
    })?;
    if source.is_stream() {
        return Err(ApiError::statement(
            format!(
                "{} is a stream: this server answers pull queries on tables ({})",
                source.name,
                catalog::table_names()
            ),
            text,
        ));
    }
    Ok(source)
}

/// The answer's columns (output name, column): all of them for `SELECT *`.
fn output_columns(
    source: &Source,
    all: &[Column],
    q: &PullQuery,
    text: &str,
) -> Result<Vec<(String, Column)>, ApiError> {
    match &q.columns {
        None => Ok(all.iter().map(|c| (c.name.to_string(), *c)).collect()),
        Some(list) => list
            .iter()
            .map(|(c, alias)| resolve(source, all, c, text).map(|col| (alias.clone(), *col)))
            .collect(),
    }
}
