//! `SledStore::import`: appends another log sealed, written only when they continue this log.

use disputes_store::{
    compute_hash, AppendOutcome, CommandRecord, EventStore, SealedAppend, SledStore, StoreError,
};

use crate::support::{appended, read_all, request};

/// Appends on `source` and the same appends as `SealedAppend`s.
fn source_log() -> (SledStore, Vec<SealedAppend>) {
    let source = SledStore::open_temporary().unwrap();
    let mut sealed = Vec::new();
    for (i, dispute) in ["d-1", "d-2", "d-1", "d-3", "d-2"].iter().enumerate() {
        let version = source.stream_version(dispute).unwrap();
        let command_id = (i != 3).then(|| format!("c-{i}"));
        let mut req = request(dispute, version, command_id.as_deref(), 1 + i % 3);
        if version == 0 {
            req.reserve_order = Some(format!("o-{dispute}"));
        }
        let (command, reserve_order) = (req.command.clone(), req.reserve_order.clone());
        let events = appended(source.append(req));
        sealed.push(SealedAppend {
            command,
            reserve_order,
            events,
        });
    }
    (source, sealed)
}

#[test]
fn an_imported_log_reads_back_as_its_source_with_commands_and_orders() {
    let (source, sealed) = source_log();
    let copy = SledStore::open_temporary().unwrap();
    let head = copy.import(sealed).unwrap();
    assert_eq!(head, source.head());
    assert_eq!(read_all(&copy), read_all(&source));
    assert!(copy.verify().unwrap().is_intact());
    for id in ["c-0", "c-1", "c-2", "c-4"] {
        assert_eq!(
            copy.command(id).unwrap(),
            source.command(id).unwrap(),
            "{id}"
        );
    }
    assert_eq!(copy.order_holder("o-d-2").unwrap().as_deref(), Some("d-2"));
    // The copy goes on as a log of its own: a repeat of an imported command id is a duplicate.
    let repeat = copy.append(request("d-1", 2, Some("c-0"), 1)).unwrap();
    assert!(matches!(repeat, AppendOutcome::Duplicate(_)), "{repeat:?}");
}

fn refused_at(result: Result<u64, StoreError>) -> u64 {
    match result {
        Err(StoreError::Corrupt { seq, .. }) => seq,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_import_with_one_changed_byte_is_refused_at_that_event_and_nothing_from_it_is_written() {
    let (_source, mut sealed) = source_log();
    let bad = &mut sealed[2].events[1];
    let seq = bad.seq;
    bad.data["i"] = serde_json::json!(7);
    let copy = SledStore::open_temporary().unwrap();
    assert_eq!(refused_at(copy.import(sealed)), seq);
    assert_eq!(
        copy.head(),
        seq - 2,
        "the appends before it are written, not its own"
    );
    assert!(copy.verify().unwrap().is_intact());
}

#[test]
fn an_import_that_skips_repeats_or_reorders_appends_is_refused() {
    let (_source, sealed) = source_log();
    let copy = SledStore::open_temporary().unwrap();
    let first_seq = sealed[1].events[0].seq;
    assert_eq!(refused_at(copy.import(sealed[1..].to_vec())), first_seq);
    assert_eq!(copy.head(), 0);
    copy.import(sealed[..1].to_vec()).unwrap();
    assert_eq!(refused_at(copy.import(sealed[..1].to_vec())), 1);
    assert_eq!(copy.head(), sealed[0].events.len() as u64);
}

#[test]
fn an_import_recording_a_command_id_twice_or_taking_a_held_order_is_refused() {
    let (_source, sealed) = source_log();
    let copy = SledStore::open_temporary().unwrap();
    copy.import(sealed[..2].to_vec()).unwrap();
    // A well-chained append that names an old command id.
    let again = resealed_after(&copy, "d-9", Some("c-0"), None);
    assert!(matches!(
        copy.import(vec![again]),
        Err(StoreError::Corrupt { .. })
    ));
    let taken = resealed_after(&copy, "d-9", None, Some("o-d-1"));
    assert!(matches!(
        copy.import(vec![taken]),
        Err(StoreError::Corrupt { .. })
    ));
    let fine = resealed_after(&copy, "d-9", Some("c-9"), Some("o-d-9"));
    copy.import(vec![fine]).unwrap();
    assert_eq!(copy.order_holder("o-d-9").unwrap().as_deref(), Some("d-9"));
}

/// One event for `dispute_id` sealed after `store`'s head, as a foreign log would have.
fn resealed_after(
    store: &SledStore,
    dispute_id: &str,
    command_id: Option<&str>,
    order: Option<&str>,
) -> SealedAppend {
    let last = read_all(store).pop().expect("a log with events");
    let mut event = last.clone();
    event.event_id = format!("e-{dispute_id}-{}", last.seq + 1);
    event.seq = last.seq + 1;
    event.dispute_id = dispute_id.into();
    event.version = 1;
    event.command_id = command_id.map(str::to_owned);
    event.prev_hash = last.hash.clone();
    event.hash = compute_hash(&event.prev_hash, &event);
    SealedAppend {
        command: command_id.map(|id| CommandRecord {
            command_id: id.into(),
            fingerprint: "other".into(),
            meta: serde_json::json!({}),
        }),
        reserve_order: order.map(str::to_owned),
        events: vec![event],
    }
}
