//! Stations straight from Postgres (`simulation --stations-from postgres://…`): reads the
//! `stations` table that `load_stations.sql` creates and turns each row into the JSON row Kafka
//! Connect's JDBC source would publish (JsonConverter, schemas off), so the worker sees the same
//! records either way. Every row is read and checked before anything is published: a bad row
//! stops the run with its `stop_id` and column named, never half a table.

use crate::transit::stations::ConnectStationRow;
use std::time::Duration;
use tokio_postgres::Row;

/// The table and columns the JDBC source connector publishes, in `load_stations.sql` order.
pub const STATIONS_QUERY: &str = "SELECT stop_id, direction_id, stop_name, station_name, \
     station_descriptive_name, station_id, \"order\", red, blue, green FROM stations ORDER BY stop_id";

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("--stations-from: {0} (expected postgres://user:password@host:port/database)")]
    Url(String),
    #[error("--stations-from {target}: cannot connect: {reason}")]
    Connect { target: String, reason: String },
    #[error("--stations-from {target}: reading table stations failed: {reason}")]
    Query { target: String, reason: String },
    #[error("--stations-from {target}: table stations, row stop_id {stop_id}: {reason} (fix the row in Postgres or load_stations.sql)")]
    Row {
        target: String,
        stop_id: String,
        reason: String,
    },
    #[error("--stations-from {target}: table stations has no rows (load load_stations.sql first)")]
    Empty { target: String },
}

impl PostgresError {
    /// Errors the user fixes in the flag itself (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, PostgresError::Url(_))
    }
}

/// A parsed `--stations-from` URL.
#[derive(Debug, Clone)]
pub struct StationsDb {
    config: tokio_postgres::Config,
    /// user@host:port/db, for messages (never the password).
    target: String,
}

impl StationsDb {
    /// Parses a `postgres://` URL or a libpq key=value string.
    pub fn parse(url: &str) -> Result<Self, PostgresError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| {
                PostgresError::Url(crate::integrations::one_line(&e))
            })?;
        if config.get_hosts().is_empty() {
            return Err(PostgresError::Url(format!("no host in '{}'", redact(url))));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => String::new(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!(
            "{}@{host}:{port}/{}",
            config.get_user().unwrap_or("(default user)"),
            config.get_dbname().unwrap_or("(default database)")
        );
        Ok(Self { config, target })
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    /// Reads and checks every row of `stations`, ordered by `stop_id`.
    pub async fn read_stations(&self) -> Result<Vec<ConnectStationRow>, PostgresError> {
        let target = self.target.clone();
        let connect_err = |reason: String| PostgresError::Connect {
            target: target.clone(),
            reason,
        };
        let tls =
            native_tls::TlsConnector::new().map_err(|e| connect_err(format!("TLS set-up: {e}")))?;
        let (client, connection) = self
            .config
            .connect(postgres_native_tls::MakeTlsConnector::new(tls))
            .await
            .map_err(|e| connect_err(crate::integrations::one_line(&e)))?;
        let conn_target = self.target.clone();
        let conn = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(target = %conn_target, error = %e, "postgres connection ended");
            }
        });
        let rows = client
            .query(STATIONS_QUERY, &[])
            .await
            .map_err(|e| PostgresError::Query {
                target: self.target.clone(),
                reason: crate::integrations::one_line(&e),
            });
        drop(client);
        let _ = conn.await;
        let rows = rows?;
        if rows.is_empty() {
            return Err(PostgresError::Empty {
                target: self.target.clone(),
            });
        }
        let stations = rows
            .iter()
            .map(|r| {
                convert(r).map_err(|(stop_id, reason)| PostgresError::Row {
                    target: self.target.clone(),
                    stop_id,
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(target = %self.target, rows = stations.len(), "read the stations table");
        Ok(stations)
    }
}

/// Removes the password from a URL for a message.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// One column that must not be NULL; the error names the column.
fn column<'a, T>(row: &'a Row, name: &str) -> Result<T, String>
where
    T: tokio_postgres::types::FromSql<'a>,
{
    match row.try_get::<_, Option<T>>(name) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(format!("column {name} is NULL")),
        Err(e) => Err(format!(
            "column {name}: {}",
            crate::integrations::one_line(&e)
        )),
    }
}

fn convert(row: &Row) -> Result<ConnectStationRow, (String, String)> {
    let stop_id: i32 = column(row, "stop_id").map_err(|e| ("?".to_string(), e))?;
    let id = stop_id.to_string();
    let text = |name: &str| -> Result<String, (String, String)> {
        let v: String = column(row, name).map_err(|e| (id.clone(), e))?;
        if v.trim().is_empty() {
            return Err((id.clone(), format!("column {name} is empty")));
        }
        Ok(v)
    };
    let int = |name: &str| -> Result<i32, (String, String)> {
        column(row, name).map_err(|e| (id.clone(), e))
    };
    let flag = |name: &str| -> Result<bool, (String, String)> {
        column(row, name).map_err(|e| (id.clone(), e))
    };
    let direction_id = text("direction_id")?;
    if !matches!(direction_id.as_str(), "N" | "S" | "E" | "W") {
        return Err((
            id.clone(),
            format!("column direction_id is '{direction_id}', expected N, S, E or W"),
        ));
    }
    Ok(ConnectStationRow {
        stop_id,
        direction_id,
        stop_name: text("stop_name")?,
        station_name: text("station_name")?,
        station_descriptive_name: text("station_descriptive_name")?,
        station_id: int("station_id")?,
        order: int("order")?,
        red: flag("red")?,
        blue: flag("blue")?,
        green: flag("green")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_checked_and_target_hides_the_password() {
        let db = StationsDb::parse("postgres://cta_admin:chicago@127.0.0.1:5439/cta").unwrap();
        assert_eq!(db.target(), "cta_admin@127.0.0.1:5439/cta");
        let err = StationsDb::parse("postgres://u:pw@host:notaport/db")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--stations-from: "), "{err}");
        assert!(!err.contains("pw@"), "{err}");
        assert!(StationsDb::parse("postgres://u:pw@host:notaport/db")
            .unwrap_err()
            .is_config());
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }
}
