//! Freed memory given back to the kernel at once.
//!
//! mimalloc (the global allocator, v3) keeps the pages it freed for a second
//! (`mi_option_purge_delay`, 1,000 ms) before it gives them back, and only when the thread that owns
//! them next calls into it; the threads of a start-up rebuild go idle right after it, so what the
//! rebuild freed stayed resident (610 MiB at ready with 1,000,000 pending deadlines, against 322 MiB
//! with no delay). With no delay `bench inproc` and `bench nats` ran at the same rates (within this
//! machine's noise) and with about half the resident memory. See docs/performance.md, "Ninth
//! session".

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in the mimalloc v3 sources `libmimalloc-sys` 0.1.49 builds (its
/// bindings predate the option's name).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// Makes mimalloc give freed pages back to the kernel as soon as they are free.
pub fn purge_at_once() {
    // SAFETY: mi_option_set only stores the option's value; mimalloc reads options without locks
    // and tolerates a change at any time.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// mimalloc's purge delay, in ms.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads the option's value.
    unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_is_given_back_without_delay_once_asked() {
        // The option at that index is the purge delay: its v3 default until it is set.
        assert_eq!(
            purge_delay_ms(),
            1_000,
            "mimalloc v3's purge delay by default"
        );
        purge_at_once();
        assert_eq!(purge_delay_ms(), 0);
    }
}
