//! Storage faults, with the worker binary.
//!
//! A store that cannot be written stops the worker at the failing write, before the checkpoint
//! commits any offset; it exits 1 with one line naming the store and the cause, and once the
//! fault is gone a restart counts exactly. The fault is `chattr +i` on the stores (immutable:
//! not even root can write, append or create files there), which fails RocksDB's writes as a
//! read-only or full disk would. Where `chattr` does not work (not root, a filesystem without
//! the flag) the test says so and skips, except under CI (`CI` set), where it fails.
//!
//! A full disk (ENOSPC) is a small tmpfs data dir filled up mid-run: the same stop, one line
//! naming the store and "No space left on device", and an exact restart once space is freed.
//! Where a tmpfs cannot be mounted the test says so and skips.
//!
//! A store whose files are damaged (garbage in CURRENT) is refused with one line saying to
//! rebuild with `--reset-state`, and that rebuild (from the changelog) is exact.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::{eventually, unique_name};
use cta_stream::transit::models::topics;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn chattr(flag: &str, path: &Path) -> Result<(), String> {
    let out = Command::new("chattr")
        .args(["-R", flag])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run chattr: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "chattr {flag} {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether an immutable file in `dir` really refuses writes here.
fn immutable_works(dir: &Path) -> Result<(), String> {
    let probe = dir.join("immutable-probe");
    std::fs::write(&probe, b"x").map_err(|e| e.to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&probe)
        .map_err(|e| e.to_string())?;
    chattr("+i", &probe)?;
    let refused = std::io::Write::write_all(&mut file, b"y").is_err();
    chattr("-i", &probe)?;
    std::fs::remove_file(&probe).map_err(|e| e.to_string())?;
    if refused {
        Ok(())
    } else {
        Err("a write to an immutable file succeeded".into())
    }
}

/// Makes a directory tree immutable until dropped (so a failing test leaves nothing that
/// cannot be deleted).
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Self {
        chattr("+i", path).unwrap();
        Self(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        if let Err(e) = chattr("-i", &self.0) {
            eprintln!("could not undo the fault: {e}");
        }
    }
}

async fn wait_committed(env: &TestEnv, app_id: &str, total: i64) {
    eventually(
        &format!("the group committed {total}"),
        Duration::from_secs(30),
        async || {
            let got: i64 = group_committed(env, app_id, topics::TURNSTILE)
                .values()
                .sum();
            if got == total {
                Ok(())
            } else {
                Err(format!("group committed {got}"))
            }
        },
    )
    .await
}

/// The `error:` lines of a worker's stderr.
fn error_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("error:")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_write_error_stops_the_worker_and_a_restart_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    if let Err(why) = immutable_works(dir.path()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the storage fault test: {why}"
        );
        eprintln!("skipped: cannot make files immutable here ({why})");
        return;
    }
    let env = env().await;
    let app_id = unique_name("storage");
    create_all_topics(&env, &app_id).await;
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut expected = BTreeMap::new();
    producer.send(20_000, &mut rng, &mut expected);

    let addr = free_addr();
    let base = format!("http://{addr}");
    let log_path = dir.path().join("worker.log");
    let mut child = worker_binary(&env, dir.path(), &app_id, addr, "200ms")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    // Idle and fully checkpointed: nothing is in flight when the fault starts.
    wait_committed(&env, &app_id, 20_000).await;

    let stores = dir.path().join(&app_id);
    let fault = Immutable::set(&stores);
    producer.send(5_000, &mut rng, &mut expected);
    let status = wait_exit(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the worker kept running with a store it cannot write")
    });
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(status.code(), Some(1), "exit code; log:\n{log}");
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "one error line; log:\n{log}");
    let line = errors[0];
    eprintln!("worker said: {line}");
    assert!(
        line.contains("state store")
            && line.contains(&stores.display().to_string())
            && line.contains("Operation not permitted"),
        "names the store and the cause: {line}"
    );
    // The failed checkpoint wrote no store. The group takes a checkpoint's offsets before its
    // stores are written (so a store is never ahead of the group), so it may hold the failed
    // checkpoint's; its changelog records were flushed before that, and the restart below
    // replays them.
    let committed: i64 = group_committed(&env, &app_id, topics::TURNSTILE)
        .values()
        .sum();
    assert!(
        (20_000..=25_000).contains(&committed),
        "the group at the last good checkpoint or the failed one: {committed}"
    );
    drop(fault);
    assert_eq!(stored_total(dir.path(), &app_id), 20_000);

    // Fault gone: a restart counts every entry once.
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, "200ms");
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    assert_eq!(count_turnstile(&env).await, expected);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_store_is_refused_and_reset_state_rebuilds_it() {
    let env = env().await;
    let app_id = unique_name("corrupt");
    create_all_topics(&env, &app_id).await;
    let dir = tempfile::tempdir().unwrap();
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
    let mut expected = BTreeMap::new();
    producer.send(10_000, &mut rng, &mut expected);

    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_worker_binary(&env, dir.path(), &app_id, addr, "200ms");
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    wait_committed(&env, &app_id, 10_000).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let store = dir
        .path()
        .join(&app_id)
        .join(cta_stream::transit::tables::TURNSTILE)
        .join("0");
    std::fs::write(store.join("CURRENT"), b"\x00\x01 not a manifest name\xff").unwrap();

    let addr = free_addr();
    let log_path = dir.path().join("corrupt.log");
    let mut child = worker_binary(&env, dir.path(), &app_id, addr, "200ms")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the worker kept running on a corrupt store")
    });
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(status.code(), Some(1), "exit code; log:\n{log}");
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "one error line; log:\n{log}");
    eprintln!("worker said: {}", errors[0]);
    assert!(
        errors[0].contains(&store.display().to_string())
            && errors[0].contains("is corrupt")
            && errors[0].contains("--reset-state"),
        "names the store and the way out: {}",
        errors[0]
    );

    // --reset-state rebuilds every store of the app from the changelogs: exact.
    producer.send(2_000, &mut rng, &mut expected);
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = worker_binary(&env, dir.path(), &app_id, addr, "200ms")
        .arg("--reset-state")
        .spawn()
        .unwrap();
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A tmpfs of `size` mounted at a new directory under `parent`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(parent: &Path, size: &str) -> Result<Self, String> {
        let dir = parent.join("tmpfs");
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to a new file at `path` until the filesystem is full; returns the bytes
/// written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                return written;
            }
        }
    }
}

/// Free bytes on the filesystem of `path`.
fn free_bytes(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: zeroed is a valid statvfs (plain integers).
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a writable statvfs.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut s) }, 0);
    s.f_bavail as u64 * s.f_frsize as u64
}

/// Disk full (ENOSPC) mid-run: the data dir is a small tmpfs, filled up while entries arrive.
/// The failing RocksDB write stops the worker (exit 1, one line naming the store and the
/// cause) before that checkpoint commits any offset; once space is freed a restart counts
/// exactly. Where a tmpfs cannot be mounted (not root, no mount permission in a container)
/// the test says so and skips.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_stops_the_worker_with_its_stores_behind_the_group() {
    let outer = tempfile::tempdir().unwrap();
    let tmpfs = match Tmpfs::mount(outer.path(), "64m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!("skipped: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let data = tmpfs.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let env = env().await;
    let app_id = unique_name("enospc");
    create_all_topics(&env, &app_id).await;
    let producer = TurnstileProducer::new(&env).await;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(15);
    let mut expected = BTreeMap::new();
    producer.send(20_000, &mut rng, &mut expected);

    let addr = free_addr();
    let base = format!("http://{addr}");
    let log_path = outer.path().join("worker.log");
    let mut child = worker_binary(&env, &data, &app_id, addr, "200ms")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    eventually(
        "the first 20k counted",
        Duration::from_secs(60),
        async || {
            let got = api_turnstile(&base).await;
            if got.as_ref() == Some(&expected) {
                return Ok(());
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "worker exited {status} before counting; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap()
                );
            }
            Err(got.map(|m| format!("{} counted", m.values().sum::<i64>())))
        },
    )
    .await;
    wait_committed(&env, &app_id, 20_000).await;
    let before = free_bytes(&tmpfs.0);

    // The disk fills up; entries keep arriving until the worker stops.
    let filler = tmpfs.0.join("filler");
    let filled = fill(&filler);
    assert_eq!(free_bytes(&tmpfs.0), 0);
    eprintln!(
        "{} KiB were free after the first 20k entries; filled {} KiB",
        before >> 10,
        filled >> 10
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the worker kept running on a full disk");
        }
        producer.send(1_000, &mut rng, &mut expected);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(status.code(), Some(1), "exit code; log:\n{log}");
    let errors = error_lines(&log);
    assert_eq!(errors.len(), 1, "one error line; log:\n{log}");
    let line = errors[0];
    eprintln!(
        "worker said after {:?} on a full disk: {line}",
        started.elapsed()
    );
    let stores = data.join(&app_id);
    assert!(
        line.contains("state store")
            && line.contains(&stores.display().to_string())
            && line.contains("No space left on device"),
        "names the store and the cause: {line}"
    );

    // Space freed: the stores hold only completed checkpoints, and never more than the group
    // (it takes a checkpoint's offsets before the stores are written; a store ahead of the
    // group would, once its partition moved and came back, mix two owners' work).
    std::fs::remove_file(&filler).unwrap();
    let produced: i64 = expected.values().sum();
    let stored = stored_total(&data, &app_id);
    let committed: i64 = group_committed(&env, &app_id, topics::TURNSTILE)
        .values()
        .sum();
    eprintln!("produced {produced}, stores cover {stored}, group committed {committed}");
    assert!(stored >= 20_000 && stored < produced, "stored {stored}");
    assert!(
        committed >= stored,
        "stores {stored} past the group {committed}"
    );

    // A restart counts every entry once.
    let addr = free_addr();
    let base = format!("http://{addr}");
    let mut child = spawn_worker_binary(&env, &data, &app_id, addr, "200ms");
    wait_for_counts(&base, &expected, Duration::from_secs(60)).await;
    assert_eq!(count_turnstile(&env).await, expected);
    child.kill().unwrap();
    child.wait().unwrap();
}
