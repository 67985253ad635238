//! The `kindling` binary: the allocator, then the command line
//! (`src/cli.rs`, in the library).

mod allocator;

#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator;

fn main() -> std::process::ExitCode {
    kindling::cli::main()
}
