//! The embedded platform for the demo and the tests: an in-process Kafka-protocol broker (the
//! core's [`EmbeddedBroker`], librdkafka's mock cluster) and a Confluent-compatible Schema
//! Registry ([`schema_registry`]). Imports nothing from `transit`.
//!
//! Discovery: a process hosting the platform writes its addresses to a small JSON file
//! ([`discovery_path`]); binaries started without `--brokers` read it.

pub mod schema_registry;

pub use crate::stream::embedded::{BrokerError, EmbeddedBroker};

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Addresses of a running platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAddresses {
    pub brokers: String,
    pub schema_registry_url: String,
    pub pid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("embedded schema registry: {0}")]
    Registry(#[from] schema_registry::RegistryError),
    #[error("discovery file {path}: {reason}")]
    Discovery { path: PathBuf, reason: String },
}

/// Where the platform's addresses are written: `$CTA_PLATFORM_FILE`, else
/// `$XDG_RUNTIME_DIR/cta-stream-platform.json`, else `/tmp/cta-stream-platform.json`.
pub fn discovery_path() -> PathBuf {
    if let Some(p) = std::env::var_os("CTA_PLATFORM_FILE") {
        return PathBuf::from(p);
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join("cta-stream-platform.json")
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Reads the discovery file; `None` when there is none or its process is gone.
pub fn discover() -> Option<PlatformAddresses> {
    let path = discovery_path();
    let text = std::fs::read_to_string(&path).ok()?;
    let addrs: PlatformAddresses = serde_json::from_str(&text).ok()?;
    process_alive(addrs.pid).then_some(addrs)
}

/// A running embedded broker and registry.
pub struct Platform {
    pub broker: EmbeddedBroker,
    pub registry_url: String,
    registry_task: tokio::task::JoinHandle<()>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    discovery: Option<PathBuf>,
}

impl Platform {
    /// Starts the broker and a registry on `registry_addr` (port 0 for any free port);
    /// `registry_dir` makes schemas durable.
    pub async fn start(
        registry_addr: SocketAddr,
        registry_dir: Option<&Path>,
    ) -> Result<Self, PlatformError> {
        let broker = EmbeddedBroker::start(1)?;
        let registry = schema_registry::SchemaRegistry::open(registry_dir)?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (bound, registry_task) = registry
            .serve(registry_addr, async move {
                let _ = rx.await;
            })
            .await?;
        let registry_url = format!("http://{bound}");
        tracing::info!(brokers = broker.bootstrap_servers(), %registry_url, "embedded platform up");
        Ok(Self {
            broker,
            registry_url,
            registry_task,
            stop: Some(tx),
            discovery: None,
        })
    }

    pub fn addresses(&self) -> PlatformAddresses {
        PlatformAddresses {
            brokers: self.broker.bootstrap_servers().to_string(),
            schema_registry_url: self.registry_url.clone(),
            pid: std::process::id(),
        }
    }

    /// Writes the discovery file so other processes find this platform; removed on drop.
    pub fn advertise(&mut self) -> Result<PathBuf, PlatformError> {
        let path = discovery_path();
        let err = |e: std::io::Error| PlatformError::Discovery {
            path: path.clone(),
            reason: e.to_string(),
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(&self.addresses()).unwrap_or_default(),
        )
        .map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        self.discovery = Some(path.clone());
        Ok(path)
    }

    /// Stops the registry (the broker stops when dropped).
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.registry_task).await;
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        if let Some(p) = &self.discovery {
            let _ = std::fs::remove_file(p);
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
