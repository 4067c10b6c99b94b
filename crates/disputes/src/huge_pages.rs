//! Transparent huge pages, declined for the whole process.
//!
//! mimalloc, the global allocator, advises the kernel to back its arenas with transparent huge
//! pages (`madvise(MADV_HUGEPAGE)`), so the first touch of each 2 MiB region faults in and zeroes
//! the whole 2 MiB, wherever in it the allocation is. For this service's mix of many small,
//! short-lived allocations that roughly doubled resident memory (`bench inproc` 193–204 MiB
//! against 87–110 MiB without; read models rebuilt from 400,000 events: 556 against 333 MiB) and
//! put the kernel's page zeroing (`clear_page_erms` under `do_huge_pmd_anonymous_page`) at 10 % of
//! `bench inproc`'s CPU samples. See docs/performance.md, "Eighth session".

use std::io;

/// Declines transparent huge pages for this process, as mimalloc's own `MIMALLOC_ALLOW_THP=0`
/// does: `prctl(PR_SET_THP_DISABLE, 1)`, which the kernel checks at every page fault, so it covers
/// the arenas mimalloc advised before `main` too. Children inherit it unless they clear it
/// (`disputes_testkit`'s nats-server does).
pub fn decline() -> io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_THP_DISABLE only sets a flag of this process; no memory is
    // passed to the kernel.
    let done = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this process declined transparent huge pages.
pub fn declined() -> io::Result<bool> {
    // SAFETY: as above; PR_GET_THP_DISABLE only reads the flag.
    match unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } {
        -1 => Err(io::Error::last_os_error()),
        flag => Ok(flag == 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `THP_enabled` of `/proc/<pid>/status`: 0 once a process declined them.
    fn thp_enabled(pid: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let line = status.lines().find(|l| l.starts_with("THP_enabled:"));
        line.expect("THP_enabled in /proc/<pid>/status").to_owned()
    }

    #[test]
    fn a_process_that_declined_huge_pages_starts_nats_servers_as_the_host_sets_them() {
        decline().expect("prctl(PR_SET_THP_DISABLE)");
        assert!(declined().expect("prctl(PR_GET_THP_DISABLE)"));
        assert_eq!(thp_enabled("self"), "THP_enabled:\t0");
        let server = disputes_testkit::NatsServer::start();
        let pid = server.pid().expect("running").to_string();
        assert_eq!(
            thp_enabled(&pid),
            "THP_enabled:\t1",
            "a baseline runs as the host sets it"
        );
    }
}
