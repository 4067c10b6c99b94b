//! The real `disputes` binary as a child process, on its own temporary data dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::workspace_root;

const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `disputes` binary cargo built for these tests (`DISPUTES_BIN` runs them against another,
/// e.g. an older build, to see a new test fail first).
pub(crate) fn disputes_bin() -> PathBuf {
    match std::env::var_os("DISPUTES_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_disputes")),
    }
}

/// The `[store]` keys of the backend the suite runs against: `DISPUTES_TEST_BACKEND=jetstream`
/// runs every service of the suite on the JetStream log (one node, replicas 1); unset or `sled`,
/// on the embedded log.
pub(crate) fn backend_keys() -> &'static str {
    if is_jetstream() {
        JETSTREAM_KEYS
    } else {
        ""
    }
}

const JETSTREAM_KEYS: &str = "backend = \"jetstream\"\nreplicas = 1\n";

/// True when the suite runs against the JetStream log.
pub(crate) fn is_jetstream() -> bool {
    match std::env::var("DISPUTES_TEST_BACKEND").as_deref() {
        Ok("jetstream") => true,
        Ok("sled") | Err(_) => false,
        Ok(other) => panic!("DISPUTES_TEST_BACKEND={other}: sled or jetstream"),
    }
}

/// True when the suite runs on the JetStream log and a test checks a mechanism of the sled log
/// alone (its publisher, its writer lease, its files): the test says so and stops there. Each
/// such test names the JetStream mode's own test of the same guarantee.
pub(crate) fn sled_only(what: &str) -> bool {
    let skip = is_jetstream();
    if skip {
        eprintln!("sled log only ({what}): not run with DISPUTES_TEST_BACKEND=jetstream");
    }
    skip
}

/// The data dir's log as `disputes audit` reads it: `events`, or the JetStream log's copy.
pub(crate) fn local_log(data_dir: &Path) -> PathBuf {
    let sled = data_dir.join("events");
    if sled.exists() {
        sled
    } else {
        data_dir.join("events-copy")
    }
}

/// A running `disputes serve`, killed on drop.
pub(crate) struct Service {
    child: Option<Child>,
    config_path: PathBuf,
    log_path: PathBuf,
    data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Service {
    /// Starts on a new temporary data dir. `extra` is appended to the config (e.g. a `[policy]` table).
    pub(crate) fn start(nats_url: &str, extra: &str) -> Service {
        Service::start_custom(nats_url, "", backend_keys(), extra)
    }

    /// Like `start`, with `nats_keys` (TLS files, credentials) added to the `[nats]` table.
    pub(crate) fn start_with_nats(nats_url: &str, nats_keys: &str, extra: &str) -> Service {
        Service::start_custom(nats_url, nats_keys, backend_keys(), extra)
    }

    /// Starts on a given data dir (for a second instance or a restart elsewhere).
    pub(crate) fn start_on(dir: &Path, nats_url: &str, extra: &str) -> Service {
        Service::start_custom_on(dir, nats_url, "", backend_keys(), extra)
    }

    /// Starts on the JetStream log (one node, replicas 1) whatever the suite runs on.
    pub(crate) fn start_jetstream(nats_url: &str, extra: &str) -> Service {
        Service::start_custom(nats_url, "", JETSTREAM_KEYS, extra)
    }

    /// Starts on a new temporary data dir with `nats_keys` added to `[nats]` (credentials) and
    /// `store_keys` to `[store]` (the backend), whatever the suite runs on.
    pub(crate) fn start_custom(
        nats_url: &str,
        nats_keys: &str,
        store_keys: &str,
        extra: &str,
    ) -> Service {
        let dir = tempfile::tempdir().expect("service temp dir");
        let mut service =
            Service::start_custom_on(dir.path(), nats_url, nats_keys, store_keys, extra);
        service._dir = Some(dir);
        service
    }

    /// Like `start_custom`, on a given dir (its data dir is `<dir>/data`).
    pub(crate) fn start_custom_on(
        dir: &Path,
        nats_url: &str,
        nats_keys: &str,
        store_keys: &str,
        extra: &str,
    ) -> Service {
        let mut service = Service::configure(dir, nats_url, nats_keys, store_keys, extra);
        service.spawn();
        service
    }

    fn configure(
        dir: &Path,
        nats_url: &str,
        nats_keys: &str,
        store_keys: &str,
        extra: &str,
    ) -> Service {
        let data_dir = dir.join("data");
        // No metrics endpoint unless `extra` asks for one (tests run side by side).
        let http = if extra.contains("[http]") {
            ""
        } else {
            "[http]\nlisten = \"\"\n\n"
        };
        let config = format!(
            "[nats]\nurl = {url:?}\n{nats_keys}\n\n[store]\npath = {path:?}\n{store_keys}\n{http}{extra}\n",
            url = nats_url,
            path = data_dir.display().to_string(),
        );
        let config_path = dir.join("disputes.toml");
        std::fs::write(&config_path, config).expect("write service config");
        Service {
            child: None,
            config_path,
            log_path: dir.join("disputes.log"),
            data_dir,
            _dir: None,
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub(crate) fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Spawns the process (does not wait for readiness: see `wait_ready`).
    pub(crate) fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open service log");
        let child = Command::new(disputes_bin())
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("DISPUTES_NATS_URL")
            .env_remove("DISPUTES_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn disputes serve");
        disputes_testkit::reaper::track(child.id());
        self.child = Some(child);
    }

    /// Waits until the service answers a query on NATS.
    pub(crate) async fn wait_ready(&mut self, client: &super::Client) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                panic!("disputes serve exited with {status}; log:\n{}", self.log());
            }
            let answer = tokio::time::timeout(
                Duration::from_millis(500),
                client
                    .nats()
                    .request(format!("{}.query.stats", client.prefix()), "{}".into()),
            )
            .await;
            if let Ok(Ok(message)) = answer {
                let reply: Value = serde_json::from_slice(&message.payload).unwrap_or(Value::Null);
                if reply["ok"] == json!(true) {
                    return;
                }
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "disputes serve not ready within {READY_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            disputes_testkit::reaper::forget(child.id());
        }
    }

    /// SIGTERM, then waits for the exit (killing after `timeout`).
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                disputes_testkit::reaper::forget(child.id());
                return Some(status);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                disputes_testkit::reaper::forget(child.id());
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT…) to the running process.
    pub(crate) fn signal(&self, signal: i32) {
        let child = self.child.as_ref().expect("the service runs");
        unsafe {
            libc::kill(child.id() as i32, signal);
        }
    }

    /// Waits for the process to exit by itself (e.g. a refused start).
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
