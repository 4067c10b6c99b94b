//! Children left running at exit are killed: shared fixtures live in statics, which are never
//! dropped, so without this every test run would leave a nats-server and a service behind.

use std::sync::{Mutex, Once};

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static REGISTER: Once = Once::new();

extern "C" fn kill_children() {
    if let Ok(children) = CHILDREN.lock() {
        for pid in children.iter() {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe {
                libc::kill(*pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }
}

/// Kill `pid` when this process exits, unless `forget` is called first.
pub fn track(pid: u32) {
    REGISTER.call_once(|| {
        // SAFETY: registering a plain extern "C" function with atexit(3).
        unsafe {
            libc::atexit(kill_children);
        }
    });
    CHILDREN.lock().expect("reaper lock").push(pid);
}

/// `pid` was killed and reaped: its number may be reused, so never kill it at exit.
pub fn forget(pid: u32) {
    CHILDREN.lock().expect("reaper lock").retain(|p| *p != pid);
}
