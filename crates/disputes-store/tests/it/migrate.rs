//! A store of the first format (one `events` key and one `streams` key per event, a `versions` key
//! per dispute) opens: its indexes become stream records, its events read as before, and it takes
//! appends; an auditor's reader reads it as it is, migrated or not.

use std::path::Path;

use disputes_store::layout::{
    seq_key, stream_key, COMMANDS_TREE, DISPUTES_TREE, EVENTS_TREE, EVENT_SCHEMA_V1, FORMAT,
    FORMAT_KEY, FORMAT_V1, HEAD_KEY, LAST_HASH_KEY, META_TREE, ORDERS_TREE, STREAMS_TREE,
    VERSIONS_TREE,
};
use disputes_store::{
    canonical_bytes_with_hash, open_sled, AppendOutcome, Envelope, EventStore, LogReader,
};

use crate::support::{appended, assert_log_intact, open, read_all, request};

fn raw_sled(dir: &Path) -> sled::Db {
    open_sled(&sled::Config::new().path(dir)).unwrap()
}

/// Appends of one and of several events over three disputes, with and without a command, one
/// reserving an order; the store closed. Every envelope, in seq order.
fn a_store(dir: &Path) -> Vec<Envelope> {
    let store = open(dir);
    let mut opening = request("d-0", 0, Some("c-open"), 1);
    opening.reserve_order = Some("o-1".into());
    appended(store.append(opening));
    appended(store.append(request("d-1", 0, Some("c-1"), 3)));
    appended(store.append(request("d-0", 1, Some("c-2"), 2)));
    appended(store.append(request("d-2", 0, None, 2)));
    appended(store.append(request("d-1", 3, Some("c-3"), 1)));
    read_all(&store)
}

/// The same log as the first format's store wrote it, into the empty directory `v1` (the commands
/// and orders trees, which did not change, copied from `v2`).
fn as_format_1(v2: &Path, v1: &Path, envelopes: &[Envelope]) {
    let (from, to) = (raw_sled(v2), raw_sled(v1));
    let events = to.open_tree(EVENTS_TREE).unwrap();
    let streams = to.open_tree(STREAMS_TREE).unwrap();
    let versions = to.open_tree(VERSIONS_TREE).unwrap();
    for e in envelopes {
        let mut stored = vec![EVENT_SCHEMA_V1];
        stored.extend(canonical_bytes_with_hash(e));
        events.insert(seq_key(e.seq), stored).unwrap();
        streams
            .insert(stream_key(&e.dispute_id, e.version), &seq_key(e.seq))
            .unwrap();
        versions
            .insert(e.dispute_id.as_bytes(), &e.version.to_be_bytes())
            .unwrap();
    }
    for name in [COMMANDS_TREE, ORDERS_TREE] {
        let (source, copy) = (from.open_tree(name).unwrap(), to.open_tree(name).unwrap());
        for item in source.iter() {
            let (k, v) = item.unwrap();
            copy.insert(k, v).unwrap();
        }
    }
    let meta = to.open_tree(META_TREE).unwrap();
    let last = envelopes.last().unwrap();
    meta.insert(FORMAT_KEY, FORMAT_V1).unwrap();
    meta.insert(HEAD_KEY, &seq_key(last.seq)).unwrap();
    meta.insert(LAST_HASH_KEY, last.hash.as_bytes()).unwrap();
    to.flush().unwrap();
}

fn of(envelopes: &[Envelope], dispute_id: &str) -> Vec<Envelope> {
    envelopes
        .iter()
        .filter(|e| e.dispute_id == dispute_id)
        .cloned()
        .collect()
}

fn tree_names(dir: &Path) -> Vec<String> {
    let db = raw_sled(dir);
    let names = db.tree_names();
    names
        .iter()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect()
}

#[test]
fn a_format_1_store_opens_migrated_reads_as_before_and_takes_appends() {
    let (v2, v1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let all = a_store(v2.path());
    assert_eq!(all.len(), 9);
    as_format_1(v2.path(), v1.path(), &all);

    // An auditor reads it as it is, before any migration.
    {
        let reader = LogReader::open(v1.path()).unwrap();
        let entries: Vec<Envelope> = reader.entries(1).map(Result::unwrap).collect();
        assert_eq!(entries, all);
        let d1: Vec<Envelope> = reader
            .dispute_entries("d-1", 1)
            .map(Result::unwrap)
            .collect();
        assert_eq!(d1, of(&all, "d-1"));
    }

    let store = open(v1.path());
    assert_eq!(assert_log_intact(&store), all);
    for dispute in ["d-0", "d-1", "d-2"] {
        assert_eq!(store.read_stream(dispute).unwrap(), of(&all, dispute));
    }
    assert_eq!(store.stream_version("d-1").unwrap(), 4);
    assert_eq!(store.order_holder("o-1").unwrap().as_deref(), Some("d-0"));
    let c1 = store.command("c-1").unwrap().expect("recorded");
    assert_eq!(c1.events, all[1..4].to_vec());
    // A repeat is answered from the migrated store; a new append continues every stream.
    let Ok(AppendOutcome::Duplicate(repeat)) = store.append(request("d-1", 0, Some("c-1"), 3))
    else {
        panic!("a repeat of c-1 is a duplicate");
    };
    assert_eq!(repeat.events, c1.events);
    let more = appended(store.append(request("d-1", 4, Some("c-4"), 2)));
    assert_eq!((more[0].seq, more[0].version), (10, 5));
    assert_eq!(more[0].prev_hash, all[8].hash);
    let after = assert_log_intact(&store);
    drop(store);

    let names = tree_names(v1.path());
    assert!(names.contains(&DISPUTES_TREE.to_owned()), "{names:?}");
    assert!(!names.contains(&STREAMS_TREE.to_owned()), "{names:?}");
    assert!(!names.contains(&VERSIONS_TREE.to_owned()), "{names:?}");
    let format = raw_sled(v1.path())
        .open_tree(META_TREE)
        .unwrap()
        .get(FORMAT_KEY)
        .unwrap();
    assert_eq!(format.as_deref(), Some(FORMAT));
    let reopened = open(v1.path());
    assert_eq!(assert_log_intact(&reopened), after);
    let reader_view: Vec<Envelope> = {
        drop(reopened);
        let reader = LogReader::open(v1.path()).unwrap();
        let d1 = reader
            .dispute_entries("d-1", 1)
            .map(Result::unwrap)
            .collect();
        d1
    };
    assert_eq!(reader_view, of(&after, "d-1"));
}

#[test]
fn a_migration_cut_short_starts_again_and_format_1_trees_left_over_are_dropped() {
    let (v2, v1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let all = a_store(v2.path());
    as_format_1(v2.path(), v1.path(), &all);
    {
        // A migration killed part way: some records written, the format still 1.
        let db = raw_sled(v1.path());
        let disputes = db.open_tree(DISPUTES_TREE).unwrap();
        disputes.insert("d-9", seq_key(1).repeat(2)).unwrap();
        disputes.insert("d-1", b"half a record".to_vec()).unwrap();
        db.flush().unwrap();
    }
    let store = open(v1.path());
    assert_eq!(assert_log_intact(&store), all);
    assert_eq!(store.stream_version("d-9").unwrap(), 0);
    assert_eq!(store.read_stream("d-1").unwrap(), of(&all, "d-1"));
    drop(store);

    // The format marker moved, then the process died before the old trees were dropped.
    {
        let db = raw_sled(v2.path());
        let streams = db.open_tree(STREAMS_TREE).unwrap();
        streams.insert(stream_key("d-0", 1), &seq_key(1)).unwrap();
        db.flush().unwrap();
    }
    assert!(tree_names(v2.path()).contains(&STREAMS_TREE.to_owned()));
    let store = open(v2.path());
    assert_eq!(assert_log_intact(&store), all);
    drop(store);
    assert!(!tree_names(v2.path()).contains(&STREAMS_TREE.to_owned()));
}
