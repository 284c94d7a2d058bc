//! Giving memory back to the system after a burst. The hub keeps frame-sized buffers on
//! glibc's heap ([`tune_allocator`]: mapping and unmapping each ~1 MB frame costs page faults
//! on every frame), so freed frames stay in the process: after an attack RSS stayed at its
//! peak (9 MB fresh, 630 MB idle after three rounds of partial 16 MiB frames). The prune tick
//! calls [`give_back`] every 10 s: when much of the heap is free it is returned with
//! `malloc_trim`, so RSS falls back near its baseline within seconds of the load ending.
//! Other allocators and C libraries: both are no-ops.

/// Free heap bytes above which [`give_back`] trims: below it a trim is not worth the page
/// faults of refilling what the next frames take again.
pub const GIVE_BACK_ABOVE_BYTES: usize = 32 << 20;

/// Sets glibc's tunables for frame-sized buffers: served from the heap up to 64 MiB (not
/// mapped per frame), the top of the heap trimmed only past 256 MiB (the periodic
/// [`give_back`] returns the rest). Call once, early, before threads start (`main` does).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables (glibc takes its own lock).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Returns free heap memory to the system when more than [`GIVE_BACK_ABOVE_BYTES`] is free;
/// the free bytes it found when it did. Blocking for a few milliseconds at most (it walks the
/// allocator's free lists): call it from a blocking thread.
pub fn give_back() -> Option<usize> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: both only read and adjust the allocator's own state, under its locks.
        let free = unsafe { libc::mallinfo2() }.fordblks;
        if free < GIVE_BACK_ABOVE_BYTES {
            return None;
        }
        // SAFETY: as above; 0 keeps no extra padding at the top of the heap.
        unsafe { libc::malloc_trim(0) };
        Some(free)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// This process's resident memory in bytes (`/proc/self/statm`), if it can be read.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read() {
        assert!(resident_bytes().is_some_and(|b| b > 0));
        // Nothing much is free in a fresh test process: no trim.
        let _ = give_back();
    }
}
