//! Many appenders: seq gap-free, the chain intact, versions consecutive, copies of a command once.

use std::sync::Barrier;

use disputes_store::{AppendOutcome, EventStore, SledStore};

use crate::support::{appended, assert_log_intact, open, request};

const THREADS: usize = 64;
const APPENDS_PER_THREAD: u64 = 40;

#[test]
fn sixty_four_appenders_get_gap_free_seqs_and_an_intact_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (store, barrier): (&SledStore, _) = (&store, &barrier);
            scope.spawn(move || {
                barrier.wait();
                for n in 0..APPENDS_PER_THREAD {
                    // Each thread owns a few disputes; 1 to 3 events per append.
                    let dispute = format!("t{thread}-d{}", n % 3);
                    let version = store.stream_version(&dispute).unwrap();
                    let command = format!("t{thread}-c{n}");
                    let count = 1 + (n % 3) as usize;
                    let envelopes =
                        appended(store.append(request(&dispute, version, Some(&command), count)));
                    assert!(
                        store.head() >= envelopes.last().unwrap().seq,
                        "acknowledged means durable"
                    );
                }
            });
        }
    });
    let events_per_thread: u64 = (0..APPENDS_PER_THREAD).map(|n| 1 + n % 3).sum();
    assert_eq!(store.head(), THREADS as u64 * events_per_thread);
    let all = assert_log_intact(&store);
    for thread in 0..THREADS {
        for d in 0..3 {
            let stream = store.read_stream(&format!("t{thread}-d{d}")).unwrap();
            let versions: Vec<u64> = stream.iter().map(|e| e.version).collect();
            assert_eq!(versions, (1..=stream.len() as u64).collect::<Vec<_>>());
            assert!(stream.windows(2).all(|w| w[0].seq < w[1].seq));
        }
    }
    let stats = store.stats();
    assert_eq!(stats.appends, THREADS as u64 * APPENDS_PER_THREAD);
    assert!(
        stats.group_commits < stats.appends,
        "appends shared flushes: {stats:?}"
    );
    assert_eq!(all.len() as u64, stats.head);
}

#[test]
fn concurrent_copies_of_one_command_append_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for round in 0..20 {
        let barrier = Barrier::new(16);
        let outcomes: Vec<AppendOutcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let (store, barrier): (&SledStore, _) = (&store, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let command = format!("c-{round}");
                        store
                            .append(request(&format!("d-{round}"), 0, Some(&command), 2))
                            .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let firsts: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                AppendOutcome::Appended(envelopes) => Some(envelopes.clone()),
                AppendOutcome::Duplicate(_) => None,
            })
            .collect();
        assert_eq!(firsts.len(), 1, "round {round}: exactly one copy appends");
        for outcome in &outcomes {
            if let AppendOutcome::Duplicate(first) = outcome {
                assert_eq!(first.events, firsts[0]);
            }
        }
    }
    assert_eq!(store.head(), 40);
    assert_log_intact(&store);
}
