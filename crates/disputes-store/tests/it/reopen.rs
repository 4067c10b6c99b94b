//! Closing and reopening keeps everything, and the chain goes on from where it was.

use disputes_store::{EventStore, StoreError};

use crate::support::{appended, assert_log_intact, open, request};

#[test]
fn reopen_after_close_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (log, stream, outcome) = {
        let store = open(dir.path());
        for n in 0..30u64 {
            let dispute = format!("d-{}", n % 4);
            let version = store.stream_version(&dispute).unwrap();
            let mut req = request(
                &dispute,
                version,
                Some(&format!("c-{n}")),
                1 + (n % 2) as usize,
            );
            req.reserve_order = (n < 4).then(|| format!("o-{n}"));
            appended(store.append(req));
        }
        (
            assert_log_intact(&store),
            store.read_stream("d-1").unwrap(),
            store.command("c-7").unwrap(),
        )
    };
    let store = open(dir.path());
    assert_eq!(assert_log_intact(&store), log);
    assert_eq!(store.read_stream("d-1").unwrap(), stream);
    assert_eq!(store.command("c-7").unwrap(), outcome);
    assert_eq!(*store.subscribe().borrow(), log.len() as u64);
    // Refusals still hold after reopening: the version, the command id, the order.
    assert!(matches!(
        store.append(request("d-1", 0, None, 1)),
        Err(StoreError::VersionConflict { .. })
    ));
    let mut taken = request("d-new", 0, None, 1);
    taken.reserve_order = Some("o-2".into());
    assert!(matches!(
        store.append(taken),
        Err(StoreError::OrderTaken { .. })
    ));
    assert!(matches!(
        store.append(request("d-1", 99, Some("c-7"), 1)),
        Ok(disputes_store::AppendOutcome::Duplicate(_))
    ));
    // The chain continues.
    let version = store.stream_version("d-1").unwrap();
    assert_eq!(version, stream.len() as u64);
    let next = appended(store.append(request("d-1", version, None, 1)));
    assert_eq!(next[0].seq, log.len() as u64 + 1);
    assert_eq!(next[0].prev_hash, log.last().unwrap().hash);
    assert_log_intact(&store);
}

#[test]
fn a_directory_opened_twice_is_refused_not_shared() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path());
    let second =
        disputes_store::SledStore::open(dir.path(), disputes_store::StoreOptions::default());
    assert!(
        matches!(second, Err(StoreError::Unavailable(_))),
        "sled locks its directory"
    );
}
