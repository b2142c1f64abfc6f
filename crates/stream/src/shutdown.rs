//! One shutdown signal, shared by every long-running part. Cheap to poll from a blocking loop
//! (an atomic load) and awaitable from async code. Binaries connect it to SIGINT/SIGTERM
//! ([`Shutdown::trigger_on_signals`]), the worker with a deadline
//! ([`Shutdown::trigger_on_signals_within`], [`GRACEFUL_DEADLINE`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long the worker may take to stop after SIGTERM / Ctrl-C: the last checkpoint, leaving
/// the group, closing the stores (normally well under a second).
pub const GRACEFUL_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask every holder to stop. Idempotent.
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::SeqCst)
    }

    /// Resolves once [`Shutdown::trigger`] has been called.
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }

    /// Triggers on SIGINT or SIGTERM. A second signal exits the process at once (state stays
    /// consistent: offsets are stored with the data, so nothing half-written is trusted).
    pub fn trigger_on_signals(&self) {
        self.on_signals(None);
    }

    /// [`Shutdown::trigger_on_signals`], and if the process still runs `deadline` after the
    /// first signal (the brokers cannot take the last checkpoint, say), it exits with code 1
    /// without finishing: the stores then hold the last completed checkpoint, as after a
    /// kill -9. For the worker, whose every write is safe to cut off; not for a producer that
    /// would lose what it has not yet delivered.
    pub fn trigger_on_signals_within(&self, deadline: Duration) {
        self.on_signals(Some(deadline));
    }

    fn on_signals(&self, deadline: Option<Duration>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut count = 0;
            loop {
                wait_signal().await;
                count += 1;
                if count == 1 {
                    tracing::info!("shutdown requested; finishing in-flight records (signal again to exit now)");
                    me.trigger();
                    if let Some(d) = deadline {
                        watchdog(d);
                    }
                } else {
                    tracing::warn!("second signal: exiting now");
                    exit_now(130);
                }
            }
        });
    }
}

/// Exits with code 1 unless the process has ended `deadline` from now. A plain thread, so a
/// runtime busy or blocked elsewhere cannot hold it up.
fn watchdog(deadline: Duration) {
    let spawned = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(deadline);
            tracing::error!(
                "graceful shutdown did not finish within {deadline:?}; exiting without it (the next start resumes from the last completed checkpoint)"
            );
            exit_now(1);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the shutdown deadline; waiting for the graceful stop");
    }
}

/// Ends the process now. `_exit` skips atexit handlers and C++ static destructors, which would
/// otherwise run while the poll thread may still be inside RocksDB or librdkafka; what is left
/// on disk is what a kill -9 leaves, which the stores and changelogs are built to survive.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` takes any status and never returns; it touches no Rust state.
    unsafe { libc::_exit(code) }
}

#[cfg(unix)]
async fn wait_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
