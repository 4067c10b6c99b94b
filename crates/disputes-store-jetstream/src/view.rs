//! [`LogView`]: the log as one instance sees it: its copy, and what its sequencer committed that
//! the copy does not hold yet. The store's reads and the sequencer's judging both go through it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use disputes_store::{CommandOutcome, CommandPlace, Envelope, EventStore, SledStore, StoreError};

use crate::sequencer::Sealed;

#[derive(Clone)]
pub(crate) struct LogView {
    pub replica: SledStore,
    pub committed: Arc<Mutex<Committed>>,
}

impl LogView {
    pub(crate) fn new(replica: SledStore) -> LogView {
        LogView {
            replica,
            committed: Arc::default(),
        }
    }

    pub(crate) fn committed(&self) -> MutexGuard<'_, Committed> {
        self.committed.lock().expect("committed lock")
    }

    pub(crate) fn command(&self, command_id: &str) -> Result<Option<CommandOutcome>, StoreError> {
        if let Some(outcome) = self.committed().command(command_id) {
            return Ok(Some(outcome));
        }
        self.replica.command(command_id)
    }

    pub(crate) fn command_record(
        &self,
        command_id: &str,
    ) -> Result<Option<CommandPlace>, StoreError> {
        if let Some(outcome) = self.committed().command(command_id) {
            return Ok(Some(CommandPlace::of(command_id, outcome)));
        }
        self.replica.command_record(command_id)
    }

    pub(crate) fn stream_version(&self, dispute_id: &str) -> Result<u64, StoreError> {
        match self.committed().version(dispute_id) {
            Some(version) => Ok(version),
            None => self.replica.stream_version(dispute_id),
        }
    }

    pub(crate) fn order_holder(&self, order_id: &str) -> Result<Option<String>, StoreError> {
        match self.committed().order_holder(order_id) {
            Some(holder) => Ok(Some(holder)),
            None => self.replica.order_holder(order_id),
        }
    }

    /// The copy's events, and after them what was committed that the copy does not hold yet.
    pub(crate) fn read_stream(&self, dispute_id: &str) -> Result<Vec<Envelope>, StoreError> {
        let pending = self.committed().events(dispute_id);
        let mut events = self.replica.read_stream(dispute_id)?;
        let held = events.last().map_or(0, |e| e.version);
        events.extend(pending.into_iter().filter(|e| e.version > held));
        Ok(events)
    }

    /// The last durable seq: committed by the stream, held by the copy or about to be.
    pub(crate) fn head(&self) -> u64 {
        self.replica.head().max(self.committed().head())
    }
}

/// Appends the stream committed that the copy may not hold yet, each with the seq of its last
/// event: judged against as the copy would be, dropped once the copy holds them.
#[derive(Default)]
pub(crate) struct Committed {
    orders: HashMap<String, (String, u64)>,
    commands: HashMap<String, (CommandOutcome, u64)>,
    events: HashMap<String, Vec<Envelope>>,
    /// The last seq committed by this sequencer.
    head: u64,
}

impl Committed {
    pub(crate) fn record(&mut self, sealed: &Sealed) {
        let req = &sealed.request.req;
        let last = sealed.envelopes.last().expect("a sealed append has events");
        self.head = self.head.max(last.seq);
        self.events
            .entry(req.dispute_id.clone())
            .or_default()
            .extend(sealed.envelopes.iter().cloned());
        if let Some(order_id) = &req.reserve_order {
            self.orders
                .insert(order_id.clone(), (req.dispute_id.clone(), last.seq));
        }
        if let Some(command) = &req.command {
            let outcome = CommandOutcome {
                fingerprint: command.fingerprint.clone(),
                meta: command.meta.clone(),
                dispute_id: req.dispute_id.clone(),
                events: sealed.envelopes.clone(),
            };
            self.commands
                .insert(command.command_id.clone(), (outcome, last.seq));
        }
    }

    /// Drops what the copy holds (everything up to `copy_head`).
    pub(crate) fn prune(&mut self, copy_head: u64) {
        self.orders.retain(|_, (_, seq)| *seq > copy_head);
        self.commands.retain(|_, (_, seq)| *seq > copy_head);
        self.events.retain(|_, events| {
            events.retain(|e| e.seq > copy_head);
            !events.is_empty()
        });
    }

    pub(crate) fn clear(&mut self) {
        let head = self.head;
        *self = Committed::default();
        self.head = head;
    }

    /// The last seq this sequencer had committed (0: none).
    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    pub(crate) fn version(&self, dispute_id: &str) -> Option<u64> {
        self.events.get(dispute_id)?.last().map(|e| e.version)
    }

    pub(crate) fn order_holder(&self, order_id: &str) -> Option<String> {
        self.orders
            .get(order_id)
            .map(|(dispute, _)| dispute.clone())
    }

    pub(crate) fn command(&self, command_id: &str) -> Option<CommandOutcome> {
        self.commands
            .get(command_id)
            .map(|(outcome, _)| outcome.clone())
    }

    /// A dispute's committed events the copy may not hold yet, in version order.
    pub(crate) fn events(&self, dispute_id: &str) -> Vec<Envelope> {
        self.events.get(dispute_id).cloned().unwrap_or_default()
    }
}
