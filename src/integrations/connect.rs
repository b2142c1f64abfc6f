//! Kafka Connect: registers the JDBC source connector that publishes the Postgres `stations`
//! table to `org.chicago.cta.stations` (`simulation --connect-url URL`).
//!
//! Idempotent: `GET /connectors/{name}` first; an existing connector is left exactly as it is
//! (its config may have been tuned by hand), a missing one is created with
//! `PUT /connectors/{name}/config`. A 409 (the Connect cluster is rebalancing) is retried a
//! bounded number of times; any other error answer stops with Connect's own message.

use crate::integrations::{check_http_url, excerpt, join, one_line, HTTP_TIMEOUT};
use crate::transit::models::topics;
use std::collections::BTreeMap;
use std::time::Duration;

/// The table the connector reads.
pub const TABLE: &str = "stations";
/// Connect names the topic `<topic.prefix><table>`: this prefix makes it `org.chicago.cta.stations`.
pub const TOPIC_PREFIX: &str = "org.chicago.cta.";
/// The connector class of Confluent's JDBC connector plugin.
pub const JDBC_SOURCE_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";
const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
/// How often a 409 (rebalance in progress) is retried, one second apart.
const CONFLICT_RETRIES: u32 = 15;

#[derive(Debug, thiserror::Error)]
pub enum ConnectApiError {
    #[error("{0}")]
    Url(String),
    #[error(
        "Kafka Connect at {url} is unreachable: {reason} (is it running? check --connect-url)"
    )]
    Unreachable { url: String, reason: String },
    #[error("Kafka Connect {method} {url}: HTTP {status}: {message}")]
    Api {
        method: &'static str,
        url: String,
        status: u16,
        message: String,
    },
    #[error("Kafka Connect {method} {url}: unexpected answer: {reason}")]
    Body {
        method: &'static str,
        url: String,
        reason: String,
    },
}

impl ConnectApiError {
    /// Errors the user fixes in the flags themselves (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, ConnectApiError::Url(_))
    }
}

/// What [`JdbcSource::register`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Created,
    /// A connector of that name exists and was left alone.
    AlreadyExists,
}

/// The JDBC source connector to register.
#[derive(Clone)]
pub struct JdbcSource {
    /// Kafka Connect REST URL, e.g. http://localhost:8083.
    pub connect_url: String,
    pub name: String,
    /// JDBC URL of the Postgres database *as Connect's workers reach it*.
    pub jdbc_url: String,
    pub user: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for JdbcSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JdbcSource")
            .field("connect_url", &self.connect_url)
            .field("name", &self.name)
            .field("jdbc_url", &self.jdbc_url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl JdbcSource {
    /// Checks the URLs; the errors name the flags.
    pub fn validate(&self) -> Result<(), ConnectApiError> {
        check_http_url("--connect-url", &self.connect_url).map_err(ConnectApiError::Url)?;
        if !self.jdbc_url.starts_with("jdbc:") {
            return Err(ConnectApiError::Url(format!(
                "--connect-jdbc-url '{}': expected a JDBC URL such as jdbc:postgresql://postgres:5432/cta",
                self.jdbc_url
            )));
        }
        if self.name.is_empty() || self.name.contains('/') {
            return Err(ConnectApiError::Url(format!(
                "--connector-name '{}': must be non-empty and contain no '/'",
                self.name
            )));
        }
        Ok(())
    }

    /// The connector configuration: incrementing mode on `stop_id`, rows of `stations` as JSON
    /// without schemas on `org.chicago.cta.stations`.
    pub fn config(&self) -> BTreeMap<String, String> {
        let mut c = BTreeMap::new();
        let mut set = |k: &str, v: &str| {
            c.insert(k.to_string(), v.to_string());
        };
        set("connector.class", JDBC_SOURCE_CLASS);
        set("tasks.max", "1");
        set("connection.url", &self.jdbc_url);
        set("connection.user", &self.user);
        if let Some(p) = &self.password {
            set("connection.password", p);
        }
        set("table.whitelist", TABLE);
        set("mode", "incrementing");
        set("incrementing.column.name", "stop_id");
        set("topic.prefix", TOPIC_PREFIX);
        set("key.converter", JSON_CONVERTER);
        set("key.converter.schemas.enable", "false");
        set("value.converter", JSON_CONVERTER);
        set("value.converter.schemas.enable", "false");
        set("batch.max.rows", "500");
        // The table changes only when load_stations.sql is run again; poll once a minute.
        set("poll.interval.ms", "60000");
        c
    }

    /// The topic the rows land in.
    pub fn topic() -> String {
        format!("{TOPIC_PREFIX}{TABLE}")
    }

    /// Creates the connector unless one of that name exists.
    pub async fn register(&self) -> Result<Registration, ConnectApiError> {
        self.validate()?;
        debug_assert_eq!(Self::topic(), topics::STATIONS);
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| ConnectApiError::Unreachable {
                url: self.connect_url.clone(),
                reason: one_line(&e),
            })?;
        let url = join(&self.connect_url, &format!("connectors/{}", self.name));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let resp = client
                .get(&url)
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            match status {
                200 => {
                    tracing::info!(connector = %self.name, url = %self.connect_url, "connector exists; left as it is");
                    return Ok(Registration::AlreadyExists);
                }
                404 => {}
                409 if attempt <= CONFLICT_RETRIES => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                _ => return Err(api_error("GET", &url, status, &body)),
            }
            let put_url = format!("{url}/config");
            let resp = client
                .put(&put_url)
                .header("Accept", "application/json")
                .json(&self.config())
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap_or_default();
            match status {
                200 | 201 => {
                    let v: serde_json::Value =
                        serde_json::from_str(&body).map_err(|e| ConnectApiError::Body {
                            method: "PUT",
                            url: put_url.clone(),
                            reason: format!("not JSON ({e}): {}", excerpt(&body)),
                        })?;
                    if v.get("name").and_then(|n| n.as_str()) != Some(self.name.as_str()) {
                        return Err(ConnectApiError::Body {
                            method: "PUT",
                            url: put_url,
                            reason: format!(
                                "expected the connector '{}', got {}",
                                self.name,
                                excerpt(&body)
                            ),
                        });
                    }
                    tracing::info!(connector = %self.name, url = %self.connect_url, topic = %Self::topic(), "JDBC source connector created");
                    return Ok(Registration::Created);
                }
                409 if attempt <= CONFLICT_RETRIES => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => return Err(api_error("PUT", &put_url, status, &body)),
            }
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> ConnectApiError {
        ConnectApiError::Unreachable {
            url: self.connect_url.clone(),
            reason: one_line(e),
        }
    }
}

/// Connect answers errors as `{"error_code": …, "message": "…"}`; keep its message.
fn api_error(method: &'static str, url: &str, status: u16, body: &str) -> ConnectApiError {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(excerpt))
        .unwrap_or_else(|| excerpt(body));
    ConnectApiError::Api {
        method,
        url: url.to_string(),
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> JdbcSource {
        JdbcSource {
            connect_url: "http://localhost:8083".into(),
            name: "stations".into(),
            jdbc_url: "jdbc:postgresql://postgres:5432/cta".into(),
            user: "cta_admin".into(),
            password: Some("chicago".into()),
        }
    }

    #[test]
    fn config_lands_rows_in_the_stations_topic_as_plain_json() {
        assert_eq!(JdbcSource::topic(), topics::STATIONS);
        let c = source().config();
        assert_eq!(c["mode"], "incrementing");
        assert_eq!(c["incrementing.column.name"], "stop_id");
        assert_eq!(
            format!("{}{}", c["topic.prefix"], c["table.whitelist"]),
            topics::STATIONS
        );
        assert_eq!(c["value.converter.schemas.enable"], "false");
        assert!(!format!("{:?}", source()).contains("chicago"));
    }

    #[test]
    fn bad_flags_are_named() {
        let mut s = source();
        s.connect_url = "localhost:8083".into();
        let e = s.validate().unwrap_err();
        assert!(
            e.is_config() && e.to_string().starts_with("--connect-url"),
            "{e}"
        );
        let mut s = source();
        s.jdbc_url = "postgres://x".into();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("--connect-jdbc-url"));
        let e = api_error(
            "PUT",
            "http://c/connectors/x/config",
            400,
            r#"{"error_code":400,"message":"Connector configuration is invalid\nand has 1 error"}"#,
        );
        assert_eq!(
            e.to_string(),
            "Kafka Connect PUT http://c/connectors/x/config: HTTP 400: Connector configuration is invalid and has 1 error"
        );
    }
}
