//! Reads through the write cache, the committed copy and the store agree, across commits
//! and restores.

use super::*;

fn rec(offset: i64) -> Record<'static> {
    Record {
        topic: "src",
        partition: 0,
        offset,
        timestamp: None,
        key: None,
        payload: None,
    }
}

fn commit(t: &Table<String, i64>, source: i64) {
    let changes = t.pending(0);
    t.commit_partition(
        0,
        &changes,
        StoreOffsets {
            source: Some(source),
            changelog: None,
            epoch: None,
        },
    )
    .unwrap();
}

#[test]
fn reads_after_commits_and_restores_match_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TableSpec {
        name: "t".into(),
        source_topic: "src".into(),
        changelog_topic: None,
    };
    let t: Table<String, i64> = Table::new("app", dir.path(), spec.clone());
    t.open_partition(0, 1).unwrap();
    let inc = |o: Option<i64>| o.unwrap_or(0) + 1;
    t.update(&rec(0), "a".into(), inc).unwrap();
    t.update_each(&rec(1), ["a".to_string(), "b".to_string()], inc)
        .unwrap();
    let first = t.items_shared().unwrap();
    assert!(Arc::ptr_eq(&first, &t.items_shared().unwrap()));
    commit(&t, 2);
    t.delete(&rec(2), "b".into()).unwrap();
    t.update(&rec(3), "c".into(), inc).unwrap();
    assert!(!Arc::ptr_eq(&first, &t.items_shared().unwrap()));
    commit(&t, 4);
    // Older records are ignored; the values come from memory and equal the store's.
    t.update(&rec(1), "a".into(), inc).unwrap();
    assert_eq!(t.get(&rec(4), &"a".to_string()).unwrap(), Some(2));
    assert_eq!(t.get(&rec(4), &"b".to_string()).unwrap(), None);
    let want = vec![(0, "a".to_string(), 2), (0, "c".to_string(), 1)];
    assert_eq!(t.items().unwrap(), want);
    // A restore written straight to the store is seen by the next read.
    t.restore_batch(
        0,
        &[(json::encode(&"d".to_string()), Some(json::encode(&7i64)))],
        StoreOffsets::default(),
    )
    .unwrap();
    assert_eq!(t.get(&rec(4), &"d".to_string()).unwrap(), Some(7));
    assert_eq!(t.entry_count(), 3);
    // A fresh handle on the same directory reads the same entries from RocksDB.
    t.close_partition(0);
    let again: Table<String, i64> = Table::new("app", dir.path(), spec);
    again.open_partition(0, 1).unwrap();
    assert_eq!(again.partition_items(0).unwrap().len(), 3);
    assert_eq!(again.get(&rec(4), &"a".to_string()).unwrap(), Some(2));
}
