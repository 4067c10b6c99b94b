//! A real `nats-server` per test: its own free port, its own temporary store dir.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_root;

/// How long a server may take to accept connections after start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The pinned `nats-server` binary: `$DISPUTES_NATS_SERVER`, else `.tools/bin/nats-server`
/// (installed by `tools/install.sh`). Panics with the fix when it is missing: tests never skip silently.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(path) = std::env::var("DISPUTES_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = workspace_root().join(".tools/bin/nats-server");
    assert!(
        path.exists(),
        "nats-server not found at {}: run tools/install.sh (or `./x test`), or set DISPUTES_NATS_SERVER",
        path.display()
    );
    path
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A running `nats-server` with JetStream, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    config_path: PathBuf,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// JetStream on a free port, fsync on every write (as the shipped configs do).
    pub fn start() -> Self {
        Self::start_with_config(
            "listen: \"127.0.0.1:{{port}}\"\n\
             jetstream { store_dir: \"{{store_dir}}\", sync_interval: always }\n",
        )
    }

    /// Starts a server from a config template; `{{port}}`, `{{store_dir}}` and `{{dir}}`
    /// (the server's temporary dir, for certificates and the like) are filled in.
    pub fn start_with_config(template: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for nats-server");
        Self::start_in(dir, template, |_| {})
    }

    /// Like `start_with_config`, but `prepare` may write files (certificates) into the dir first.
    pub fn start_in(dir: tempfile::TempDir, template: &str, prepare: impl FnOnce(&Path)) -> Self {
        prepare(dir.path());
        let port = free_port();
        let store_dir = dir.path().join("js");
        let config = template
            .replace("{{port}}", &port.to_string())
            .replace("{{store_dir}}", &store_dir.display().to_string())
            .replace("{{dir}}", &dir.path().display().to_string());
        let config_path = dir.path().join("nats.conf");
        std::fs::write(&config_path, config).expect("write nats config");
        let log_path = dir.path().join("nats.log");
        let mut server = NatsServer {
            child: None,
            port,
            config_path,
            log_path,
            _dir: dir,
        };
        server.spawn();
        server
    }

    /// The server process's id while it runs (for benchmarks reading its CPU time from /proc).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's temporary dir (certificates written by `start_in` live here).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Stops the server abruptly (SIGKILL); its store dir stays for `restart`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            crate::reaper::forget(child.id());
        }
    }

    /// Starts the server again on the same port and store dir.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open nats log");
        let mut command = Command::new(nats_server_bin());
        command
            .arg("-c")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        // A benchmark declines transparent huge pages for itself (`disputes::huge_pages`), and
        // children inherit that: the server, a baseline of its own, runs as the host sets it.
        // SAFETY: prctl(2) is async-signal-safe and only clears a flag of the child.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", nats_server_bin().display()));
        crate::reaper::track(child.id());
        self.child = Some(child);
        let started = Instant::now();
        // Ready when this server says so in its own log (the part this start wrote): a connection
        // alone may reach another test's server that took the same free port first, and this one
        // then exits, leaving a test talking to a server that goes away with the other test.
        let said_before = self.log().len();
        let ready = |server: &NatsServer| {
            server
                .log()
                .get(said_before..)
                .is_some_and(|l| l.contains("Server is ready"))
                && TcpStream::connect(("127.0.0.1", server.port)).is_ok()
        };
        while !ready(self) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server exited with {status}; log:\n{}", self.log());
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "nats-server did not listen on {} within {START_TIMEOUT:?}; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `nodes` servers in one JetStream cluster on loopback (routes on free ports, every write
/// fsynced, `max_payload` 256 KiB as shipped). A new replicated stream may take a few seconds to
/// find its leader: create it with a retry.
pub fn start_cluster(nodes: usize) -> Vec<NatsServer> {
    let routes: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
    let list = routes
        .iter()
        .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    (0..nodes)
        .map(|i| {
            NatsServer::start_with_config(&format!(
                "listen: \"127.0.0.1:{{{{port}}}}\"\nserver_name: n{i}\nmax_payload: 262144\n\
                 jetstream {{ store_dir: \"{{{{store_dir}}}}\", sync_interval: always }}\n\
                 cluster {{ name: loopback, listen: \"127.0.0.1:{}\", routes: [{list}] }}\n",
                routes[i]
            ))
        })
        .collect()
}
