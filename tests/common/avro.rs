//! An independent reader: turnstile entries counted straight off the topic, decoded with
//! apache-avro (not the code under test) and schemas fetched over plain HTTP.

use super::{read_all_timed, TestEnv};
use apache_avro::types::Value;
use std::collections::{BTreeMap, HashMap};

/// Decodes Confluent-framed Avro with apache-avro, fetching writer schemas over plain HTTP.
pub struct IndependentAvro {
    url: String,
    schemas: HashMap<u32, apache_avro::Schema>,
}

impl IndependentAvro {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_string(),
            schemas: HashMap::new(),
        }
    }

    pub async fn decode(&mut self, bytes: &[u8]) -> BTreeMap<String, Value> {
        assert_eq!(bytes[0], 0, "magic byte");
        let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        if !self.schemas.contains_key(&id) {
            let body: serde_json::Value = reqwest::get(format!("{}/schemas/ids/{id}", self.url))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let schema = apache_avro::Schema::parse_str(body["schema"].as_str().unwrap()).unwrap();
            self.schemas.insert(id, schema);
        }
        let mut body = &bytes[5..];
        match apache_avro::reader::datum::GenericDatumReader::builder(&self.schemas[&id])
            .build()
            .unwrap()
            .read_value(&mut body)
            .unwrap()
        {
            Value::Record(fields) => fields.into_iter().collect(),
            other => panic!("not a record: {other:?}"),
        }
    }
}

/// Per-station turnstile entries counted straight from the topic.
pub async fn count_turnstile(env: &TestEnv) -> BTreeMap<i32, i64> {
    let mut counts = BTreeMap::new();
    for (id, _) in turnstile_entries(env).await {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// (station id, event time) of every turnstile entry on the topic.
pub async fn turnstile_entries(env: &TestEnv) -> Vec<(i32, i64)> {
    let mut avro = IndependentAvro::new(&env.registry.url);
    let mut out = Vec::new();
    for (_, v, ts) in read_all_timed(&env.kafka.brokers, "org.chicago.cta.turnstile.v1") {
        let rec = avro.decode(&v.unwrap()).await;
        match rec["station_id"] {
            Value::Int(id) => out.push((id, ts)),
            ref other => panic!("station_id {other:?}"),
        }
    }
    out
}
