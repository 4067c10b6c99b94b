//! Opening a sled database: the one place that knows sled releases its lock late.

use std::time::{Duration, Instant};

/// How long an open waits for a lock the previous holder, in this process, is still releasing.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(2);

/// Opens `config`'s database. sled 0.34 releases its file lock a moment after the last handle
/// of a database is dropped (its background threads finish first), so opening a directory
/// right after closing it in the same process can find the lock still held: wait for it, a
/// little. A lock held by another process stays an error.
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let started = Instant::now();
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_RELEASE_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return opened,
        }
    }
}
