//! Nothing to build: this script exists so that `[build-dependencies]` in Cargo.toml can align
//! the features of `syn` with those the Python package's macros need (see the comment there).
fn main() {}
