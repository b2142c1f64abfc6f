//! Which worker owns which partitions, and where it answers queries.
//!
//! Every worker publishes an advert (its id, its query URL, the partitions it owns, a
//! timestamp) to the app's small directory topic `{app_id}-workers` whenever its assignment
//! changes, and reads that topic to know the others. A killed worker cannot withdraw its
//! advert, so ownership of a partition goes to the newest advert that claims it; a worker whose
//! claims are all superseded drops out. The URL is opaque here; the web layer uses it to route
//! queries for keys this worker does not own.

use crate::config::KafkaConfig;
use crate::error::{Result, StreamError};
use crate::kafka::{send_blocking, TrackedProducer};
use crate::names;
use crate::shutdown::Shutdown;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// One worker's announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    pub worker_id: String,
    pub url: String,
    pub assigned: Vec<(String, i32)>,
    /// Milliseconds since the epoch when it was published.
    pub ts: i64,
}

/// The known workers. Clones share state.
#[derive(Clone)]
pub struct Directory {
    me: String,
    url: String,
    adverts: Arc<RwLock<HashMap<String, Advert>>>,
}

impl Directory {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            me: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            url: url.into(),
            adverts: Arc::default(),
        }
    }

    pub fn worker_id(&self) -> &str {
        &self.me
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Takes in an advert, as read from the directory topic (an older one of a worker is
    /// ignored).
    pub fn record(&self, advert: Advert) {
        let mut map = self.adverts.write().unwrap_or_else(|p| p.into_inner());
        match map.get(&advert.worker_id) {
            Some(old) if old.ts > advert.ts => {}
            _ => {
                map.insert(advert.worker_id.clone(), advert);
            }
        }
    }

    /// Current owner of every claimed partition: the newest advert claiming it.
    pub fn owners(&self) -> HashMap<(String, i32), Advert> {
        let map = self.adverts.read().unwrap_or_else(|p| p.into_inner());
        let mut owners: HashMap<(String, i32), Advert> = HashMap::new();
        for a in map.values() {
            for tp in &a.assigned {
                match owners.get(tp) {
                    Some(cur) if (cur.ts, &cur.worker_id) >= (a.ts, &a.worker_id) => {}
                    _ => {
                        owners.insert(tp.clone(), a.clone());
                    }
                }
            }
        }
        owners
    }

    /// URLs of the other workers that currently own at least one partition.
    pub fn peer_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self
            .owners()
            .into_values()
            .filter(|a| a.worker_id != self.me)
            .map(|a| a.url)
            .collect();
        urls.sort();
        urls.dedup();
        urls
    }

    /// Publishes this worker's current assignment.
    pub fn publish(
        &self,
        producer: &TrackedProducer,
        app_id: &str,
        assigned: Vec<(String, i32)>,
    ) -> Result<()> {
        let advert = Advert {
            worker_id: self.me.clone(),
            url: self.url.clone(),
            assigned,
            ts: crate::now_ms(),
        };
        self.record(advert.clone());
        let bytes = serde_json::to_vec(&advert).map_err(|e| StreamError::Encode(e.to_string()))?;
        send_blocking(
            producer,
            &names::directory_topic(app_id),
            Some(0),
            Some(self.me.as_bytes()),
            Some(&bytes),
            None,
            None,
        )
    }

    /// Follows the directory topic until `shutdown`, on its own thread.
    pub fn follow(
        &self,
        kafka: &KafkaConfig,
        app_id: &str,
        shutdown: Shutdown,
    ) -> Result<std::thread::JoinHandle<()>> {
        let consumer: BaseConsumer = kafka
            .restore_consumer(&names::directory_group(app_id))
            .create()
            .map_err(StreamError::kafka("create directory consumer"))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&names::directory_topic(app_id), 0, Offset::Beginning)
            .map_err(StreamError::kafka("assign directory"))?;
        consumer
            .assign(&tpl)
            .map_err(StreamError::kafka("assign directory"))?;
        let me = self.clone();
        Ok(std::thread::spawn(move || {
            while !shutdown.is_triggered() {
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => match m.payload().map(serde_json::from_slice::<Advert>) {
                        Some(Ok(a)) => me.record(a),
                        _ => tracing::warn!(
                            offset = m.offset(),
                            "unreadable directory record skipped"
                        ),
                    },
                    Some(Err(e)) => tracing::debug!(error = %e, "directory read error"),
                    None => {}
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advert(id: &str, ts: i64, parts: &[i32]) -> Advert {
        Advert {
            worker_id: id.into(),
            url: format!("http://{id}"),
            assigned: parts.iter().map(|p| ("t".to_string(), *p)).collect(),
            ts,
        }
    }

    #[test]
    fn newest_claim_wins_and_superseded_workers_drop_out() {
        let d = Directory::new("http://me");
        d.record(advert("a", 1, &[0, 1, 2, 3]));
        assert_eq!(d.peer_urls(), vec!["http://a"]);
        // b joins and takes 2 and 3; a (killed) never withdrew them.
        d.record(advert("b", 2, &[2, 3]));
        let owners = d.owners();
        assert_eq!(owners[&("t".into(), 0)].worker_id, "a");
        assert_eq!(owners[&("t".into(), 3)].worker_id, "b");
        // b takes everything: a is gone from the peers.
        d.record(advert("b", 3, &[0, 1, 2, 3]));
        assert_eq!(d.peer_urls(), vec!["http://b"]);
        // An older advert arriving late changes nothing.
        d.record(advert("b", 1, &[]));
        assert_eq!(d.peer_urls(), vec!["http://b"]);
    }
}
