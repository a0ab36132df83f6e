//! Declares the `fuzzing` cfg set by cargo-fuzz builds (see `fuzz/`), so that normal builds
//! do not warn about it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
