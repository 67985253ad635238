//! The process's allocator: mimalloc (v3), with its arenas committed on
//! demand rather than eagerly.
//!
//! Measured with `bench/run.sh` (docs/performance.md): glibc's malloc, free
//! and consolidation were about a tenth of the request path's CPU. mimalloc's
//! defaults commit whole arenas on Linux and never give pages back, which
//! doubled RSS after load (14.5 → 29 MiB); with `arena_eager_commit` off it
//! stays within 1 MiB of glibc's while keeping the throughput gain.
//! `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still overrides it.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Once;

use mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in mimalloc v3's `mi_option_e`
/// (include/mimalloc.h); libmimalloc-sys names only some options.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

pub struct Allocator;

static CONFIGURE: Once = Once::new();

impl Allocator {
    /// Sets the option before mimalloc's first allocation reads it (the
    /// first allocation happens before `main`, so this cannot wait for it).
    #[inline]
    fn configure() {
        CONFIGURE.call_once(|| {
            // SAFETY: sets a default in mimalloc's option table; allocates nothing.
            unsafe { libmimalloc_sys::mi_option_set_default(ARENA_EAGER_COMMIT, 0) }
        });
    }
}

// SAFETY: every call is forwarded to mimalloc unchanged.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::configure();
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::configure();
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}
