//! Making what sled wrote durable. sled 0.34's `flush` writes its buffers and calls
//! `sync_file_range`, which neither flushes the drive's write cache nor the file's metadata, and
//! sled never syncs its blob files nor any directory. [`DiskSync::sync`] follows sled's flush with a
//! real `fdatasync` of the `db` file and of every new blob file, and an `fsync` of each directory
//! whose entries changed since the last sync.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::StoreError;

pub(crate) struct DiskSync {
    dir: PathBuf,
    db_file: File,
    /// The directory's entries as of the last sync.
    dir_entries: BTreeSet<OsString>,
    /// Blob files already synced (sled writes each once, then only deletes it).
    blobs: BTreeSet<OsString>,
    /// `fdatasync` and `fsync` calls made, for tests and benchmarks.
    pub syncs: u64,
}

impl DiskSync {
    /// For the sled database at `dir`, already open.
    pub(crate) fn open(dir: &Path) -> Result<DiskSync, StoreError> {
        let db_file = File::open(dir.join("db"))?;
        Ok(DiskSync {
            dir: dir.to_owned(),
            db_file,
            dir_entries: BTreeSet::new(),
            blobs: BTreeSet::new(),
            syncs: 0,
        })
    }

    /// After a store was created: its `conf` file and the directory's entry in its parent.
    pub(crate) fn sync_creation(&mut self) -> Result<(), StoreError> {
        let conf = File::open(self.dir.join("conf"))?;
        self.synced(fsync(&conf))?;
        let parent = self
            .dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let parent = File::open(parent)?;
        self.synced(fsync(&parent))
    }

    /// Everything sled was handed before this call is on stable storage when it returns `Ok`.
    pub(crate) fn sync(&mut self, db: &sled::Db) -> Result<(), StoreError> {
        db.flush()?;
        let result = fdatasync(&self.db_file);
        self.synced(result)?;
        self.sync_blobs()?;
        if changed(&self.dir, &mut self.dir_entries)? {
            let handle = File::open(&self.dir)?;
            self.synced(fsync(&handle))?;
        }
        Ok(())
    }

    fn sync_blobs(&mut self) -> Result<(), StoreError> {
        let blobs_dir = self.dir.join("blobs");
        let mut now = BTreeSet::new();
        if !list(&blobs_dir, &mut now)? {
            return Ok(());
        }
        let fresh: Vec<OsString> = now.difference(&self.blobs).cloned().collect();
        for name in &fresh {
            match File::open(blobs_dir.join(name)) {
                Ok(blob) => self.synced(fdatasync(&blob))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {} // sled already dropped it
                Err(e) => return Err(e.into()),
            }
        }
        if now != self.blobs {
            let handle = File::open(&blobs_dir)?;
            self.synced(fsync(&handle))?;
            self.blobs = now;
        }
        Ok(())
    }

    fn synced(&mut self, result: io::Result<()>) -> Result<(), StoreError> {
        self.syncs += 1;
        result.map_err(|e| StoreError::Unavailable(format!("sync in {}: {e}", self.dir.display())))
    }
}

/// Whether `dir`'s entries differ from `seen`; updates `seen`.
fn changed(dir: &Path, seen: &mut BTreeSet<OsString>) -> Result<bool, StoreError> {
    let mut now = BTreeSet::new();
    list(dir, &mut now)?;
    if now == *seen {
        return Ok(false);
    }
    *seen = now;
    Ok(true)
}

/// The names in `dir` into `out`; `false` when `dir` does not exist.
fn list(dir: &Path, out: &mut BTreeSet<OsString>) -> Result<bool, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        out.insert(entry?.file_name());
    }
    Ok(true)
}

/// `fdatasync(2)` (std retries it when a signal interrupts it): the file's data and the metadata
/// needed to read it back (its size) reach stable storage, the drive's write cache flushed.
pub(crate) fn fdatasync(file: &File) -> io::Result<()> {
    file.sync_data()
}

/// `fsync(2)`: as `fdatasync`, with all metadata; on a directory, its entries.
pub(crate) fn fsync(file: &File) -> io::Result<()> {
    file.sync_all()
}
