//! Reproducibility: the same command with the same seed prints the same
//! numbers whatever the thread count, driving the real binary with RAYON_NUM_THREADS=1 and 2.
//! Covered here: Monte Carlo estimates (info, clip-loss at finite and infinite batch,
//! sufficiency, eval), training (`jghm train`, checkpoint bytes) and the emulator's sampled
//! error. (`tests/cli.rs` covers `jghm sample`; `tests/learn_training.rs` and
//! `tests/sampling.rs` cover the library with explicit pools.) Sample sizes span several
//! parallel chunks, so a thread-dependent reduction would show.

use jghm::learn::checkpoint::Checkpoint;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-repro-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn jghm(args: &[&str], threads: usize) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_jghm"))
        .args(args)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{args:?} with {threads} threads: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The JSON printed, with wall-clock fields and the output path removed.
fn numbers(args: &[&str], threads: usize) -> Value {
    let mut v: Value = serde_json::from_slice(&jghm(args, threads)).expect("JSON on stdout");
    if let Some(o) = v.as_object_mut() {
        for timing in ["seconds", "pairs_per_second", "checkpoint"] {
            o.remove(timing);
        }
    }
    v
}

fn model(name: &str, shape: &[&str]) -> String {
    let p = dir().join(name);
    let mut args = vec!["model", "random", "--out", p.to_str().unwrap()];
    args.extend_from_slice(shape);
    jghm(&args, 1);
    p.to_str().unwrap().to_string()
}

fn same_across_threads(args: &[&str]) -> Value {
    let one = numbers(args, 1);
    assert_eq!(one, numbers(args, 2), "{args:?}: 1 vs 2 threads");
    one
}

#[test]
fn monte_carlo_estimates_do_not_depend_on_threads() {
    let m = model("mc.json", &["--states", "3", "--children", "2", "--depth", "3", "--text-depth", "2", "--seed", "4"]);
    let info = same_across_threads(&["info", "--model", &m, "--samples", "700", "--seed", "3", "--json"]);
    assert!(info["stderr"].as_f64().unwrap() > 0.0, "really Monte Carlo: {info}");
    let k =
        same_across_threads(&["clip-loss", "--model", &m, "--batch", "8", "--samples", "300", "--seed", "5", "--json"]);
    assert!(k["stderr"].as_f64().unwrap() > 0.0, "{k}");
    for score in ["pmi", "t7", "perturbed:0.3:2"] {
        same_across_threads(&[
            "clip-loss",
            "--model",
            &m,
            "--batch",
            "inf",
            "--score",
            score,
            "--samples",
            "200",
            "--seed",
            "6",
            "--json",
        ]);
    }
    let s = same_across_threads(&[
        "sufficiency",
        "--model",
        &m,
        "--statistic",
        "map-root",
        "--side",
        "text",
        "--samples",
        "700",
        "--seed",
        "7",
        "--json",
    ]);
    assert!(s["stderr"].as_f64().unwrap() > 0.0, "{s}");
    // Another seed gives other numbers: the seed is really used.
    let other = numbers(&["info", "--model", &m, "--samples", "700", "--seed", "4", "--json"], 1);
    assert_ne!(info["mutual_information"], other["mutual_information"]);
}

#[test]
fn training_and_evaluation_do_not_depend_on_threads() {
    let m = model("train.json", &["--states", "3", "--children", "2", "--depth", "2", "--seed", "8"]);
    for class in ["mlp", "transformer", "bp"] {
        let run = |threads: usize| {
            let out = dir().join(format!("{class}-{threads}.safetensors"));
            let o = out.to_str().unwrap();
            let printed = numbers(
                &["train", "--model", &m, "--class", class, "--steps", "6", "--seed", "2", "--out", o, "--json"],
                threads,
            );
            (printed, std::fs::read(&out).unwrap(), o.to_string())
        };
        let (p1, b1, ck) = run(1);
        let (p2, b2, _) = run(2);
        assert_eq!(p1, p2, "{class}: printed results");
        // The checkpoint is the same file, byte for byte (its header keys are written sorted).
        assert!(b1 == b2, "{class}: checkpoint bytes differ between 1 and 2 threads");
        let same = match class {
            "bp" => {
                Checkpoint::<f64>::from_bytes(&b1).unwrap().params == Checkpoint::<f64>::from_bytes(&b2).unwrap().params
            }
            _ => {
                let (c1, c2) =
                    (Checkpoint::<f32>::from_bytes(&b1).unwrap(), Checkpoint::<f32>::from_bytes(&b2).unwrap());
                c1.params == c2.params && c1.step == c2.step && c1.train_loss == c2.train_loss
            }
        };
        assert!(same, "{class}: checkpoint parameters differ between 1 and 2 threads");
        if class == "mlp" {
            same_across_threads(&[
                "eval",
                "--model",
                &m,
                "--checkpoint",
                &ck,
                "--samples",
                "150",
                "--images",
                "300",
                "--prompts",
                "4",
                "--json",
            ]);
        }
    }
}

#[test]
fn emulator_error_does_not_depend_on_threads() {
    let m = model("emu.json", &["--states", "3", "--children", "2", "--depth", "2", "--seed", "9"]);
    same_across_threads(&["emulate", "--model", &m, "--width", "16", "--samples", "600", "--seed", "1", "--json"]);
}
