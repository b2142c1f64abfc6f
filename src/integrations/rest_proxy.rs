//! Confluent REST Proxy v2 (`simulation --rest-proxy-url URL`): weather readings are posted to
//! `POST /topics/{topic}` as `application/vnd.kafka.avro.v2+json`. The first request carries
//! the key and value schemas (`key_schema`, `value_schema`); the proxy registers them in the
//! Schema Registry and answers their ids, which every later request sends instead
//! (`key_schema_id`, `value_schema_id`). Records use Avro's JSON encoding. The schemas are
//! the project's `avro/` files in the same form the Kafka path registers, so both paths share
//! one subject version.

use crate::integrations::{check_http_url, excerpt, join, one_line, HTTP_TIMEOUT};
use crate::transit::models::{schemas, topics, TimestampKey, Weather};
use crate::transit::simulation::{SinkError, WeatherSink};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// Request content type: Avro records, REST Proxy API v2.
pub const AVRO_V2: &str = "application/vnd.kafka.avro.v2+json";
/// Response content type asked for.
pub const ACCEPT_V2: &str = "application/vnd.kafka.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum RestProxyError {
    #[error("{0}")]
    Url(String),
    #[error("schema for {topic}: {reason}")]
    Schema { topic: String, reason: String },
    #[error(
        "REST Proxy at {url} is unreachable: {reason} (is it running? check --rest-proxy-url)"
    )]
    Unreachable { url: String, reason: String },
    #[error("REST Proxy POST {url}: HTTP {status}: {message}")]
    Api {
        url: String,
        status: u16,
        message: String,
    },
    #[error("REST Proxy POST {url}: unexpected answer: {reason}")]
    Body { url: String, reason: String },
    #[error("REST Proxy POST {url}: record {index} rejected: {reason}")]
    Record {
        url: String,
        index: usize,
        reason: String,
    },
}

impl RestProxyError {
    /// Errors the user fixes in the flags themselves (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, RestProxyError::Url(_))
    }
}

/// One produce request, fields in the order of the REST Proxy v2 reference.
#[derive(Serialize)]
struct ProduceRequest<'a, K: Serialize, V: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key_schema: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_schema_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_schema: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_schema_id: Option<i64>,
    records: Vec<ProduceRecord<'a, K, V>>,
}

#[derive(Serialize)]
struct ProduceRecord<'a, K: Serialize, V: Serialize> {
    key: &'a K,
    value: &'a V,
}

#[derive(Deserialize)]
struct ProduceResponse {
    key_schema_id: Option<i64>,
    value_schema_id: Option<i64>,
    offsets: Vec<OffsetResult>,
}

/// Where a record landed (or why not).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct OffsetResult {
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub error_code: Option<i64>,
    pub error: Option<String>,
}

/// Produces Avro records to one topic through the REST Proxy.
#[derive(Debug)]
pub struct RestProxyTopic {
    base: String,
    topic: String,
    client: reqwest::Client,
    key_schema: String,
    value_schema: String,
    /// (key, value) schema ids, once the proxy has answered them.
    ids: Mutex<Option<(i64, i64)>>,
}

/// The schema text sent to the proxy: the `.avsc` as apache-avro writes it, which is also what
/// the Kafka path registers.
pub fn schema_json(topic: &str, avsc: &str) -> Result<String, RestProxyError> {
    let schema = apache_avro::Schema::parse_str(avsc).map_err(|e| RestProxyError::Schema {
        topic: topic.to_string(),
        reason: e.to_string(),
    })?;
    serde_json::to_string(&schema).map_err(|e| RestProxyError::Schema {
        topic: topic.to_string(),
        reason: e.to_string(),
    })
}

impl RestProxyTopic {
    pub fn new(
        url: &str,
        topic: &str,
        key_avsc: &str,
        value_avsc: &str,
    ) -> Result<Self, RestProxyError> {
        check_http_url("--rest-proxy-url", url).map_err(RestProxyError::Url)?;
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| RestProxyError::Unreachable {
                url: url.to_string(),
                reason: one_line(&e),
            })?;
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            topic: topic.to_string(),
            client,
            key_schema: schema_json(topic, key_avsc)?,
            value_schema: schema_json(topic, value_avsc)?,
            ids: Mutex::new(None),
        })
    }

    /// The weather topic with the weather key and value schemas.
    pub fn weather(url: &str) -> Result<Self, RestProxyError> {
        Self::new(
            url,
            topics::WEATHER,
            schemas::WEATHER_KEY,
            schemas::WEATHER_VALUE,
        )
    }

    pub fn url(&self) -> String {
        join(&self.base, &format!("topics/{}", self.topic))
    }

    /// The exact request body for `records` given the ids known so far.
    pub fn request_body<K: Serialize, V: Serialize>(
        &self,
        records: &[(K, V)],
    ) -> Result<Vec<u8>, RestProxyError> {
        let ids = *self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let req = ProduceRequest {
            key_schema: ids.is_none().then_some(self.key_schema.as_str()),
            key_schema_id: ids.map(|(k, _)| k),
            value_schema: ids.is_none().then_some(self.value_schema.as_str()),
            value_schema_id: ids.map(|(_, v)| v),
            records: records
                .iter()
                .map(|(key, value)| ProduceRecord { key, value })
                .collect(),
        };
        serde_json::to_vec(&req).map_err(|e| RestProxyError::Schema {
            topic: self.topic.clone(),
            reason: e.to_string(),
        })
    }

    /// Posts `records` (Avro JSON encoding of key and value) and returns where each landed.
    pub async fn produce<K: Serialize, V: Serialize>(
        &self,
        records: &[(K, V)],
    ) -> Result<Vec<OffsetResult>, RestProxyError> {
        let url = self.url();
        let body = self.request_body(records)?;
        let resp = self
            .client
            .post(&url)
            .header("Content-Type", AVRO_V2)
            .header("Accept", ACCEPT_V2)
            .body(body)
            .send()
            .await
            .map_err(|e| RestProxyError::Unreachable {
                url: self.base.clone(),
                reason: one_line(&e),
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            // Errors are {"error_code": …, "message": "…"}.
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| {
                    let m = v.get("message")?.as_str()?.to_string();
                    Some(match v.get("error_code").and_then(|c| c.as_i64()) {
                        Some(code) => format!("{} (error code {code})", excerpt(&m)),
                        None => excerpt(&m),
                    })
                })
                .unwrap_or_else(|| excerpt(&text));
            return Err(RestProxyError::Api {
                url,
                status,
                message,
            });
        }
        let parsed: ProduceResponse =
            serde_json::from_str(&text).map_err(|e| RestProxyError::Body {
                url: url.clone(),
                reason: format!("{e}: {}", excerpt(&text)),
            })?;
        if parsed.offsets.len() != records.len() {
            return Err(RestProxyError::Body {
                url,
                reason: format!(
                    "{} offsets for {} records",
                    parsed.offsets.len(),
                    records.len()
                ),
            });
        }
        if let Some((index, o)) = parsed
            .offsets
            .iter()
            .enumerate()
            .find(|(_, o)| o.error_code.is_some() || o.error.is_some())
        {
            return Err(RestProxyError::Record {
                url,
                index,
                reason: format!(
                    "{} (error code {})",
                    o.error.as_deref().unwrap_or("no message"),
                    o.error_code.map_or("none".to_string(), |c| c.to_string())
                ),
            });
        }
        if let (Some(k), Some(v)) = (parsed.key_schema_id, parsed.value_schema_id) {
            *self.ids.lock().unwrap_or_else(|p| p.into_inner()) = Some((k, v));
        }
        Ok(parsed.offsets)
    }
}

impl WeatherSink for RestProxyTopic {
    fn describe(&self) -> String {
        format!("REST Proxy {}", self.base)
    }

    fn send<'a>(
        &'a self,
        key: &'a TimestampKey,
        value: &'a Weather,
    ) -> futures::future::BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.produce(&[(key, value)]).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transit::models::WeatherStatus;

    #[test]
    fn first_body_carries_schemas_later_ones_ids() {
        let t = RestProxyTopic::weather("http://localhost:8082").unwrap();
        assert_eq!(
            t.url(),
            "http://localhost:8082/topics/org.chicago.cta.weather.v1"
        );
        let rec = (
            TimestampKey { timestamp: 5 },
            Weather {
                temperature: 12.5,
                status: WeatherStatus::PartlyCloudy,
            },
        );
        let first = String::from_utf8(t.request_body(&[rec]).unwrap()).unwrap();
        assert!(first.starts_with("{\"key_schema\":\""), "{first}");
        assert!(first.ends_with(
            "\"records\":[{\"key\":{\"timestamp\":5},\"value\":{\"temperature\":12.5,\"status\":\"partly_cloudy\"}}]}"
        ), "{first}");
        *t.ids.lock().unwrap() = Some((3, 4));
        let later = String::from_utf8(t.request_body(&[rec]).unwrap()).unwrap();
        assert!(
            later.starts_with("{\"key_schema_id\":3,\"value_schema_id\":4,\"records\":"),
            "{later}"
        );
        assert!(RestProxyTopic::weather("rest-proxy:8082")
            .unwrap_err()
            .is_config());
    }
}
