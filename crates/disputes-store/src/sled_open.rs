//! Opening a sled database: the one place that knows sled releases its lock late, and that
//! sled does not create a database atomically.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an open waits for a lock the previous holder, in this process, is still releasing.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Opens `config`'s database. sled 0.34 releases its file lock a moment after the last handle
/// of a database is dropped (its background threads finish first), so opening a directory
/// right after closing it in the same process can find the lock still held: wait for it, a
/// little. A lock held by another process stays an error.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let started = Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_RELEASE_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}

/// Creates a sled database at `path` unless one is there, so that a process killed while sled
/// creates it cannot leave a database no later open accepts. sled 0.34 writes a new database's
/// `conf` file with two writes (its settings, then their CRC; `Config::write_config`), and reads
/// it back by cutting the last four bytes off as the CRC (`read_config`): a process killed between
/// the two writes leaves settings whose last line is cut short, and every later open fails with
/// "corruption" (seen once in the store's SIGKILL test, killed within 60 ms of its first start).
/// So a new database is made in `<path>.creating`, closed, and renamed into place; a
/// `<path>.creating` left by a creation cut short is deleted first. A `path` that exists without
/// sled's `conf` is used as it is when it holds anything (sled then creates in place, as before).
pub(crate) fn create_atomically(path: &Path) -> std::io::Result<()> {
    if path.join("conf").exists() || !is_empty_or_absent(path)? {
        return Ok(());
    }
    let creating = creating_path(path);
    if creating.exists() {
        std::fs::remove_dir_all(&creating)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let db = open_sled(&sled::Config::new().path(&creating)).map_err(std::io::Error::other)?;
    db.flush().map_err(std::io::Error::other)?;
    drop(db);
    // Replaces an empty directory at `path`; then the rename itself is made durable.
    std::fs::rename(&creating, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Where [`create_atomically`] makes a new database before moving it to `path`.
fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".creating");
    path.with_file_name(name)
}

fn is_empty_or_absent(path: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_whose_creation_was_cut_short_is_created_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        // What a kill between sled's two writes of `conf` leaves: the settings, the CRC missing.
        let creating = creating_path(&path);
        std::fs::create_dir_all(&creating).unwrap();
        let cut_short = b"segment_size: 524288\nuse_compression: false\nversion: 0.34\n";
        std::fs::write(creating.join("conf"), cut_short).unwrap();
        // sled itself refuses such a database for good.
        let refused = sled::Config::new().path(&creating).open().err();
        assert!(
            matches!(refused, Some(sled::Error::Corruption { .. })),
            "{refused:?}"
        );
        create_atomically(&path).unwrap();
        assert!(!creating.exists());
        let db = open_sled(&sled::Config::new().path(&path)).unwrap();
        assert!(db.is_empty());
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        drop(db);
        // An existing database is left as it is.
        create_atomically(&path).unwrap();
        let db = open_sled(&sled::Config::new().path(&path)).unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_directory_that_holds_other_files_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        create_atomically(dir.path()).unwrap();
        assert!(!dir.path().join("conf").exists());
        assert_eq!(
            std::fs::read(dir.path().join("notes.txt")).unwrap(),
            b"mine"
        );
    }
}
