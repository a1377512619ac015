//! The `jghm` command: a thin layer over the library (see `jghm::cli`).

fn main() {
    std::process::exit(jghm::cli::main());
}
