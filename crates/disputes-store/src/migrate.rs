//! Opening a store of the first format (`disputes-store/1`). Its events stay as they are: one stored
//! envelope under each seq reads as an append of one event. Its indexes, a `streams` key per event
//! and a `versions` key per dispute, become one stream record per dispute in `disputes`; then the
//! format marker moves to 2, and only after that are the old trees dropped. Each step is durable
//! before the next, so a crash at any point leaves a store that opens: still format 1 (the
//! migration starts again, the records written so far cleared), or format 2 with old trees left
//! over (dropped at this open).

use std::time::Instant;

use crate::disk::DiskSync;
use crate::error::StoreError;
use crate::layout::{
    decode_u64, parse_stream_key, StreamRecord, FORMAT, FORMAT_KEY, STREAMS_TREE, VERSIONS_TREE,
};
use crate::sled_store::Trees;

/// Stream records written per sled batch.
const RECORDS_PER_BATCH: usize = 10_000;

/// Migrates a format 1 store to the current format (see the module's comment).
pub(crate) fn from_v1(
    db: &sled::Db,
    trees: &Trees,
    mut disk: Option<&mut DiskSync>,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let streams = db.open_tree(STREAMS_TREE)?;
    trees.disputes.clear()?; // what an interrupted migration wrote
    let mut records = Records::new(&trees.disputes);
    let mut current: Option<(String, StreamRecord)> = None;
    for entry in streams.iter() {
        let (key, value) = entry?;
        let (Some((dispute_id, version)), Some(seq)) = (parse_stream_key(&key), decode_u64(&value))
        else {
            return Err(StoreError::corrupt(
                0,
                "format 1 stream index: an unreadable entry",
            ));
        };
        if current.as_ref().is_none_or(|(d, _)| *d != dispute_id) {
            let next = (dispute_id.clone(), StreamRecord::default());
            if let Some(done) = current.replace(next) {
                records.put(done)?;
            }
        }
        let (_, record) = current.as_mut().expect("just set");
        // One entry per event in format 1, so the record's length is its version.
        if version != record.appends.len() as u64 + 1 {
            return Err(StoreError::corrupt(
                seq,
                format!("format 1 stream index: {dispute_id:?} has version {version} out of order"),
            ));
        }
        record.push(seq, 1);
    }
    if let Some(done) = current {
        records.put(done)?;
    }
    let disputes = records.finish()?;
    sync(db, disk.as_deref_mut())?;
    trees.meta.insert(FORMAT_KEY, FORMAT)?;
    sync(db, disk)?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(disputes, elapsed_ms, "event store migrated from format 1");
    Ok(())
}

/// Stream records written in sled batches of [`RECORDS_PER_BATCH`].
struct Records<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    in_batch: usize,
    written: u64,
}

impl<'a> Records<'a> {
    fn new(tree: &'a sled::Tree) -> Records<'a> {
        Records {
            tree,
            batch: sled::Batch::default(),
            in_batch: 0,
            written: 0,
        }
    }

    fn put(&mut self, (dispute_id, record): (String, StreamRecord)) -> Result<(), StoreError> {
        self.batch.insert(dispute_id.as_bytes(), record.encode());
        self.in_batch += 1;
        self.written += 1;
        if self.in_batch == RECORDS_PER_BATCH {
            self.apply()?;
        }
        Ok(())
    }

    fn apply(&mut self) -> Result<(), StoreError> {
        self.tree.apply_batch(std::mem::take(&mut self.batch))?;
        self.in_batch = 0;
        Ok(())
    }

    /// Writes what is left; the records written.
    fn finish(mut self) -> Result<u64, StoreError> {
        if self.in_batch > 0 {
            self.apply()?;
        }
        Ok(self.written)
    }
}

/// Drops what a migration left of format 1, if anything: only once the store is of the current
/// format.
pub(crate) fn drop_v1_trees(db: &sled::Db, disk: Option<&mut DiskSync>) -> Result<(), StoreError> {
    let names = db.tree_names();
    let mut dropped = false;
    for old in [STREAMS_TREE, VERSIONS_TREE] {
        if names.iter().any(|name| name.as_ref() == old.as_bytes()) {
            dropped |= db.drop_tree(old)?;
        }
    }
    if dropped {
        sync(db, disk)?;
    }
    Ok(())
}

fn sync(db: &sled::Db, disk: Option<&mut DiskSync>) -> Result<(), StoreError> {
    match disk {
        Some(disk) => disk.sync(db),
        None => db.flush().map(drop).map_err(StoreError::from),
    }
}
