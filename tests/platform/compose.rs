//! docker-compose.yml: `docker-compose config -q` validates it (no Docker engine needed), and
//! the resolved file has the real stack: KRaft Kafka, Schema Registry, REST Proxy, Kafka Connect,
//! ksqlDB, Postgres with load_stations.sql, the simulation and the worker on :8889, with pinned
//! images, health checks and named volumes. Needs the `docker-compose` package (scripts/test.sh
//! installs it) and python3-yaml (a dependency of that package) to read the resolved YAML.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn compose_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml")
}

fn docker_compose(file: &Path, args: &[&str]) -> std::process::Output {
    Command::new("docker-compose")
        .arg("-f")
        .arg(file)
        .args(args)
        .env_remove("COMPOSE_FILE")
        .output()
        .unwrap_or_else(|e| {
            panic!("docker-compose not found ({e}): install the docker-compose package (scripts/test.sh does)")
        })
}

/// The file as docker-compose resolves it, as JSON.
fn resolved() -> Value {
    let out = docker_compose(&compose_file(), &["config"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let json = child.wait_with_output().unwrap();
    assert!(json.status.success(), "python3 yaml: install python3-yaml");
    serde_json::from_slice(&json.stdout).unwrap()
}

#[test]
fn compose_file_validates() {
    let out = docker_compose(&compose_file(), &["config", "-q"]);
    assert!(
        out.status.success(),
        "docker-compose config -q: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn compose_validation_catches_a_broken_file() {
    // The check above can fail: a dependency on a service that does not exist is rejected.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        "services:\n  a:\n    image: busybox:1.36\n    depends_on:\n      missing: { condition: service_healthy }\n",
    )
    .unwrap();
    let out = docker_compose(&file, &["config", "-q"]);
    assert!(!out.status.success());
}

/// (source, target) of a service's volume, short ("src:dst:mode") or long syntax.
fn volume(v: &Value) -> (String, String) {
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            (
                parts[0].to_string(),
                parts.get(1).unwrap_or(&"").to_string(),
            )
        }
        other => (
            other["source"].as_str().unwrap_or("").to_string(),
            other["target"].as_str().unwrap_or("").to_string(),
        ),
    }
}

fn env_of(service: &Value) -> std::collections::BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), s)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_has_the_whole_stack_pinned_and_healthy() {
    let c = resolved();
    let services = c["services"].as_object().unwrap();
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    for want in [
        "kafka",
        "schema-registry",
        "rest-proxy",
        "kafka-connect",
        "ksqldb-server",
        "postgres",
        "simulation",
        "worker",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains("zookeeper")),
        "KRaft, no ZooKeeper"
    );
    let declared: Vec<&str> = c["volumes"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for (name, s) in services {
        // Pinned: every image has an explicit tag that is not `latest`.
        let image = s["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no image"));
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "{name}: image {image} is not pinned"
        );
        if name != "simulation" {
            assert!(
                s["healthcheck"]["test"].is_array(),
                "{name}: no health check"
            );
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let (src, _) = volume(v);
            if !src.starts_with('/') && !src.starts_with('.') {
                assert!(
                    declared.contains(&src.as_str()),
                    "{name}: volume {src} not named"
                );
            }
        }
        for (dep, cond) in s["depends_on"].as_object().into_iter().flatten() {
            if dep != "simulation" {
                assert_eq!(
                    cond["condition"], "service_healthy",
                    "{name} waits for {dep} to be healthy"
                );
            }
        }
    }
    let kafka = env_of(&services["kafka"]);
    assert!(kafka["KAFKA_PROCESS_ROLES"].contains("controller"));
    assert!(services["kafka"]["image"]
        .as_str()
        .unwrap()
        .starts_with("confluentinc/cp-kafka:"));

    // Postgres is initialised by load_stations.sql.
    let pg_volumes: Vec<(String, String)> = services["postgres"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(volume)
        .collect();
    let (src, _) = pg_volumes
        .iter()
        .find(|(_, t)| t == "/docker-entrypoint-initdb.d/load_stations.sql")
        .expect("load_stations.sql mounted into the init dir");
    assert_eq!(
        Path::new(src),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("load_stations.sql")
    );
    assert!(pg_volumes
        .iter()
        .any(|(s, t)| s == "postgres-data" && t == "/var/lib/postgresql/data"));
    let pg = env_of(&services["postgres"]);

    // The simulation uses Connect (with Postgres's credentials) and the REST Proxy; the worker
    // uses ksqlDB and serves :8889.
    let sim = env_of(&services["simulation"]);
    assert_eq!(sim["CTA_CONNECT_URL"], "http://kafka-connect:8083");
    assert_eq!(sim["CTA_REST_PROXY_URL"], "http://rest-proxy:8082");
    assert_eq!(
        sim["CTA_CONNECT_JDBC_URL"],
        format!("jdbc:postgresql://postgres:5432/{}", pg["POSTGRES_DB"])
    );
    assert_eq!(sim["CTA_CONNECT_JDBC_USER"], pg["POSTGRES_USER"]);
    assert_eq!(sim["CTA_CONNECT_JDBC_PASSWORD"], pg["POSTGRES_PASSWORD"]);
    let worker = &services["worker"];
    let wenv = env_of(worker);
    assert_eq!(wenv["CTA_KSQL_URL"], "http://ksqldb-server:8088");
    assert_eq!(wenv["CTA_WEB_ADDR"], "0.0.0.0:8889");
    assert!(worker["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["target"] == 8889 && p["published"] == 8889));
    let connect = env_of(&services["kafka-connect"]);
    assert!(connect["CONNECT_PLUGIN_PATH"].contains("/usr/share/confluent-hub-components"));
    let cmd = services["kafka-connect"]["command"].to_string();
    assert!(cmd.contains("confluentinc/kafka-connect-jdbc:10."), "{cmd}");
}
