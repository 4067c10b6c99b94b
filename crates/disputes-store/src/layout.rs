//! The on-disk layout: sled trees, their keys and values (see `docs/store.md`). Nothing outside
//! this crate reads it: auditors read a data dir through [`crate::LogReader`].

// Public only with the `testing` feature (tests that damage a store); private otherwise.
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;
use crate::limits::EVENTS_PER_APPEND_MAX;

/// `seq_key(seq)` → what one append wrote: its one event as a stored envelope
/// ([`EVENT_SCHEMA_V1`] ‖ the envelope as canonical JSON, its `hash` included), or its events
/// `seq, seq + 1, …` as a [`PACK_SCHEMA_V1`] pack of stored envelopes. Format 1 stores wrote one
/// stored envelope per seq; they read the same.
pub const EVENTS_TREE: &str = "events";
/// dispute id → its [`StreamRecord`]: where each of its appends is, so its version too.
pub const DISPUTES_TREE: &str = "disputes";
/// Format 1 only (migrated at open, then dropped): `stream_key(dispute_id, version)` → `seq_key(seq)`.
pub const STREAMS_TREE: &str = "streams";
/// Format 1 only (migrated at open, then dropped): dispute id → its latest version, 8 bytes
/// big-endian.
pub const VERSIONS_TREE: &str = "versions";
/// command id → [`COMMAND_SCHEMA_V1`] ‖ JSON `{"fingerprint","meta","dispute_id","first_seq","count"}`.
pub const COMMANDS_TREE: &str = "commands";
/// order id → the dispute id that reserved it.
pub const ORDERS_TREE: &str = "orders";
/// [`FORMAT_KEY`], [`HEAD_KEY`], [`LAST_HASH_KEY`].
pub const META_TREE: &str = "meta";

/// `meta` key: [`FORMAT`], written when the store is created (or migrated).
pub const FORMAT_KEY: &[u8] = b"format";
/// The store's format marker.
pub const FORMAT: &[u8] = b"disputes-store/2";
/// The first format: one `events` key per event, a `streams` key per event and a `versions` key per
/// dispute. Opening such a store migrates its indexes to [`FORMAT`]; its events stay as they are.
pub const FORMAT_V1: &[u8] = b"disputes-store/1";
/// `meta` key: the last appended seq, 8 bytes big-endian (absent: empty store).
pub const HEAD_KEY: &[u8] = b"head";
/// `meta` key: the `hash` of the event at the head, 64 ASCII hex digits.
pub const LAST_HASH_KEY: &[u8] = b"last_hash";

/// First byte of a stored envelope: the form that follows. A new form gets a new byte and an upcaster.
pub const EVENT_SCHEMA_V1: u8 = 1;
/// First byte of a pack: the events of one append, each as a 4-byte big-endian length and then its
/// stored envelope (which starts with its own schema byte). Outside the range event schemas use.
pub const PACK_SCHEMA_V1: u8 = 0x80;
/// First byte of a stored command record.
pub const COMMAND_SCHEMA_V1: u8 = 1;

/// Key of the event at `seq`: big-endian, so sled's key order is seq order.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Prefix of one dispute's stream keys in a format 1 store (read by `LogReader`, rewritten by the
/// migration): its length (one byte) then its bytes, so that no dispute id's prefix is another's. `dispute_id` is at most [`crate::limits::ID_BYTES_MAX`] bytes.
pub fn stream_prefix(dispute_id: &str) -> Vec<u8> {
    let len = u8::try_from(dispute_id.len()).expect("ids are at most 255 bytes");
    let mut key = Vec::with_capacity(dispute_id.len() + 9);
    key.push(len);
    key.extend_from_slice(dispute_id.as_bytes());
    key
}

/// Key of a dispute's event at `version` (format 1: migration and its tests).
#[cfg(any(test, feature = "testing"))]
pub fn stream_key(dispute_id: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(dispute_id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// `(dispute_id, version)` of a format 1 stream key, if it is one.
pub fn parse_stream_key(key: &[u8]) -> Option<(String, u64)> {
    let (&len, rest) = key.split_first()?;
    let len = usize::from(len);
    if rest.len() != len + 8 {
        return None;
    }
    let dispute_id = std::str::from_utf8(&rest[..len]).ok()?.to_owned();
    Some((dispute_id, decode_u64(&rest[len..])?))
}

/// An 8-byte big-endian u64.
pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// The value an append stores under the seq of its first event: the stored envelope itself when it
/// is alone, a pack of them otherwise.
pub fn encode_events(stored: &[&[u8]]) -> Vec<u8> {
    assert!(!stored.is_empty(), "an append has events");
    if let [one] = stored {
        return one.to_vec();
    }
    let len = 1 + stored.iter().map(|s| 4 + s.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(len);
    bytes.push(PACK_SCHEMA_V1);
    for s in stored {
        let n = u32::try_from(s.len()).expect("an envelope is under 4 GiB");
        bytes.extend_from_slice(&n.to_be_bytes());
        bytes.extend_from_slice(s);
    }
    bytes
}

/// The stored envelopes of one `events` value, in seq order from its key; `Err`: why the value is
/// not one.
pub fn decode_events(bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let Some((&PACK_SCHEMA_V1, mut rest)) = bytes.split_first() else {
        return Ok(vec![bytes]); // one stored envelope (or not even that: its decoding says)
    };
    let mut stored = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or("a pack ends inside a length")?;
        let len = u32::from_be_bytes(*len) as usize;
        if len == 0 || len > tail.len() {
            return Err(format!("a pack's entry of {len} bytes does not fit it"));
        }
        let (one, tail) = tail.split_at(len);
        stored.push(one);
        rest = tail;
    }
    if !(2..=EVENTS_PER_APPEND_MAX).contains(&stored.len()) {
        return Err(format!("a pack of {} events", stored.len()));
    }
    Ok(stored)
}

/// Where a dispute's events are: one `(first_seq, count)` per append, in order. Its version is the
/// sum of the counts. Stored as 12 bytes per append (seq, then count as u32, big-endian).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRecord {
    pub appends: Vec<(u64, u32)>,
}

impl StreamRecord {
    const ENTRY_BYTES: usize = 12;

    pub fn version(&self) -> u64 {
        self.appends.iter().map(|&(_, n)| u64::from(n)).sum()
    }

    pub fn push(&mut self, first_seq: u64, count: usize) {
        let count = u32::try_from(count).expect("an append has at most 64 events");
        self.appends.push((first_seq, count));
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.appends.len() * Self::ENTRY_BYTES);
        for (seq, count) in &self.appends {
            bytes.extend_from_slice(&seq.to_be_bytes());
            bytes.extend_from_slice(&count.to_be_bytes());
        }
        bytes
    }

    /// `Err`: why `bytes` is not a record (appends out of seq order, an empty or oversized one).
    pub fn decode(bytes: &[u8]) -> Result<StreamRecord, String> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(Self::ENTRY_BYTES) {
            return Err(format!("a stream record of {} bytes", bytes.len()));
        }
        let mut appends = Vec::with_capacity(bytes.len() / Self::ENTRY_BYTES);
        let mut next = 1u64;
        for entry in bytes.chunks_exact(Self::ENTRY_BYTES) {
            let (seq, count) = entry.split_at(8);
            let seq = decode_u64(seq).expect("8 bytes");
            let count = u32::from_be_bytes(count.try_into().expect("4 bytes"));
            if seq < next || !(1..=EVENTS_PER_APPEND_MAX as u32).contains(&count) {
                return Err(format!(
                    "a stream record's append {seq}+{count} out of order"
                ));
            }
            next = seq + u64::from(count);
            appends.push((seq, count));
        }
        Ok(StreamRecord { appends })
    }

    /// The record of `dispute_id` stored as `bytes`: `Corrupt` when it is not one.
    pub(crate) fn read(dispute_id: &str, bytes: &[u8]) -> Result<StreamRecord, StoreError> {
        StreamRecord::decode(bytes)
            .map_err(|reason| StoreError::corrupt(0, format!("{dispute_id:?}: {reason}")))
    }

    /// The appends that are durable with the head at `head`: appends grow with seqs (the record
    /// is refused otherwise) and each is made durable whole.
    pub(crate) fn durable(&self, head: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.appends
            .iter()
            .copied()
            .take_while(move |&(first, count)| first + u64::from(count) - 1 <= head)
    }

    /// The version of the event at `seq`, if the record places one there.
    pub fn version_at(&self, seq: u64) -> Option<u64> {
        let mut before = 0u64;
        for &(first, count) in &self.appends {
            if (first..first + u64::from(count)).contains(&seq) {
                return Some(before + seq - first + 1);
            }
            before += u64::from(count);
        }
        None
    }
}

/// For tests that damage a store on purpose: the stored envelope of the event at `seq`, as it is in
/// the `events` tree `events`, wherever its append put it.
#[cfg(feature = "testing")]
pub fn stored_event(events: &sled::Tree, seq: u64) -> Option<Vec<u8>> {
    let (key, bytes) = events
        .range(..=seq_key(seq))
        .next_back()?
        .expect("sled reads");
    let first = decode_u64(&key)?;
    let stored = decode_events(&bytes).ok()?;
    stored
        .get(usize::try_from(seq - first).ok()?)
        .map(|s| s.to_vec())
}

/// For tests that damage a store on purpose: replaces the stored envelope of the event at `seq`
/// with `stored`, or removes it (`None`: the events after it in its append are then stored under the
/// seq after it, as if it had never been written).
#[cfg(feature = "testing")]
pub fn set_stored_event(events: &sled::Tree, seq: u64, stored: Option<Vec<u8>>) {
    let (key, bytes) = events
        .range(..=seq_key(seq))
        .next_back()
        .expect("an event at or before the seq")
        .expect("sled reads");
    let first = decode_u64(&key).expect("a seq key");
    let mut all: Vec<Vec<u8>> = decode_events(&bytes)
        .expect("a value of ours")
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    let at = usize::try_from(seq - first).expect("small");
    assert!(at < all.len(), "no event at {seq}");
    let put = |key: u64, group: &[Vec<u8>]| {
        if !group.is_empty() {
            let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
            events
                .insert(seq_key(key), encode_events(&refs))
                .expect("sled writes");
        }
    };
    events.remove(key).expect("sled writes");
    let after = all.split_off(at + 1);
    match stored {
        Some(bytes) => {
            all[at] = bytes;
            all.extend(after);
            put(first, &all);
        }
        None => {
            all.pop();
            put(first, &all);
            put(seq + 1, &after);
        }
    }
}

/// What the store keeps of an accepted command: enough to answer a repeat with the first outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandRow {
    pub fingerprint: String,
    pub meta: Value,
    pub dispute_id: String,
    /// The command's events are `first_seq .. first_seq + count` (one append is contiguous).
    pub first_seq: u64,
    pub count: u64,
}

impl CommandRow {
    /// The record of `command_id` this row holds, and where its events are.
    pub(crate) fn place(self, command_id: &str) -> crate::api::CommandPlace {
        crate::api::CommandPlace {
            first_seq: self.first_seq,
            count: self.count,
            record: crate::api::CommandRecord {
                command_id: command_id.to_owned(),
                fingerprint: self.fingerprint,
                meta: self.meta,
            },
        }
    }

    pub(crate) fn last_seq(&self) -> u64 {
        self.first_seq + self.count - 1
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        assert!(
            self.first_seq >= 1 && self.count >= 1,
            "a recorded command appended events"
        );
        let mut bytes = vec![COMMAND_SCHEMA_V1];
        serde_json::to_writer(&mut bytes, self).expect("a command row serializes");
        bytes
    }

    pub(crate) fn decode(command_id: &str, bytes: &[u8]) -> Result<CommandRow, StoreError> {
        let corrupt =
            |reason: String| StoreError::corrupt(0, format!("command {command_id:?}: {reason}"));
        let (&schema, json) = bytes
            .split_first()
            .ok_or_else(|| corrupt("empty record".into()))?;
        if schema != COMMAND_SCHEMA_V1 {
            return Err(corrupt(format!("unknown record schema version {schema}")));
        }
        let row: CommandRow = serde_json::from_slice(json).map_err(|e| corrupt(format!("{e}")))?;
        let count_ok = (1..=EVENTS_PER_APPEND_MAX as u64).contains(&row.count);
        if row.first_seq == 0 || !count_ok || row.first_seq.checked_add(row.count).is_none() {
            return Err(corrupt(format!(
                "bad seq range {}+{}",
                row.first_seq, row.count
            )));
        }
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_of_one_dispute_never_prefix_another() {
        assert!(!stream_key("d-10", 1).starts_with(&stream_prefix("d-1")));
        assert_eq!(
            parse_stream_key(&stream_key("d-1", 7)),
            Some(("d-1".to_owned(), 7))
        );
        assert!(stream_key("d", 2) > stream_key("d", 1));
    }

    #[test]
    fn an_append_of_one_event_is_stored_as_that_event_and_one_of_several_as_a_pack() {
        let (a, b) = (b"\x01{\"a\":1}".as_slice(), b"\x01{\"b\":2}".as_slice());
        assert_eq!(encode_events(&[a]), a);
        assert_eq!(decode_events(a).unwrap(), vec![a]);
        let pack = encode_events(&[a, b, a]);
        assert_eq!(pack[0], PACK_SCHEMA_V1);
        assert_eq!(decode_events(&pack).unwrap(), vec![a, b, a]);
    }

    #[test]
    fn a_pack_that_does_not_frame_its_events_exactly_is_refused() {
        let pack = encode_events(&[b"\x01x".as_slice(), b"\x01y".as_slice()]);
        assert!(decode_events(&pack[..pack.len() - 1]).is_err(), "cut short");
        assert!(decode_events(&pack[..3]).is_err(), "inside a length");
        assert!(
            decode_events(&[PACK_SCHEMA_V1, 0, 0, 0, 0]).is_err(),
            "empty entry"
        );
        let one = [&[PACK_SCHEMA_V1][..], &2u32.to_be_bytes(), b"\x01x"].concat();
        assert!(decode_events(&one).is_err(), "a pack of one");
        let too_many = vec![b"\x01x".as_slice(); EVENTS_PER_APPEND_MAX + 1];
        assert!(decode_events(&encode_events(&too_many)).is_err());
    }

    #[test]
    fn a_stream_record_places_each_event_at_its_version() {
        let mut record = StreamRecord::default();
        record.push(3, 2);
        record.push(9, 1);
        record.push(10, 3);
        assert_eq!(record.version(), 6);
        let back = StreamRecord::decode(&record.encode()).unwrap();
        assert_eq!(back, record);
        let versions: Vec<_> = [3, 4, 5, 9, 10, 12, 13].map(|s| back.version_at(s)).into();
        assert_eq!(
            versions,
            [Some(1), Some(2), None, Some(3), Some(4), Some(6), None]
        );
    }

    #[test]
    fn a_stream_record_out_of_order_or_of_the_wrong_size_is_refused() {
        let record = |appends: &[(u64, u32)]| {
            StreamRecord {
                appends: appends.to_vec(),
            }
            .encode()
        };
        assert!(StreamRecord::decode(&[]).is_err());
        assert!(StreamRecord::decode(&record(&[(1, 1)])[..11]).is_err());
        assert!(
            StreamRecord::decode(&record(&[(5, 2), (6, 1)])).is_err(),
            "overlap"
        );
        assert!(
            StreamRecord::decode(&record(&[(5, 1), (4, 1)])).is_err(),
            "backwards"
        );
        assert!(StreamRecord::decode(&record(&[(0, 1)])).is_err(), "seq 0");
        assert!(
            StreamRecord::decode(&record(&[(1, 0)])).is_err(),
            "empty append"
        );
        assert!(
            StreamRecord::decode(&record(&[(1, 65)])).is_err(),
            "over 64"
        );
    }

    #[test]
    fn command_rows_round_trip() {
        let row = CommandRow {
            fingerprint: "f".into(),
            meta: serde_json::json!({"status": "x"}),
            dispute_id: "d".into(),
            first_seq: 3,
            count: 2,
        };
        assert_eq!(CommandRow::decode("c", &row.encode()).unwrap(), row);
        assert_eq!(row.last_seq(), 4);
        assert!(CommandRow::decode("c", &[9, b'{', b'}']).is_err());
    }
}
