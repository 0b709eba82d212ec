//! Files that hold a secret (a token, a one-time password): readable and writable by their
//! owner only (mode 0600). Each is created afresh, so that neither the permissions of a file
//! that was there nor a link planted in its place carry over.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `secret` and a newline to `path` with mode 0600, replacing any file there.
pub fn write(path: &Path, secret: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // `create_new` refuses to follow a link that appeared since; the mode is the file's from
    // its first instant.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// The secret in `path`, without surrounding whitespace; `None` when there is no such file.
/// Says so in the log when others than the owner may read it.
pub fn read(path: &Path) -> std::io::Result<Option<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !is_private(path) {
        log::warn!(
            "{} may be read by others than its owner: `chmod 600` it",
            path.display()
        );
    }
    Ok(Some(text.trim().to_owned()))
}

/// Whether only the file's owner may read or write it (no permission for group or others).
pub fn is_private(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_the_owners_alone_even_over_an_open_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!is_private(&path));
        write(&path, "s3cret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        assert_eq!(read(&path).unwrap().as_deref(), Some("s3cret"));
        assert_eq!(read(&dir.path().join("none")).unwrap(), None);
    }
}
