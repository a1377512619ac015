//! `jghm bench train` and `jghm bench peak` as commands: what they print, not how fast (timings
//! belong to the benchmarks themselves), and `reproduce`'s protocol flags refusing bad values.

mod common;

use common::cli::{ok, refused};
use serde_json::Value;

/// FLOP of one sample through a tower of `len` positions (width `c`, `layers` blocks, output
/// `p`), forward and backward, counted here from the transformer's products: per block the
/// four affine maps (`3C² + C² + 4C² + 4C²` multiply-adds per position) and the attention's
/// `QKᵀ` and `AV` (`2TC` per position), then the projection; backward has two products for each.
fn tower_flop(len: f64, c: f64, layers: f64, p: f64) -> f64 {
    let per_position = 12.0 * c * c + 2.0 * len * c;
    3.0 * 2.0 * (layers * len * per_position + c * p)
}

#[test]
fn bench_train_counts_the_flop_of_its_preset_and_names_the_reference_arguments() {
    let out = ok(&["bench", "train", "--steps", "1", "--batch", "4", "--threads", "1", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    // The standard preset: image 81 and text 27 tokens, d = 64, 2 layers, p = 32.
    let want = tower_flop(81.0, 64.0, 2.0, 32.0) + tower_flop(27.0, 64.0, 2.0, 32.0);
    let got = v["flop_per_pair"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9 * want, "flop per pair {got} against {want}");
    assert!(v["pairs_per_second"].as_f64().unwrap() > 0.0 && v["last_loss"].as_f64().unwrap().is_finite());
    assert_eq!(
        v["reference_arguments"].as_str().unwrap(),
        "--image-len 81 --text-len 27 --vocab 10 --d 64 --layers 2 --heads 4 --p 32 --batch 4"
    );
    let fraction = v["fraction_of_f32_peak"].as_f64();
    assert!(fraction.is_none_or(|f| f > 0.0 && f.is_finite()));
    // With K = 4 independent negatives a positive pair brings 3 negatives per tower.
    let dir = std::env::temp_dir().join(format!("jghm-bench-kway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("k4.json");
    std::fs::write(&cfg, r#"{"width": 64, "layers": 2, "out": 32, "batch": 4, "scheme": {"kind": "k-way", "k": 4}}"#)
        .unwrap();
    let args = ["bench", "train", "--config", cfg.to_str().unwrap(), "--steps", "1", "--threads", "1", "--json"];
    let v: Value = serde_json::from_str(&ok(&args)).unwrap();
    let got = v["flop_per_pair"].as_f64().unwrap();
    assert!((got - 4.0 * want).abs() < 1e-9 * want, "K-way flop per pair {got} against {}", 4.0 * want);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bench_peak_reports_each_kernel_on_one_thread_and_all() {
    let out = ok(&["bench", "peak", "--iters", "1000", "--reps", "1", "--threads", "2", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["threads"].as_u64(), Some(2));
    for k in v["kernels"].as_array().unwrap() {
        assert!(k["one_thread"].as_f64().unwrap() > 0.0, "{k}");
        assert!(k["all_threads"].as_f64().unwrap() > 0.0, "{k}");
    }
}

#[test]
fn bad_training_configurations_and_protocol_flags_are_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("jghm-bench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bp = dir.join("bp.json");
    std::fs::write(&bp, r#"{"class": "bp"}"#).unwrap();
    refused(&["bench", "train", "--config", bp.to_str().unwrap()], "times the transformer class");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"width\":").unwrap();
    refused(&["bench", "train", "--config", bad.to_str().unwrap()], "not valid JSON");
    let out = dir.join("run");
    let out = out.to_str().unwrap();
    refused(
        &["reproduce", "risks", "--negatives", "1", "--out", out],
        "negatives are 'in-batch', 'paper', or a group size K",
    );
    refused(&["reproduce", "risks", "--steps", "10,20", "--out", out], "--steps takes three counts");
    refused(&["reproduce", "risks", "--steps", "0,1,1", "--out", out], "--steps takes three counts");
    for lr in ["0", "-1e-3", "2", "NaN", "inf", "papers"] {
        let flag = format!("--clip-lr={lr}");
        refused(&["reproduce", "risks", &flag, "--out", out], "the CLIP learning rate is 'paper' or a rate in (0, 1]");
    }
    for bad in ["1-split", "paper-split", "4split", "in-batch-split"] {
        refused(
            &["reproduce", "risks", "--negatives", bad, "--out", out],
            "negatives are 'in-batch', 'paper', or a group size K",
        );
    }
    for norm in ["0", "-1", "NaN", "inf"] {
        let flag = format!("--clip-max-norm={norm}");
        refused(&["reproduce", "risks", &flag, "--out", out], "--clip-max-norm takes a positive gradient norm");
    }
    std::fs::remove_dir_all(&dir).ok();
}
