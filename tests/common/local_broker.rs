//! Kafka-protocol brokers run as processes of their own for the tests that need more than
//! the embedded mock: noida-db (transactions, `read_committed`, CreateTopics, persistence
//! across a broker restart) and tansu 0.6 (static group members replaced on rejoin; no
//! transactions). Needs `noida-db` on PATH (`scripts/test.sh` installs it with pip) or
//! `tansu` on PATH or at `$CTA_TEST_TANSU` (`cargo install tansu --features dynostore,libsql`).
//! Without the broker, [`LocalBroker::noida`] / [`LocalBroker::tansu`] return `None` after
//! saying the test is skipped; under `CI` noida-db must be there.

use cta_stream::stream::testing::eventually_blocking;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Noida,
    Tansu,
}

/// A broker process on a free port, stopped on drop.
pub struct LocalBroker {
    kind: Kind,
    program: String,
    child: Option<Child>,
    port: u16,
    pub brokers: String,
    dir: tempfile::TempDir,
}

fn runs(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl LocalBroker {
    /// noida-db; required under `CI`.
    pub fn noida() -> Option<Self> {
        if !runs("noida-db", "version") {
            assert!(
                std::env::var_os("CI").is_none(),
                "noida-db is not installed or does not run (scripts/test.sh installs it with pip)"
            );
            eprintln!("SKIPPED: noida-db not found or not runnable (pip install noida-db)");
            return None;
        }
        Some(Self::start(Kind::Noida, "noida-db".into()))
    }

    /// tansu, from `$CTA_TEST_TANSU` or PATH; optional everywhere (its build takes ~20 min).
    pub fn tansu() -> Option<Self> {
        let program = std::env::var("CTA_TEST_TANSU").unwrap_or_else(|_| "tansu".into());
        if !runs(&program, "--version") {
            eprintln!("SKIPPED: tansu not found (set CTA_TEST_TANSU or put it on PATH)");
            return None;
        }
        Some(Self::start(Kind::Tansu, program))
    }

    fn start(kind: Kind, program: String) -> Self {
        let port = super::free_addr().port();
        let mut b = LocalBroker {
            kind,
            program,
            child: None,
            port,
            brokers: format!("127.0.0.1:{port}"),
            dir: tempfile::tempdir().unwrap(),
        };
        b.up();
        b
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Starts the broker (again) on the same port (noida-db: and data dir; tansu keeps its
    /// data in memory), and waits until it listens.
    pub fn up(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let mut cmd = Command::new(&self.program);
        match self.kind {
            Kind::Noida => {
                cmd.args(["start", "--only", "kafka", "--kafka-port"])
                    .arg(self.port.to_string())
                    .arg("--data-dir")
                    .arg(self.dir.path());
            }
            Kind::Tansu => {
                let url = format!("tcp://127.0.0.1:{}", self.port);
                cmd.args(["broker", "--listener-url", &url])
                    .args(["--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/"]);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // `noida-db` is a Python launcher that runs the broker as its child: give both a
            // process group of their own, so a kill reaches the broker too.
            .process_group(0)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
        eventually_blocking("the broker listens", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&self.brokers)
        });
    }

    /// Kills the broker (SIGKILL to its process group) and waits until the port is closed.
    pub fn down(&mut self) {
        self.kill();
        eventually_blocking(
            "the broker stops listening after the kill",
            Duration::from_secs(10),
            || match std::net::TcpStream::connect(&self.brokers) {
                Ok(_) => Err("still listens"),
                Err(_) => Ok(()),
            },
        );
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) of the process group created at spawn.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A test environment with `broker` and the embedded platform's schema registry (returned
/// too: it stops when dropped).
pub async fn env_on(broker: &LocalBroker) -> (cta_stream::platform::Platform, super::TestEnv) {
    let platform = cta_stream::platform::Platform::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let env = super::TestEnv {
        platform: None,
        kafka: cta_stream::stream::KafkaConfig::new(broker.brokers.clone()),
        registry: cta_stream::stream::RegistryConfig::new(platform.registry_url.clone()),
    };
    (platform, env)
}
