//! A noida-db Kafka broker for the tests that need a real-ish broker: transactions,
//! `read_committed`, CreateTopics, persistence across a broker restart. Needs `noida-db` on
//! PATH (`scripts/test.sh` installs it with pip); without it [`Noida::start`] returns `None`
//! after saying the test is skipped, except under `CI`, where it fails.

use cta_stream::stream::testing::eventually_blocking;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A noida-db broker on a free port, stopped on drop.
pub struct Noida {
    child: Option<Child>,
    port: u16,
    pub brokers: String,
    dir: tempfile::TempDir,
}

impl Noida {
    pub fn start() -> Option<Self> {
        let found = Command::new("noida-db")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("CI").is_none(),
                "noida-db is not installed or does not run (scripts/test.sh installs it with pip)"
            );
            eprintln!("SKIPPED: noida-db not found or not runnable (pip install noida-db)");
            return None;
        }
        let port = super::free_addr().port();
        let mut n = Noida {
            child: None,
            port,
            brokers: format!("127.0.0.1:{port}"),
            dir: tempfile::tempdir().unwrap(),
        };
        n.up();
        Some(n)
    }

    /// Starts the broker (again) on the same port and data dir, and waits until it listens.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "noida-db is already running");
        let child = Command::new("noida-db")
            .args([
                "start",
                "--only",
                "kafka",
                "--kafka-port",
                &self.port.to_string(),
            ])
            .arg("--data-dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // `noida-db` is a Python launcher that runs the broker as its child: give both a
            // process group of their own, so a kill reaches the broker too.
            .process_group(0)
            .spawn()
            .expect("start noida-db");
        self.child = Some(child);
        eventually_blocking("noida-db listens", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&self.brokers)
        });
    }

    /// Kills the broker (SIGKILL to its process group) and waits until the port is closed.
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) of the process group created at spawn.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        eventually_blocking(
            "noida-db stops listening after the kill",
            Duration::from_secs(10),
            || match std::net::TcpStream::connect(&self.brokers) {
                Ok(_) => Err("still listens"),
                Err(_) => Ok(()),
            },
        );
    }
}

impl Drop for Noida {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) of the process group created at spawn.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

/// A test environment with `noida`'s broker and the embedded platform's schema registry
/// (returned too: it stops when dropped).
pub async fn env_on(noida: &Noida) -> (cta_stream::platform::Platform, super::TestEnv) {
    let platform = cta_stream::platform::Platform::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let env = super::TestEnv {
        platform: None,
        kafka: cta_stream::stream::KafkaConfig::new(noida.brokers.clone()),
        registry: cta_stream::stream::RegistryConfig::new(platform.registry_url.clone()),
    };
    (platform, env)
}
