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
    let mut batch = sled::Batch::default();
    let (mut in_batch, mut disputes) = (0usize, 0u64);
    let mut current: Option<(String, StreamRecord)> = None;
    let mut put =
        |dispute: Option<(String, StreamRecord)>, force: bool| -> Result<(), StoreError> {
            if let Some((dispute_id, record)) = dispute {
                batch.insert(dispute_id.as_bytes(), record.encode());
                in_batch += 1;
                disputes += 1;
            }
            if in_batch >= RECORDS_PER_BATCH || (force && in_batch > 0) {
                trees.disputes.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
            Ok(())
        };
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
            put(current.take(), false)?;
            current = Some((dispute_id.clone(), StreamRecord::default()));
        }
        let (_, record) = current.as_mut().expect("just set");
        if version != record.version() + 1 {
            return Err(StoreError::corrupt(
                seq,
                format!("format 1 stream index: {dispute_id:?} has version {version} out of order"),
            ));
        }
        record.push(seq, 1);
    }
    put(current.take(), true)?;
    sync(db, disk.as_deref_mut())?;
    trees.meta.insert(FORMAT_KEY, FORMAT)?;
    sync(db, disk)?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    tracing::info!(disputes, elapsed_ms, "event store migrated from format 1");
    Ok(())
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
