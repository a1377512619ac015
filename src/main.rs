//! The `jghm` command: a thin layer over the library (see `jghm::cli`).

fn main() {
    // Output piped into `head` ends the program quietly, as it does `cat`, instead of a panic
    // in `println!` when the pipe closes (Rust ignores SIGPIPE by default).
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(jghm::cli::main());
}
