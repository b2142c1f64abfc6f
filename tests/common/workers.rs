//! Workers under test: in this process ([`spawn_worker`], with its web server), or as the
//! `worker` binary ([`spawn_worker_binary`], [`worker_binary`]) a test can kill and restart.

use super::{free_addr, TestEnv};
use cta_stream::stream::testing::eventually;
use std::time::{Duration, Instant};

/// Triggers a shutdown when dropped, so a failing assertion does not leave a worker thread
/// running (and the test process hanging).
pub struct StopOnDrop(pub cta_stream::stream::Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// A child process killed (SIGKILL) when dropped, so a failing test leaves no worker behind
/// (one would hold the test runner's output open and retry its gone broker forever).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A worker (tables + web server) running in this process.
pub struct RunningWorker {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub shutdown: cta_stream::stream::Shutdown,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningWorker {
    /// Whether the worker has ended (stopped or failed) on its own.
    pub fn has_ended(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for RunningWorker {
    /// A failing test still stops its worker, so the runtime can shut down.
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts a worker with its web server on a free loopback port.
pub async fn spawn_worker(env: &TestEnv, dir: &std::path::Path, app_id: &str) -> RunningWorker {
    spawn_worker_with(env, dir, app_id, Default::default()).await
}

/// [`spawn_worker`] with outside systems (ksqlDB) taking over part of the work.
#[allow(dead_code)]
pub async fn spawn_worker_with(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    integrations: cta_stream::runner::WorkerIntegrations,
) -> RunningWorker {
    use cta_stream::runner::{run_worker_with, WorkerOptions};
    let addr = free_addr();
    let opts = WorkerOptions {
        app_id: app_id.to_string(),
        data_dir: dir.to_path_buf(),
        web_addr: addr,
        commit_interval: Duration::from_millis(200),
        checkpoint_when_idle: true,
        advertise_url: None,
        guarantee: Default::default(),
        standby_replicas: 0,
        turnstile_keys: Default::default(),
    };
    let shutdown = cta_stream::stream::Shutdown::new();
    let (kafka, registry, s) = (env.kafka.clone(), env.registry.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        run_worker_with(opts, kafka, registry, integrations, s)
            .await
            .expect("worker failed");
    });
    // The server binds before the worker starts polling; wait until it answers.
    let base = format!("http://{addr}");
    eventually(
        "the worker's web server answers",
        Duration::from_secs(30),
        async || reqwest::get(format!("{base}/health")).await.map(drop),
    )
    .await;
    RunningWorker {
        base,
        addr,
        shutdown,
        task: Some(task),
    }
}

/// Starts the `worker` binary against `env`, with its own data dir and web address. A killed
/// worker's group session ends after 3 s, so restarts and fail-overs are not held up by it.
pub fn spawn_worker_binary(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
) -> std::process::Child {
    worker_binary(env, dir, app_id, addr, commit_interval)
        .spawn()
        .expect("start worker binary")
}

/// Worker flags for a test that needs the checkpoints to wait for `--commit-interval` (no
/// checkpoint as soon as the worker has caught up).
#[allow(dead_code)]
pub const ONLY_TIMED_CHECKPOINTS: [&str; 2] = ["--checkpoint-when-idle", "false"];

/// [`spawn_worker_binary`] with more flags.
pub fn spawn_worker_binary_with(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
    extra: &[&str],
) -> std::process::Child {
    worker_binary(env, dir, app_id, addr, commit_interval)
        .args(extra)
        .spawn()
        .expect("start worker binary")
}

/// How the worker processes form their consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// Classic groups (JoinGroup/SyncGroup, eager assignment), short session timeout.
    Classic,
    /// KIP-848 (`group.protocol=consumer`): incremental assignment, session timeout set by
    /// the broker.
    Consumer,
}

/// The command [`spawn_worker_binary`] runs, to add flags or capture its output.
pub fn worker_binary(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
) -> std::process::Command {
    worker_binary_in(
        env,
        dir,
        app_id,
        addr,
        commit_interval,
        GroupProtocol::Classic,
    )
}

/// [`worker_binary`] with the group protocol chosen.
pub fn worker_binary_in(
    env: &TestEnv,
    dir: &std::path::Path,
    app_id: &str,
    addr: std::net::SocketAddr,
    commit_interval: &str,
    protocol: GroupProtocol,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_worker"));
    cmd.args(["--brokers", &env.kafka.brokers])
        .args(["--schema-registry-url", &env.registry.url])
        .args(["--app-id", app_id])
        .arg("--data-dir")
        .arg(dir)
        .args(["--web-addr", &addr.to_string()])
        .args(["--commit-interval", commit_interval]);
    match protocol {
        // A killed worker's partitions move on after the session timeout: short on the
        // embedded broker, Kafka's minimum (group.min.session.timeout.ms) elsewhere, or
        // `CTA_TEST_SESSION_TIMEOUT_MS` (tansu 0.6 needs more than the 6 s it takes to answer a
        // join: with 6 s it drops the joining members, tests/faults/static_membership.rs).
        GroupProtocol::Classic => cmd.args([
            "-X".to_string(),
            format!(
                "session.timeout.ms={}",
                match std::env::var("CTA_TEST_SESSION_TIMEOUT_MS") {
                    Ok(ms) => ms,
                    Err(_) if env.platform.is_some() => "3000".into(),
                    Err(_) => "6000".into(),
                }
            ),
            "-X".into(),
            "heartbeat.interval.ms=500".into(),
        ]),
        GroupProtocol::Consumer => cmd.args(["-X", "group.protocol=consumer"]),
    };
    // `CTA_TEST_WORKER_LOG` (a RUST_LOG filter) makes the workers say more, e.g. `info`.
    let filter = std::env::var("CTA_TEST_WORKER_LOG");
    cmd.env(
        "RUST_LOG",
        filter.as_deref().unwrap_or("warn,librdkafka=error"),
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::inherit());
    cmd
}

/// Sends the worker's output (at info: restores, assignments, commits) to the file `log`,
/// appended, instead of the test's stderr: what a failure's reader needs, one file per worker.
pub fn log_to<'a>(
    cmd: &'a mut std::process::Command,
    log: &std::path::Path,
) -> &'a mut std::process::Command {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
    cmd.env("RUST_LOG", "info,librdkafka=warn")
        .stdout(file.try_clone().expect("log file handle"))
        .stderr(file)
}

/// Waits up to `timeout` for a child process to exit; `None` if it is still running.
pub fn wait_exit(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
