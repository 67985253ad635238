//! Links libkindling_dylib.so with `-Bsymbolic-functions`: its calls to its
//! own functions are bound when it is linked, not looked up by the dynamic
//! loader each time a process starts. Without it, ~85,000 of its relocations
//! need a symbol lookup, and loading the dev binary took ~33 ms instead of
//! ~8 ms, paid by the staging check and by every restart in the pod
//! (docs/dev-loop.md, "Measured"). Data is still bound the usual way.
//! Functions cannot be interposed by another object any more; nothing here
//! does that (the binary exports no symbols).

fn main() {
    // ELF linkers only: a Linux dev image is the one place this library runs.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg=-Wl,-Bsymbolic-functions");
    }
}
