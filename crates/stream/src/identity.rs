//! Ids a worker keeps in its data dir across restarts: its transactional id (exactly-once
//! mode) and its static group member id (`group.instance.id`). A restarted worker presents
//! the same ids, so the brokers replace its killed incarnation at once: the transaction
//! coordinator fences the old producer and aborts its open transaction, and the group
//! coordinator hands the new member the old one's partitions without waiting for its session
//! to time out. Both files sit beside the app's store folder, so `--reset-state` keeps them.

use crate::error::{Result, StreamError};
use crate::names;
use std::path::Path;

/// This worker's transactional id, `{app_id}-{random}`, kept in `{data_dir}/{app_id}.transactional-id`.
pub fn transactional_id(app_id: &str, data_dir: &Path) -> Result<String> {
    kept_id(app_id, data_dir, &names::transactional_id_file(app_id))
}

/// This worker's static group membership id, `{app_id}-{random}`, kept in
/// `{data_dir}/{app_id}.group-instance-id`.
pub fn group_instance_id(app_id: &str, data_dir: &Path) -> Result<String> {
    kept_id(app_id, data_dir, &names::group_instance_id_file(app_id))
}

/// The id in `{data_dir}/{file}`, created (`{app_id}-{16 hex digits}`) when missing.
fn kept_id(app_id: &str, data_dir: &Path, file: &str) -> Result<String> {
    let path = data_dir.join(file);
    let io = |source| StreamError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(data_dir).map_err(|source| StreamError::Io {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let id = names::kept_id(app_id, random_u64());
    std::fs::write(&path, &id).map_err(io)?;
    Ok(id)
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_per_app_and_kind_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let a = transactional_id("app", dir.path()).unwrap();
        assert!(a.starts_with("app-") && a.len() == "app-".len() + 16, "{a}");
        assert_eq!(transactional_id("app", dir.path()).unwrap(), a);
        let b = transactional_id("other", dir.path()).unwrap();
        assert!(b.starts_with("other-"));
        let fresh = tempfile::tempdir().unwrap();
        assert_ne!(transactional_id("app", fresh.path()).unwrap(), a);

        let m = group_instance_id("app", dir.path()).unwrap();
        assert!(m.starts_with("app-") && m != a, "{m}");
        assert_eq!(group_instance_id("app", dir.path()).unwrap(), m);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app.group-instance-id")).unwrap(),
            m
        );
    }
}
