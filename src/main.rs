//! The `kindling` binary: the allocator, then the command line
//! (`core/src/cli.rs`) with the service this crate's library assembles.

#[cfg(not(feature = "dynamic-linking"))]
mod allocator;

// Not in the dev loop's dynamically linked build: there, the standard
// library and the dependencies are shared libraries that allocate through
// libstd's own allocator entry points, while this crate's code would go
// through mimalloc, and memory freed by the other allocator corrupts the
// heap. That build uses the system allocator throughout.
#[cfg(not(feature = "dynamic-linking"))]
#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> std::process::ExitCode {
    kindling::main()
}
