//! Changed bytes on disk: `verify` names the first broken seq; `open` refuses a broken tail.

use std::path::Path;

use disputes_store::layout::{
    set_stored_event, stored_event, StreamRecord, DISPUTES_TREE, EVENTS_TREE,
};
use disputes_store::{compute_hash, Envelope, EventStore, SledStore, StoreError, StoreOptions};

use crate::support::{appended, open, request};

/// 20 one-event appends over 4 disputes, then the store is closed.
fn twenty_events(dir: &Path) {
    let store = open(dir);
    for n in 0..20u64 {
        let dispute = format!("d-{}", n % 4);
        appended(store.append(request(&dispute, n / 4, Some(&format!("c-{n}")), 1)));
    }
}

/// sled on the closed store's directory (waiting, as the store does, for the lock the store's
/// threads release a moment after it is dropped).
fn raw_sled(dir: &Path) -> sled::Db {
    disputes_store::open_sled(&sled::Config::new().path(dir)).unwrap()
}

/// Rewrites the stored value of the event at `seq` (the store must be closed).
fn tamper(dir: &Path, seq: u64, change: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>) {
    let db = raw_sled(dir);
    let events = db.open_tree(EVENTS_TREE).unwrap();
    let old = stored_event(&events, seq).expect("an event at the seq");
    set_stored_event(&events, seq, change(old));
    db.flush().unwrap();
}

/// A store `fill` wrote, closed, with the event at `seq` rewritten by `change` as [`tamper`] does.
fn tampered(
    fill: fn(&Path),
    seq: u64,
    change: impl FnOnce(Vec<u8>) -> Option<Vec<u8>>,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    tamper(dir.path(), seq, change);
    dir
}

fn replace(bytes: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains(from), "{text}");
    text.replacen(from, to, 1).into_bytes()
}

/// Opens despite a broken event further back than the start-up check looks.
fn open_checking_tail(dir: &Path, tail: u64) -> SledStore {
    SledStore::open(
        dir,
        StoreOptions {
            recovery_tail_events: tail,
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// The seq `open` refuses the store at (`Corrupt`), if it refuses it so.
fn refused_at(dir: &Path) -> Option<u64> {
    match SledStore::open(dir, StoreOptions::default()) {
        Err(StoreError::Corrupt { seq, .. }) => Some(seq),
        Err(other) => panic!("refused, but not as corrupt: {other}"),
        Ok(_) => None,
    }
}

fn first_break(dir: &Path) -> (u64, String, u64) {
    let report = open_checking_tail(dir, 5).verify().unwrap();
    let broken = report.first_break.expect("verify finds the break");
    (broken.seq, broken.reason, report.events)
}

#[test]
fn verify_finds_an_event_whose_bytes_changed() {
    let dir = tampered(twenty_events, 7, |bytes| {
        Some(replace(bytes, "\"i\":0", "\"i\":9"))
    });
    let (seq, reason, events) = first_break(dir.path());
    assert_eq!((seq, events), (7, 6), "{reason}");
    assert!(
        reason.contains("the event was changed after it was written"),
        "{reason}"
    );
    // The default start-up check covers seq 7 and refuses to open.
    assert_eq!(refused_at(dir.path()), Some(7));
}

#[test]
fn a_changed_event_with_a_recomputed_hash_breaks_the_next_link() {
    let dir = tampered(twenty_events, 7, |bytes| {
        let mut envelope: Envelope = serde_json::from_slice(&bytes[1..]).unwrap();
        envelope.actor.id = "someone-else".into();
        envelope.hash = compute_hash(&envelope.prev_hash, &envelope);
        // serde_json's default map is sorted: this is the canonical form.
        let value = serde_json::to_value(&envelope).unwrap();
        let mut stored = vec![bytes[0]];
        stored.extend(serde_json::to_vec(&value).unwrap());
        Some(stored)
    });
    let (seq, reason, _) = first_break(dir.path());
    assert_eq!(seq, 8, "{reason}");
    assert!(reason.contains("prev_hash"), "{reason}");
}

#[test]
fn verify_finds_bytes_that_are_not_the_canonical_form() {
    let dir = tempfile::tempdir().unwrap();
    twenty_events(dir.path());
    // Same envelope, same hash, but an extra field no hash covers.
    tamper(dir.path(), 3, |bytes| {
        Some(replace(bytes, "{\"actor\"", "{\"x\":1,\"actor\""))
    });
    let (seq, reason, _) = first_break(dir.path());
    assert_eq!(seq, 3);
    assert!(reason.contains("unknown field `x`"), "{reason}");
    // Same fields, another form: a space the hash does not cover.
    let dir = tampered(twenty_events, 5, |bytes| {
        Some(replace(bytes, "{\"actor\"", "{ \"actor\""))
    });
    let (seq, reason, _) = first_break(dir.path());
    assert_eq!(seq, 5);
    assert!(reason.contains("canonical"), "{reason}");
}

#[test]
fn verify_finds_a_missing_event_and_a_broken_index() {
    let dir = tampered(twenty_events, 12, |_| None);
    let (seq, reason, _) = first_break(dir.path());
    assert_eq!(seq, 12, "{reason}");

    let dir = tempfile::tempdir().unwrap();
    twenty_events(dir.path());
    {
        let db = raw_sled(dir.path());
        // seq 10 is d-1's third event (n = 9): its record places that append at seq 11, d-3's.
        let disputes = db.open_tree(DISPUTES_TREE).unwrap();
        let bytes = disputes.get("d-1").unwrap().unwrap();
        let mut record = StreamRecord::decode(&bytes).unwrap();
        assert_eq!(record.appends[2], (10, 1));
        record.appends[2] = (11, 1);
        disputes.insert("d-1", record.encode()).unwrap();
        db.flush().unwrap();
    }
    let (seq, reason, _) = first_break(dir.path());
    assert_eq!(seq, 10, "{reason}");
}

/// 12 events in four appends of three over 2 disputes (seqs 1-3, 4-6, 7-9, 10-12), then the store
/// is closed: each append is stored as one value.
fn four_appends_of_three(dir: &Path) {
    let store = open(dir);
    for n in 0..4u64 {
        let dispute = format!("d-{}", n % 2);
        let command = format!("c-{n}");
        appended(store.append(request(&dispute, (n / 2) * 3, Some(&command), 3)));
    }
}

#[test]
fn an_event_inside_an_append_of_several_is_checked_like_any_other() {
    let dir = tempfile::tempdir().unwrap();
    four_appends_of_three(dir.path());
    // seq 5: the middle event of the second append.
    tamper(dir.path(), 5, |bytes| {
        Some(replace(bytes, "\"i\":1", "\"i\":9"))
    });
    let (seq, reason, events) = first_break(dir.path());
    assert_eq!((seq, events), (5, 4), "{reason}");
    assert!(reason.contains("changed after it was written"), "{reason}");
    assert_eq!(refused_at(dir.path()), Some(5));

    let dir = tampered(four_appends_of_three, 5, |_| None);
    let (seq, reason, _) = first_break(dir.path());
    assert_eq!(seq, 5, "{reason}");

    let dir = tampered(four_appends_of_three, 12, |_| None);
    assert_eq!(refused_at(dir.path()), Some(12));
}

#[test]
fn verify_finds_a_stream_record_placing_another_disputes_event() {
    let dir = tempfile::tempdir().unwrap();
    twenty_events(dir.path());
    {
        let db = raw_sled(dir.path());
        // d-1's events are seqs 2, 6, 10, 14, 18; seq 19 is d-2's.
        let disputes = db.open_tree(DISPUTES_TREE).unwrap();
        let bytes = disputes.get("d-1").unwrap().unwrap();
        let mut record = StreamRecord::decode(&bytes).unwrap();
        record.appends.push((19, 1));
        disputes.insert("d-1", record.encode()).unwrap();
        db.flush().unwrap();
    }
    // The start-up check of the last event only (d-3's) does not look at d-1's record.
    let report = open_checking_tail(dir.path(), 1).verify().unwrap();
    let broken = report.first_break.expect("verify finds the break");
    assert_eq!(broken.seq, 19, "{}", broken.reason);
    assert_eq!(report.events, 20, "every event itself checks out");
}

#[test]
fn open_refuses_a_log_that_lost_its_head_event() {
    let dir = tampered(twenty_events, 20, |_| None);
    assert_eq!(refused_at(dir.path()), Some(20));
}

#[test]
fn an_intact_store_verifies() {
    let dir = tempfile::tempdir().unwrap();
    twenty_events(dir.path());
    let store = open(dir.path());
    let report = store.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.events, report.head), (20, 20));
    assert_eq!(report.head_hash, store.read_from(20, 1).unwrap()[0].hash);
}
