//! Stations from a real Postgres: the test starts its own server (initdb + pg_ctl, a free port
//! on 127.0.0.1, the socket in a temp dir; as the `postgres` user when run as root), loads
//! `load_stations.sql`, runs `simulation --stations-from postgres://…`, and checks the records on
//! org.chicago.cta.stations and the worker's stations table against the rows `psql` reads back.
//! The server is stopped when the guard drops, also when an assertion fails.

#[path = "../common/mod.rs"]
mod common;

use common::*;
use cta_stream::stream::testing::eventually;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Directory of initdb / pg_ctl / psql: the newest /usr/lib/postgresql/*/bin, else PATH.
fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    match dirs
        .into_iter()
        .rev()
        .map(|d| d.join(name))
        .find(|p| p.exists())
    {
        Some(p) => p,
        None => PathBuf::from(name),
    }
}

/// uid/gid to run the server as: the `postgres` user when we are root (initdb refuses root).
fn server_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        assert!(
            out.status.success(),
            "running as root needs a `postgres` user (apt-get install postgresql creates it)"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    Some((id("-u"), id("-g")))
}

struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    user: Option<(u32, u32)>,
}

impl Postgres {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn server_cmd(&self, bin: &str) -> Command {
        let mut c = Command::new(pg_bin(bin));
        c.env("LC_ALL", "C").env_remove("PGDATA");
        if let Some((uid, gid)) = self.user {
            c.uid(uid).gid(gid);
        }
        c
    }

    fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let user = server_user();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let port = free_addr().port();
        let pg = Postgres { dir, port, user };
        let out = pg
            .server_cmd("initdb")
            .args(["-D", pg.data().to_str().unwrap()])
            .args(["-U", "cta_admin", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|e| {
                panic!("initdb not found ({e}): install postgresql (scripts/test.sh does)")
            });
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.port,
            pg.dir.path().display()
        );
        let out = pg
            .server_cmd("pg_ctl")
            .args(["-D", pg.data().to_str().unwrap(), "-o", &opts])
            .args(["-l", pg.dir.path().join("log").to_str().unwrap()])
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default()
        );
        pg
    }

    fn psql(&self, db: &str, args: &[&str]) -> String {
        let out = Command::new(pg_bin("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "cta_admin",
            ])
            .args(["-d", db, "-v", "ON_ERROR_STOP=1", "-X", "-q"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create_db(&self, name: &str, sql_file: &Path) {
        self.psql("postgres", &["-c", &format!("CREATE DATABASE {name}")]);
        self.psql(name, &["-f", sql_file.to_str().unwrap()]);
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://cta_admin:unused@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .server_cmd("pg_ctl")
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}

/// A station row as psql prints it: every column as text.
type SqlRow = BTreeMap<String, String>;

const COLUMNS: [&str; 10] = [
    "stop_id",
    "direction_id",
    "stop_name",
    "station_name",
    "station_descriptive_name",
    "station_id",
    "order",
    "red",
    "blue",
    "green",
];

fn sql_rows(pg: &Postgres, db: &str) -> Vec<SqlRow> {
    let out = pg.psql(
        db,
        &[
            "-A",
            "-t",
            "-F",
            "\u{1f}",
            "-c",
            "SELECT stop_id, direction_id, stop_name, station_name, station_descriptive_name, station_id, \"order\", red, blue, green FROM stations ORDER BY stop_id",
        ],
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split('\u{1f}').collect();
            assert_eq!(cells.len(), 10, "{l}");
            COLUMNS
                .iter()
                .zip(cells)
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A JSON record from the topic, in psql's text form (booleans t/f).
fn json_as_sql_row(v: &serde_json::Value) -> SqlRow {
    let obj = v.as_object().expect("JSON object");
    assert_eq!(obj.len(), 10, "exactly the table's columns: {v}");
    COLUMNS
        .iter()
        .map(|c| {
            let cell = &obj[*c];
            let text = match cell {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                other => panic!("{c}: {other}"),
            };
            (c.to_string(), text)
        })
        .collect()
}

async fn simulation(env: &TestEnv, stations_from: &str) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_simulation"))
        .args(["--brokers", &env.kafka.brokers])
        .args(["--schema-registry-url", &env.registry.url])
        .args(["--steps", "1", "--sleep", "0", "--seed", "5"])
        .args(["--stations-from", stations_from])
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stations_round_trip_through_postgres() {
    let pg = Postgres::start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sql = root.join("load_stations.sql");
    let env = env().await;
    let app_id = "cta-pg-test";
    env.create_topics(&common::cta_topics(app_id, 4), 4).await;

    // 1. A malformed row: nothing is published, the row is named, exit non-zero.
    let text = std::fs::read_to_string(&sql).unwrap();
    let good_row = "(30001, 'E', 'Austin (O''Hare-bound)', 'Austin', 'Austin (Blue Line)', 40010, 30, false, true, false)";
    assert!(text.contains(good_row));
    let bad_sql = pg.dir.path().join("bad_stations.sql");
    std::fs::write(
        &bad_sql,
        text.replace(
            good_row,
            "(30001, 'E', 'Austin (O''Hare-bound)', 'Austin', 'Austin (Blue Line)', 40010, NULL, false, true, false)",
        ),
    )
    .unwrap();
    pg.create_db("cta_bad", &bad_sql);
    let (code, stderr) = simulation(&env, &pg.url("cta_bad")).await;
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("table stations, row stop_id 30001: column order is NULL"),
        "{stderr}"
    );
    assert!(!stderr.contains("unused"), "password leaked: {stderr}");
    for t in ["org.chicago.cta.stations", "org.chicago.cta.turnstile.v1"] {
        assert!(
            read_all(&env.kafka.brokers, t).is_empty(),
            "{t} got records"
        );
    }
    // No table at all.
    pg.psql("postgres", &["-c", "CREATE DATABASE cta_empty"]);
    let (code, stderr) = simulation(&env, &pg.url("cta_empty")).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("reading table stations failed"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");

    // 2. The real file, then a change only Postgres knows, so the test tells the sources apart.
    pg.create_db("cta", &sql);
    pg.psql(
        "cta",
        &[
            "-c",
            "UPDATE stations SET station_name = 'Clark/Lake (from Postgres)' WHERE station_id = 40380; \
             DELETE FROM stations WHERE station_id = 40010;",
        ],
    );
    let expected_rows = sql_rows(&pg, "cta");
    assert_eq!(
        expected_rows.len(),
        text.matches("\n    (").count() - 2,
        "two Austin platforms deleted"
    );
    let (code, stderr) = simulation(&env, &pg.url("cta")).await;
    assert_eq!(code, 0, "{stderr}");

    // The records on the topic are the table's rows, column for column.
    let mut published: Vec<SqlRow> = read_all(&env.kafka.brokers, "org.chicago.cta.stations")
        .into_iter()
        .map(|(k, v)| {
            assert!(k.is_none(), "the JDBC source writes no key");
            json_as_sql_row(&serde_json::from_slice(&v.unwrap()).unwrap())
        })
        .collect();
    published.sort_by_key(|r| r["stop_id"].parse::<i32>().unwrap());
    assert_eq!(published, expected_rows);

    // The worker's stations table: one station per (line, station_id) of the rows.
    let mut expected: BTreeMap<(String, i64), (String, i64)> = BTreeMap::new();
    for r in &expected_rows {
        let line = ["red", "blue", "green"]
            .into_iter()
            .find(|l| r[*l] == "t")
            .unwrap();
        expected.insert(
            (line.to_string(), r["station_id"].parse().unwrap()),
            (r["station_name"].clone(), r["order"].parse().unwrap()),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let worker = spawn_worker(&env, dir.path(), app_id).await;
    let got = eventually(
        "the worker's stations equal the Postgres table's",
        Duration::from_secs(60),
        async || {
            // The server may not listen yet: a refused connection is just "not yet".
            let answer = match reqwest::get(format!("{}/api/status", worker.base)).await {
                Ok(r) if r.status() == 200 => r.json::<serde_json::Value>().await.ok(),
                _ => None,
            };
            let Some(v) = answer else {
                return Err(None);
            };
            let mut got = BTreeMap::new();
            for line in v["lines"].as_array().unwrap() {
                for st in line["stations"].as_array().unwrap() {
                    got.insert(
                        (
                            line["line"].as_str().unwrap().to_string(),
                            st["station_id"].as_i64().unwrap(),
                        ),
                        (
                            st["station_name"].as_str().unwrap().to_string(),
                            st["order"].as_i64().unwrap(),
                        ),
                    );
                }
            }
            if got == expected {
                Ok(got)
            } else {
                Err(Some(got))
            }
        },
    )
    .await;
    worker.stop().await;
    assert_eq!(got, expected);
    assert_eq!(
        got[&("blue".to_string(), 40380)].0,
        "Clark/Lake (from Postgres)"
    );
    assert!(!got.contains_key(&("blue".to_string(), 40010)));
}
