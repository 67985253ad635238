//! The process's allocator: mimalloc (v3), configured to hold no more
//! memory than glibc's malloc did.
//!
//! Measured (docs/performance.md): glibc's malloc, free and consolidation
//! were about a tenth of the request path's CPU, and mimalloc served 16 to
//! 29 % more GETs. Its defaults, though, commit whole arenas on Linux and
//! purge freed pages late, which doubled RSS after load (14 → 29 MiB). With
//! arenas committed on demand and freed pages purged at once, RSS after load
//! is 14.4–14.6 MiB (glibc: 14.0) at the same throughput. The environment
//! (`MIMALLOC_ARENA_EAGER_COMMIT`, `MIMALLOC_PURGE_DELAY`) still overrides.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Once;

use mimalloc::MiMalloc;

/// Positions in mimalloc v3's `mi_option_e` (include/mimalloc.h):
/// libmimalloc-sys 0.1.49 names only some options.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

pub struct Allocator;

static CONFIGURE: Once = Once::new();

impl Allocator {
    /// Sets the defaults before mimalloc's first allocation reads them (the
    /// first allocation happens before `main`, so this cannot wait for it).
    #[inline]
    fn configure() {
        CONFIGURE.call_once(|| {
            // SAFETY: sets defaults in mimalloc's option table; allocates nothing.
            unsafe {
                libmimalloc_sys::mi_option_set_default(ARENA_EAGER_COMMIT, 0);
                libmimalloc_sys::mi_option_set_default(PURGE_DELAY, 0);
            }
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
