//! The command-line binary run from tests: its exit code and outputs, success, and refusals that
//! must be one line on stderr naming their cause.

use std::process::Command;

/// Runs `jghm ARGS`: `(exit code, stdout, stderr)`.
pub fn jghm(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jghm")).args(args).output().expect("the binary runs");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Runs `jghm ARGS`, which must succeed; its stdout.
pub fn ok(args: &[&str]) -> String {
    let (code, out, err) = jghm(args);
    assert_eq!(code, Some(0), "{args:?}: {err}");
    out
}

/// Runs `jghm ARGS`, which must fail with one line on stderr containing `expected`, no panic.
pub fn refused(args: &[&str], expected: &str) {
    let (code, _, err) = jghm(args);
    assert_ne!(code, Some(0), "{args:?} succeeded");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected: {err}");
    assert!(err.contains(expected), "{args:?}: '{expected}' not in {err}");
}
