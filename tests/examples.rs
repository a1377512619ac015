//! The programs in `examples/` run to completion (each asserts its own theorem checks).
//! `cargo test` builds them next to the test binaries; this runs each one.

use std::path::PathBuf;
use std::process::Command;

const EXAMPLES: [&str; 5] =
    ["posterior_by_hand", "information_and_sufficiency", "clip_loss_optimum", "train_and_evaluate", "rate_sweep"];

/// `target/<profile>/examples/<name>`, beside `target/<profile>/deps/<this test>`.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/");
    profile.join("examples").join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn every_example_runs() {
    for name in EXAMPLES {
        let path = example(name);
        assert!(path.exists(), "{} was not built (cargo test builds examples)", path.display());
        let out = Command::new(&path).output().expect("the example starts");
        assert!(
            out.status.success(),
            "{name} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_list_names_every_example() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
        .collect();
    files.sort();
    let mut listed: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}
