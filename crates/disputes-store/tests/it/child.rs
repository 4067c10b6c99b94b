//! The child processes of the strace and crash tests: this very test binary, re-executed with
//! `DISPUTES_STORE_IT_CHILD` set, running only [`entry`]. In a normal run `entry` does nothing.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

pub(crate) const CHILD_ENV: &str = "DISPUTES_STORE_IT_CHILD";

/// This test binary, set to run `entry` as `mode` (`"strace:DIR"` or `"crash:RUN:DIR"`), run
/// by `wrapper` (a program and its arguments, such as strace) when not empty.
pub(crate) fn command(wrapper: &[OsString], mode: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command.args([
        "--exact",
        "child::entry",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ]);
    command.env(CHILD_ENV, mode);
    command
}

/// One line on stdout, written and flushed at once (a single `write` for a short line).
pub(crate) fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(format!("{line}\n").as_bytes())
        .expect("stdout");
    stdout.flush().expect("stdout");
}

#[test]
fn entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.split_once(':') {
        Some(("strace", dir)) => crate::strace::child(&PathBuf::from(dir)),
        Some(("crash", rest)) => {
            let (run, dir) = rest.split_once(':').expect("crash:RUN:DIR");
            crate::crash::child(run.parse().expect("run number"), &PathBuf::from(dir));
        }
        _ => panic!("unknown child mode {mode:?}"),
    }
}
