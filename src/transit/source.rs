//! Where per-station turnstile counts come from when the worker does not count them itself
//! (ksqlDB's TURNSTILE_SUMMARY): the [`TurnstileSource`] trait and its [`QueryError`]. Kept
//! apart from `agents` (which holds a source) and `queries` (which reads one), so neither
//! imports the other for it. Implementations live with their integration, not here.

use crate::stream::StreamError;
use crate::transit::models::TurnstileSummary;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The worker's own state store.
    #[error(transparent)]
    Store(#[from] StreamError),
    /// The outside source of the turnstile counts (ksqlDB); the message names it.
    #[error("{0}")]
    Source(String),
}

/// Per-station turnstile counts kept outside the worker (ksqlDB's TURNSTILE_SUMMARY), for the
/// whole app.
pub trait TurnstileSource: Send + Sync {
    /// Every station's count.
    fn all(&self) -> BoxFuture<'_, std::result::Result<Vec<TurnstileSummary>, QueryError>>;
    /// One station's count; `None` when the station has no entries.
    fn one(
        &self,
        station_id: i32,
    ) -> BoxFuture<'_, std::result::Result<Option<TurnstileSummary>, QueryError>>;
}

type BoxFuture<'a, T> = futures::future::BoxFuture<'a, T>;
