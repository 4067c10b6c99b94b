//! Folds the committed event log into the read models: a catch-up at start-up (and for
//! `disputes audit rebuild`), then live, batch by batch, as the feed's head moves.

use std::sync::mpsc::{self, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use disputes_store::{Envelope, StoreError};
use tokio::sync::watch;

use crate::feed::EventFeed;
use crate::projections::{ProjectionError, Projections, BATCH_EVENTS_MAX};

/// Why folding stopped.
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    /// The feed could not be read.
    #[error("read the event log: {0}")]
    Feed(#[from] StoreError),
    /// The read models could not be written.
    #[error(transparent)]
    Projections(#[from] ProjectionError),
    /// The folding thread or task panicked.
    #[error("the projector panicked: {0}")]
    Panicked(String),
}

/// Applies one batch after the checkpoint; the number of events applied.
fn step(feed: &dyn EventFeed, projections: &Projections) -> Result<usize, FoldError> {
    let events = feed.read_from(projections.checkpoint() + 1, BATCH_EVENTS_MAX)?;
    projections.apply(&events)?;
    Ok(events.len())
}

/// Applies everything the feed holds now (before queries are answered).
pub async fn catch_up<F: EventFeed + 'static>(
    feed: &Arc<F>,
    projections: &Arc<Projections>,
) -> Result<u64, FoldError> {
    let (feed, projections) = (feed.clone(), projections.clone());
    tokio::task::spawn_blocking(move || catch_up_blocking(&*feed, &projections, |_| {}))
        .await
        .map_err(|e| FoldError::Panicked(e.to_string()))?
}

/// Applies everything the store holds now, in batches, on two threads: a reader reads and decodes
/// the next batch (and frees the last one) while this thread folds the current one into the read
/// models, key by key under [`Projections::unseal`]'s marker. Nothing else may write these read
/// models meanwhile (the service runs it before its live projector starts). Calls `on_batch` with
/// the checkpoint after each batch; returns the events applied.
pub fn catch_up_blocking<F: EventFeed + ?Sized>(
    feed: &F,
    projections: &Projections,
    mut on_batch: impl FnMut(u64),
) -> Result<u64, FoldError> {
    // One batch waits while one is folded and one is read, and at most two folded ones wait to be
    // freed by the reader: at most five in memory.
    let (batches_tx, batches_rx) = mpsc::sync_channel::<Result<Vec<Envelope>, StoreError>>(1);
    let (spent_tx, spent_rx) = mpsc::sync_channel::<Vec<Envelope>>(2);
    let from = projections.checkpoint() + 1;
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut next = from;
            loop {
                while let Ok(spent) = spent_rx.try_recv() {
                    drop(spent);
                }
                let batch = feed.read_from(next, BATCH_EVENTS_MAX);
                let last = batch.as_ref().ok().and_then(|b| b.last().map(|e| e.seq));
                if batches_tx.send(batch).is_err() {
                    return; // the folding thread stopped
                }
                match last {
                    Some(last) => next = last + 1,
                    None => return, // caught up, or failed
                }
            }
        });
        let unsealed = projections.unseal()?;
        let mut applied = 0u64;
        for batch in batches_rx {
            let batch = batch?;
            if batch.is_empty() {
                break;
            }
            unsealed.apply(&batch)?;
            applied += batch.len() as u64;
            on_batch(projections.checkpoint());
            if let Err(TrySendError::Full(batch)) = spent_tx.try_send(batch) {
                drop(batch);
            }
        }
        unsealed.seal()?;
        Ok(applied)
    })
}

/// How long the live projector gathers events after applying a batch of at least
/// [`LINGER_BATCH_MIN`] events while more are already waiting, unless a reader waits for them (a query's `min_seq`, see [`Projections::want`]):
/// under load, each batch of the read models then holds the appends of several group commits,
/// and its fixed cost (one atomic sled batch, taken under a lock that sled holds for the whole
/// process) is paid less often. Idle, an append is applied as soon as it is committed.
pub const LINGER: Duration = Duration::from_millis(20);

/// The smallest batch after which the live projector lingers: more events than any one command
/// appends, so that only concurrent appends (load) make it linger.
pub const LINGER_BATCH_MIN: usize = 16;

/// Folds live until `stop` turns true: each time the feed's head moves, every batch after the
/// checkpoint, in one atomic write each; after a batch of at least [`LINGER_BATCH_MIN`] events
/// (not full) while the head has moved on, it lingers for [`LINGER`], or until a reader waits for what is not yet applied. A failure is handed to
/// `on_error` and retried after half a second (the caller decides what a storage failure means).
pub async fn run<F: EventFeed + 'static>(
    feed: Arc<F>,
    projections: Arc<Projections>,
    on_error: impl Fn(&FoldError) + Send,
    stop: watch::Receiver<bool>,
) {
    run_lingering(feed, projections, LINGER, on_error, stop).await;
}

/// [`run`], lingering for `linger`.
async fn run_lingering<F: EventFeed + 'static>(
    feed: Arc<F>,
    projections: Arc<Projections>,
    linger: Duration,
    on_error: impl Fn(&FoldError) + Send,
    mut stop: watch::Receiver<bool>,
) {
    let mut head = feed.subscribe();
    let mut wanted = projections.wanted();
    loop {
        let (f, p) = (feed.clone(), projections.clone());
        let stepped = tokio::task::spawn_blocking(move || step(&*f, &p))
            .await
            .unwrap_or_else(|e| Err(FoldError::Panicked(e.to_string())));
        match stepped {
            Ok(BATCH_EVENTS_MAX) => continue,
            Ok(0) => {}
            // Under load (a batch of many events, and more already waiting), gather before the
            // next one. A client that sends one command at a time never makes such a batch, so
            // what it appends is applied as soon as it comes.
            Ok(n) if n >= LINGER_BATCH_MIN && feed.head() > projections.checkpoint() => {
                let checkpoint = projections.checkpoint();
                tokio::select! {
                    _ = tokio::time::sleep(linger) => {}
                    _ = wanted.wait_for(|seq| *seq > checkpoint) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
                continue;
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "projection failed; retrying");
                on_error(&error);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use disputes_domain::Policy;
    use disputes_store::SledStore;

    use super::*;

    /// A feed whose `read_from` fails from the `fail_at`-th call on; the rest is `inner`'s.
    struct FailingReads {
        inner: SledStore,
        reads: std::sync::atomic::AtomicUsize,
        fail_at: usize,
    }

    impl EventFeed for FailingReads {
        fn read_from(&self, from_seq: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
            let n = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n >= self.fail_at {
                return Err(StoreError::Unavailable("disk gone".into()));
            }
            disputes_store::EventStore::read_from(&self.inner, from_seq, limit)
        }
        fn head(&self) -> u64 {
            disputes_store::EventStore::head(&self.inner)
        }
        fn subscribe(&self) -> watch::Receiver<u64> {
            disputes_store::EventStore::subscribe(&self.inner)
        }
    }

    fn contents(projections: &Projections) -> Vec<(Vec<u8>, Vec<u8>)> {
        projections.rows().collect()
    }

    #[test]
    fn catching_up_on_two_threads_equals_applying_batch_by_batch() {
        let dir = tempfile::tempdir().unwrap();
        // 500 lifecycles of 9 events: more than one batch.
        let store = disputes_testkit::workload::fill(&dir.path().join("events"), 500, 4);
        let head = store.head();
        assert!(head > BATCH_EVENTS_MAX as u64, "{head} events");
        let policy = Policy::default();
        let one_by_one = Projections::open(&dir.path().join("steps"), policy).unwrap();
        while step(&*store, &one_by_one).unwrap() > 0 {}
        let pipelined = Projections::open(&dir.path().join("pipelined"), policy).unwrap();
        let mut seen = Vec::new();
        let applied = catch_up_blocking(&*store, &pipelined, |done| seen.push(done)).unwrap();
        assert_eq!(applied, head);
        assert_eq!(pipelined.checkpoint(), head);
        assert_eq!(seen, vec![BATCH_EVENTS_MAX as u64, head]);
        assert_eq!(contents(&pipelined), contents(&one_by_one));
        // Caught up: nothing more to apply.
        assert_eq!(catch_up_blocking(&*store, &pipelined, |_| {}).unwrap(), 0);
    }

    #[test]
    fn read_models_whose_catch_up_did_not_finish_are_rebuilt_when_next_opened() {
        let dir = tempfile::tempdir().unwrap();
        let store = disputes_testkit::workload::fill(&dir.path().join("events"), 20, 2);
        let events = store.read_from(1, 1_000).unwrap();
        let policy = Policy::default();
        let path = dir.path().join("projections");
        {
            let projections = Projections::open(&path, policy).unwrap();
            let unsealed = projections.unseal().unwrap();
            unsealed.apply(&events[..50]).unwrap();
            assert_eq!(projections.checkpoint(), 50);
            // Stopped here: no `seal`, as after a crash or a failed batch.
        }
        let reopened = Projections::open(&path, policy).unwrap();
        assert_eq!(reopened.checkpoint(), 0, "torn read models start over");
        let clean = Projections::open(&dir.path().join("clean"), policy).unwrap();
        assert_eq!(
            contents(&reopened),
            contents(&clean),
            "as fresh as new read models"
        );
        catch_up_blocking(&*store, &reopened, |_| {}).unwrap();
        clean.apply(&events).unwrap();
        assert_eq!(contents(&reopened), contents(&clean));
        drop(reopened);
        let sealed = Projections::open(&path, policy).unwrap();
        assert_eq!(
            sealed.checkpoint(),
            store.head(),
            "a sealed catch-up is kept"
        );
    }

    #[test]
    fn a_catch_up_whose_read_fails_reports_it_and_is_rebuilt_when_next_opened() {
        let dir = tempfile::tempdir().unwrap();
        let events_dir = dir.path().join("events");
        let head = {
            let store = disputes_testkit::workload::fill(&events_dir, 500, 4);
            store.head()
        };
        let store = FailingReads {
            inner: SledStore::open(&events_dir, Default::default()).unwrap(),
            reads: Default::default(),
            fail_at: 2,
        };
        let policy = Policy::default();
        let path = dir.path().join("projections");
        {
            let projections = Projections::open(&path, policy).unwrap();
            let error = catch_up_blocking(&store, &projections, |_| {}).unwrap_err();
            assert!(format!("{error:#}").contains("disk gone"), "{error:#}");
            assert_eq!(projections.checkpoint(), BATCH_EVENTS_MAX as u64);
        }
        let reopened = Projections::open(&path, policy).unwrap();
        assert_eq!(
            reopened.checkpoint(),
            0,
            "an unfinished catch-up starts over"
        );
        assert_eq!(
            catch_up_blocking(&store.inner, &reopened, |_| {}).unwrap(),
            head
        );
    }

    /// A feed that hands over at most [`LINGER_BATCH_MIN`] events per read: with more than that
    /// appended, the head is ahead of what was just applied, as under load.
    struct Capped(Arc<SledStore>);

    impl EventFeed for Capped {
        fn read_from(&self, from_seq: u64, _limit: usize) -> Result<Vec<Envelope>, StoreError> {
            disputes_store::EventStore::read_from(&*self.0, from_seq, LINGER_BATCH_MIN)
        }
        fn head(&self) -> u64 {
            disputes_store::EventStore::head(&*self.0)
        }
        fn subscribe(&self) -> watch::Receiver<u64> {
            disputes_store::EventStore::subscribe(&*self.0)
        }
    }

    /// Opens dispute `n` of the bench's lifecycle (two events) and walks it one command further
    /// per call.
    fn commands(store: &Arc<SledStore>, n: usize) -> impl Fn(usize) + '_ {
        use disputes_command::{CommandHandler, Reply};
        use disputes_domain::Limits;
        use disputes_testkit::workload::{lifecycle, now};
        let handler = CommandHandler::new(store.clone(), Policy::default(), Limits::default());
        let steps = lifecycle("linger", n);
        move |step| {
            let (ty, body) = &steps[step];
            let reply = handler.handle(ty, body, now());
            assert!(matches!(reply, Reply::Accepted(_)), "{reply:?}");
        }
    }

    async fn reach(applied: &mut watch::Receiver<u64>, seq: u64, why: &str) {
        tokio::time::timeout(Duration::from_secs(10), applied.wait_for(|a| *a >= seq))
            .await
            .expect(why)
            .unwrap();
    }

    /// Under load (more appended while a batch is applied) the live projector gathers events for
    /// a while, but never while a reader waits for one of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_live_projector_gathers_events_under_load_unless_a_reader_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open_temporary().unwrap());
        let projections = Arc::new(Projections::open(dir.path(), Policy::default()).unwrap());
        // Disputes opened concurrently: more events than one batch of the capped feed.
        for n in 0..(LINGER_BATCH_MIN / 2 + 2) {
            let send = commands(&store, n);
            send(0);
        }
        let opened = store.head();
        assert!(opened > LINGER_BATCH_MIN as u64, "{opened} events");
        let (stop_tx, stop) = watch::channel(false);
        let feed = Arc::new(Capped(store.clone()));
        let live = tokio::spawn(run_lingering(
            feed,
            projections.clone(),
            Duration::from_secs(3600),
            |_| {},
            stop,
        ));
        let mut applied = projections.subscribe();
        let first = LINGER_BATCH_MIN as u64;
        reach(&mut applied, first, "the first batch is applied at once").await;
        // The head is past it: the projector gathers instead of applying the rest...
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(projections.checkpoint(), first, "gathering, not applying");
        // ...until a reader asks for it.
        projections.want(opened);
        reach(
            &mut applied,
            opened,
            "a reader that waits is served at once",
        )
        .await;
        stop_tx.send_replace(true);
        live.await.unwrap();
    }

    /// One command at a time, every append is applied as soon as it is committed, linger or not,
    /// however soon the next command follows: a client that reads without `min_seq` a moment
    /// after its command sees it, as before the linger.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_live_projector_applies_each_append_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open_temporary().unwrap());
        let projections = Arc::new(Projections::open(dir.path(), Policy::default()).unwrap());
        let send = commands(&store, 0);
        let (stop_tx, stop) = watch::channel(false);
        let live = tokio::spawn(run_lingering(
            store.clone(),
            projections.clone(),
            Duration::from_secs(3600),
            |_| {},
            stop,
        ));
        let mut applied = projections.subscribe();
        for step in 0..5 {
            send(step);
            let head = store.head();
            reach(&mut applied, head, "applied without lingering").await;
        }
        stop_tx.send_replace(true);
        live.await.unwrap();
    }
}
