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

    /// Stops noida-db with SIGTERM (it writes its data dir out: logs, committed offsets, open
    /// transactions) and starts it again on the same port and data dir. The group members are
    /// gone after it: noida-db never expires a dead member (nor replaces a restarted static
    /// one), so this is how a test hands a killed worker's partitions to its restart there.
    /// Checked with a plain confluent-kafka 2.16 client, 2026-12-02: offsets committed in a
    /// transaction and the records of a transaction left open by a SIGKILLed producer survive
    /// it (the open one stays invisible to `read_committed` until the next `init_transactions`
    /// of its id aborts it), and a new member gets every partition at once. After SIGKILL
    /// instead, noida-db 0.2.2 loses what it had not written out.
    pub fn restart(&mut self) {
        assert_eq!(
            self.kind,
            Kind::Noida,
            "only noida-db keeps its data over a restart"
        );
        self.stop_with(libc::SIGTERM);
        self.wait_closed();
        self.up();
    }

    /// Kills the broker (SIGKILL to its process group) and waits until the port is closed.
    pub fn down(&mut self) {
        self.stop_with(libc::SIGKILL);
        self.wait_closed();
    }

    fn wait_closed(&self) {
        eventually_blocking(
            "the broker stops listening",
            Duration::from_secs(10),
            || match std::net::TcpStream::connect(&self.brokers) {
                Ok(_) => Err("still listens"),
                Err(_) => Ok(()),
            },
        );
    }

    /// Sends `signal` to the broker's process group and waits for the launcher to exit.
    fn stop_with(&mut self, signal: libc::c_int) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) of the process group created at spawn.
            unsafe { libc::kill(-(child.id() as i32), signal) };
            let _ = child.wait();
            // The launcher is gone; the broker (its child, same group) may still be writing
            // its data dir out: wait until no process of the group is left.
            eventually_blocking(
                "the broker's processes exit",
                Duration::from_secs(30),
                || {
                    // SAFETY: signal 0 only asks whether a process of the group exists.
                    match unsafe { libc::kill(-(child.id() as i32), 0) } {
                        0 => Err("still running"),
                        _ => Ok(()),
                    }
                },
            );
        }
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.stop_with(libc::SIGKILL);
    }
}

/// A test environment with `broker` and the embedded platform's schema registry (returned
/// too: it stops when dropped), the simulation's topics (4 partitions each) created there.
pub async fn env_on(broker: &LocalBroker) -> (cta_stream::platform::Platform, super::TestEnv) {
    let platform = cta_stream::platform::Platform::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let env = super::TestEnv {
        platform: None,
        kafka: cta_stream::stream::KafkaConfig::new(broker.brokers.clone()),
        registry: cta_stream::stream::RegistryConfig::new(platform.registry_url.clone()),
    };
    let topics = cta_stream::transit::simulation::topic_specs(4);
    cta_stream::stream::kafka::ensure_topics(&env.kafka, &topics)
        .await
        .unwrap();
    (platform, env)
}
