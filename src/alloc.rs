//! How the `addmul` binary (and the examples and benches that measure it)
//! keeps memory: training frees and allocates the same large buffers every
//! step (a GPT-2-small-shaped step's logits alone are 50,257 scores per
//! token), and an allocator that hands freed memory back to the system gets
//! it back as fresh pages, which the kernel must zero on first touch.

/// mimalloc's option `purge_delay` (`mi_option_purge_delay` in its header:
/// milliseconds before freed memory is returned to the system; -1 never).
/// The Rust bindings do not name it, so its number is checked against its
/// default before it is set (see [`keep_freed_memory`]).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc's default `purge_delay`, in milliseconds (version 3, which the
/// bindings build).
const DEFAULT_PURGE_DELAY: std::ffi::c_long = 1000;

/// Tells mimalloc to keep memory it frees for the process's next
/// allocations instead of returning it to the system: the memory a process
/// holds stays at its peak, and a training step no longer pays for zeroing
/// fresh pages (measured on a GPT-2-small-shaped step: about a fifth of its
/// time). Returns whether the setting was made: `false` if the option's
/// number does not hold mimalloc's default for it (a mimalloc whose options
/// are numbered differently, or a `MIMALLOC_PURGE_DELAY` set by the user), in
/// which case nothing is changed.
///
/// Call it first thing in `main`, with mimalloc as the global allocator.
pub fn keep_freed_memory() -> bool {
    // SAFETY: reading and setting a mimalloc option has no preconditions
    // beyond the option being one of mimalloc's, which the check below
    // establishes by its default value.
    unsafe {
        let now = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
        if now != DEFAULT_PURGE_DELAY && now != -1 {
            return false;
        }
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == -1
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // The number 15 must name purge_delay in the mimalloc that is built:
        // its default is 1000 (ms); the options beside it default to 1 and 0.
        assert!(super::keep_freed_memory(), "mimalloc's option 15 is not purge_delay");
        assert!(super::keep_freed_memory(), "setting it twice is fine");
    }
}
