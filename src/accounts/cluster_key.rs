//! Where a central finds the key it shares with the other centrals of its network.

use super::secret_file;
use crate::proof::ClusterKey;
use std::path::Path;

/// The key in `file`; made there (readable by this user only) when there is none yet, which
/// is how the first central of a network gets it. The others must be given a copy.
pub fn load_or_create(file: &Path) -> anyhow::Result<ClusterKey> {
    use anyhow::Context;
    match secret_file::read(file).with_context(|| format!("cannot read {}", file.display()))? {
        Some(text) => ClusterKey::from_hex(&text).with_context(|| {
            format!(
                "{} does not hold a cluster key (64 hex digits)",
                file.display()
            )
        }),
        None => {
            let key = ClusterKey::generate();
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            secret_file::write(file, &key.to_hex())
                .with_context(|| format!("cannot write {}", file.display()))?;
            log::warn!(
                "made a new cluster key in {}: give every other central of this network a \
                 copy (central.cluster_key_file)",
                file.display()
            );
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys").join("cluster-key");
        let made = load_or_create(&file).unwrap();
        assert!(secret_file::is_private(&file));
        assert_eq!(load_or_create(&file).unwrap(), made);
        std::fs::write(&file, "not a key").unwrap();
        let refused = load_or_create(&file).unwrap_err().to_string();
        assert!(refused.contains("does not hold a cluster key"), "{refused}");
    }
}
