use super::*;

#[test]
fn keys_in_paths_are_decoded_json_or_text() {
    assert_eq!(parse_key::<i32>("40380").ok(), Some(40380));
    assert_eq!(parse_key::<String>("hello").ok(), Some("hello".into()));
    // "42" is JSON for a number, not a string: taken as the text 42.
    assert_eq!(parse_key::<String>("42").ok(), Some("42".into()));
    assert_eq!(parse_key::<String>("h%C3%A9%20x").ok(), Some("hé x".into()));
    assert!(parse_key::<i32>("forty").is_err());
    assert_eq!(encode("hé x/y"), "h%C3%A9%20x%2Fy");
}

use crate::table::route::partition_for;

/// A worker holding the table `seen-ids` (a name peers percent-encode; i32 ids → names) fed `rows` on a 3-partition topic.
fn worker(rows: &[(i32, &str)]) -> (Table<i32, String>, crate::TestDriver) {
    use crate::testing::{TestDriver, TestRecord};
    let mut app = crate::App::new(TestDriver::config("view"));
    let seen = app.table_on::<i32, String>("seen-ids", "ids");
    let t = seen.clone();
    app.agent_fn("ids", move |r| {
        let id: i32 = r.key_str()?.parse().unwrap_or(-1);
        t.put(r, id, r.value_str()?.to_string())
    });
    let mut driver = TestDriver::with_partitions(app, &[("ids", 3)]).unwrap();
    for (id, v) in rows {
        let r = TestRecord::new("ids").key(id.to_string()).value(v);
        driver.pipe(r).unwrap();
    }
    (seen, driver)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_list_read_and_refuse_keys_they_cannot_answer() {
    let (seen, driver) = worker(&[(7, "seven"), (40380, "clark/lake"), (1, "one")]);
    let shutdown = Shutdown::new();
    let localhost = ([127, 0, 0, 1], 0);
    let (addr, task) = serve(seen.view(None), localhost, shutdown.clone())
        .await
        .unwrap();
    let (status, list) = get(addr, "/tables/seen-ids").await;
    assert_eq!(status, 200);
    let keys: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_i64().unwrap())
        .collect();
    assert_eq!(keys, vec![1, 7, 40380]);
    let (status, one) = get(addr, "/tables/seen-ids/40380").await;
    assert_eq!((status, one["value"].as_str()), (200, Some("clark/lake")));
    // The key's partition is Kafka's for the key text (the ids were produced as text).
    let p = crate::table::route::partition_for(b"40380", 3);
    assert_eq!(one["partition"].as_i64(), Some(i64::from(p)));
    assert_eq!(get(addr, "/tables/seen-ids/8").await.0, 404);
    assert_eq!(get(addr, "/tables/seen-ids/eight").await.0, 400);
    assert_eq!(get(addr, "/tables/other").await.0, 404);
    // A partition this worker does not hold, with no directory to find its owner: 503.
    seen.close_partition(p);
    assert_eq!(get(addr, "/tables/seen-ids/40380").await.0, 503);
    drop(driver);
    shutdown.trigger();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_other_workers_partitions_go_to_their_owner() {
    let p = crate::table::route::partition_for(b"40380", 3);
    let (seen_a, _a) = worker(&[(40380, "clark/lake")]);
    // Worker b holds every partition but the key's, and one entry of its own elsewhere.
    let other = (0..100).find(|id| partition_for(id.to_string().as_bytes(), 3) != p);
    let other = other.unwrap();
    let (seen_b, _b) = worker(&[(other, "b's")]);
    seen_a.close_partition((p + 1) % 3);
    seen_b.close_partition(p);
    let shutdown = Shutdown::new();
    let localhost = ([127, 0, 0, 1], 0);
    let (addr_a, _) = serve(seen_a.view(None), localhost, shutdown.clone())
        .await
        .unwrap();
    let directory = Directory::new("http://b.invalid");
    directory.record(crate::directory::Advert {
        worker_id: "a".into(),
        url: format!("http://{addr_a}"),
        assigned: vec![("ids".into(), p)],
        ts: 1,
    });
    let view_b = seen_b.view(Some(directory));
    let (addr_b, _) = serve(view_b, localhost, shutdown.clone()).await.unwrap();
    let (status, one) = get(addr_b, "/tables/seen-ids/40380").await;
    assert_eq!((status, one["value"].as_str()), (200, Some("clark/lake")));
    // The list has both workers' entries; a's own answer stays local.
    let (_, list) = get(addr_b, "/tables/seen-ids").await;
    let keys: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_i64().unwrap())
        .collect();
    let mut want = vec![i64::from(other), 40380];
    want.sort();
    assert_eq!(keys, want);
    assert_eq!(
        get(addr_b, "/tables/seen-ids/40380?scope=local").await.0,
        404
    );
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scattered_tables_key_reads_as_every_copy() {
    let (seen, _driver) = worker(&[(7, "seven"), (40380, "clark/lake")]);
    let seen = seen.scattered();
    assert_eq!(seen.partition_of(&7), None);
    assert_eq!(seen.value(&7).unwrap().as_deref(), Some("seven"));
    let shutdown = Shutdown::new();
    let localhost = ([127, 0, 0, 1], 0);
    let (addr, _) = serve(seen.view(None), localhost, shutdown.clone())
        .await
        .unwrap();
    let (status, copies) = get(addr, "/tables/seen-ids/40380").await;
    let p = i64::from(partition_for(b"40380", 3));
    let want = serde_json::json!([{"key": 40380, "value": "clark/lake", "partition": p}]);
    assert_eq!((status, copies), (200, want));
    assert_eq!(get(addr, "/tables/seen-ids/8").await.0, 404);
    let local = get(addr, "/tables/seen-ids/8?scope=local").await;
    assert_eq!(local, (200, serde_json::json!([])));
    shutdown.trigger();
}
