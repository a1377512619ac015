//! `jghm export` and `jghm eval --scores` from outside: the PMI fed back through the command
//! line has excess 0; the JSON of `jghm scores` and `.npz` embeddings of an exported set are
//! accepted; bad files and flags end in one line on stderr and a non-zero exit.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::cli::{ok, refused};
use jghm::arrays::{self, to_safetensors, Array, Stored};
use serde_json::Value;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-export-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A small model file (4 image and 4 text leaves, 3 tokens).
fn model(d: &Path, seed: u64) -> PathBuf {
    let path = d.join(format!("model{seed}.json"));
    let seed = seed.to_string();
    ok(&["model", "random", "--states", "3", "--children", "2", "--depth", "2", "--seed", &seed, "--out", p(&path)]);
    path
}

#[test]
fn pmi_exported_and_fed_back_has_excess_zero() {
    let d = dir();
    let m = model(&d, 1);
    let all = d.join("all.safetensors");
    let summary = json(&["export", "--model", p(&m), "--all", "--out", p(&all), "--json"]);
    assert_eq!(summary["images"], 81);
    // The exported PMI matrix, renamed `scores` (tokens from the export by --set).
    let file = arrays::read(&all).unwrap();
    let scores = d.join("scores.safetensors");
    let meta = BTreeMap::from([("model_sha256".to_string(), file.metadata["model_sha256"].clone())]);
    std::fs::write(&scores, to_safetensors(&[("scores", &file.arrays["pmi"], Stored::F64)], meta)).unwrap();
    let r = json(&["eval", "--model", p(&m), "--scores", p(&scores), "--set", p(&all), "--json"]);
    for key in ["excess_risk", "excess_risk_image_to_text", "excess_risk_text_to_image"] {
        assert!(r[key].as_f64().unwrap().abs() < 1e-12, "{key}: {}", r[key]);
    }
    assert_eq!(r["excess_risk_stderr"], 0.0);
    assert!(r["method"].as_str().unwrap().contains("exact"), "{}", r["method"]);
    // The text form prints the same route.
    let text = ok(&["eval", "--model", p(&m), "--scores", p(&scores), "--set", p(&all)]);
    assert!(text.contains("evaluated exactly"), "{text}");
    // The same matrix as the JSON of `jghm scores`.
    let tokens = |name: &str| -> Vec<Vec<usize>> {
        file.arrays[name].rows().map(|r| r.iter().map(|&v| v as usize).collect()).collect()
    };
    let rows: Vec<Vec<f64>> = file.arrays["pmi"].rows().map(<[f64]>::to_vec).collect();
    let matrix = serde_json::json!({"images": tokens("images"), "texts": tokens("texts"), "scores": rows});
    let as_json = d.join("scores.json");
    std::fs::write(&as_json, matrix.to_string()).unwrap();
    let r = json(&["eval", "--model", p(&m), "--scores", p(&as_json), "--json"]);
    assert!(r["excess_risk"].as_f64().unwrap().abs() < 1e-12);
}

#[test]
fn embeddings_of_an_exported_set_are_evaluated_by_monte_carlo_with_stderr() {
    let d = dir();
    let m = model(&d, 2);
    let set = d.join("set.safetensors");
    json(&["export", "--model", p(&m), "--n", "3000", "--seed", "4", "--out", p(&set), "--json"]);
    let file = arrays::read(&set).unwrap();
    // The root posteriors as embeddings, with a scale: a reasonable, not optimal, encoder.
    let emb = d.join("emb.safetensors");
    let scale = Array::vector(vec![4.0]);
    let arrays = [
        ("image_embeddings", &file.arrays["image_root_posterior"], Stored::F64),
        ("text_embeddings", &file.arrays["text_root_posterior"], Stored::F64),
        ("logit_scale", &scale, Stored::F64),
    ];
    std::fs::write(&emb, to_safetensors(&arrays, BTreeMap::new())).unwrap();
    // 3000 sampled pairs do not cover every image of the model: Monte Carlo on the pairs.
    let r = json(&["eval", "--model", p(&m), "--scores", p(&emb), "--set", p(&set), "--json"]);
    let (mc, se) = (r["excess_risk"].as_f64().unwrap(), r["excess_risk_stderr"].as_f64().unwrap());
    assert!(se > 0.0 && se < 0.02, "{r}");
    assert!(r["method"].as_str().unwrap().contains("Monte Carlo on the 3000 pairs"), "{}", r["method"]);
    for key in
        ["zero_shot_accuracy", "oracle_zero_shot_accuracy", "bayes_accuracy", "finite_k_excess", "pmi_correlation"]
    {
        assert!(r[key].as_f64().unwrap().is_finite(), "{key}: {r}");
    }
    // The same encoder on every sequence (the root posteriors of `--all`): exact, and the
    // Monte Carlo figure within 4 standard errors of it (plus the O(1/B) bias bound).
    let all = d.join("all2.safetensors");
    ok(&["export", "--model", p(&m), "--all", "--out", p(&all)]);
    let fa = arrays::read(&all).unwrap();
    let emb_all = d.join("emb_all.safetensors");
    let arrays = [
        ("image_embeddings", &fa.arrays["image_root_posterior"], Stored::F64),
        ("text_embeddings", &fa.arrays["text_root_posterior"], Stored::F64),
        ("logit_scale", &scale, Stored::F64),
    ];
    std::fs::write(&emb_all, to_safetensors(&arrays, BTreeMap::new())).unwrap();
    let r = json(&["eval", "--model", p(&m), "--scores", p(&emb_all), "--set", p(&all), "--json"]);
    assert_eq!(r["excess_risk_stderr"], 0.0, "{r}");
    let exact = r["excess_risk"].as_f64().unwrap();
    assert!((mc - exact).abs() < 4.0 * se + 10.0 / 1024.0, "Monte Carlo {mc} ± {se} vs exact {exact}");
    // Too few pairs for the blocks and K: refused; a small set with small blocks: estimated.
    let few = d.join("few.safetensors");
    ok(&["export", "--model", p(&m), "--n", "20", "--seed", "5", "--out", p(&few)]);
    let f = arrays::read(&few).unwrap();
    let small = d.join("small.safetensors");
    let arrays = [
        ("image_embeddings", &f.arrays["image_root_posterior"], Stored::F64),
        ("text_embeddings", &f.arrays["text_root_posterior"], Stored::F64),
    ];
    std::fs::write(&small, to_safetensors(&arrays, BTreeMap::new())).unwrap();
    let r = json(&[
        "eval",
        "--model",
        p(&m),
        "--scores",
        p(&small),
        "--set",
        p(&few),
        "--k",
        "2",
        "--block",
        "10",
        "--prompts",
        "1",
        "--json",
    ]);
    assert!(r["excess_risk_stderr"].as_f64().unwrap() > 0.0, "{r}");
    refused(&["eval", "--model", p(&m), "--scores", p(&small), "--set", p(&few), "--k", "16"], "too few");
    refused(
        &["eval", "--model", p(&m), "--scores", p(&small), "--set", p(&few), "--exact"],
        "exact evaluation was asked for",
    );
}

#[test]
fn export_is_reproducible_and_bad_input_is_one_line() {
    let d = dir();
    let m = model(&d, 3);
    let (a, b) = (d.join("a.safetensors"), d.join("b.safetensors"));
    ok(&["export", "--model", p(&m), "--n", "500", "--seed", "9", "--out", p(&a)]);
    ok(&["export", "--model", p(&m), "--n", "500", "--seed", "9", "--out", p(&b)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    refused(&["export", "--model", p(&m), "--out", p(&a)], "--n");
    refused(&["export", "--model", p(&m), "--n", "0", "--out", p(&a)], "--n");
    refused(&["export", "--model", p(&m), "--n", "5", "--all", "--out", p(&a)], "cannot be used with");
    let big = d.join("big.json");
    ok(&["model", "random", "--states", "4", "--children", "3", "--depth", "3", "--seed", "1", "--out", p(&big)]);
    refused(&["export", "--model", p(&big), "--all", "--out", p(&a)], "sequences");
    // Scores from another model, a wrong shape, not an array file, a missing --set.
    let other = model(&d, 4);
    let set = d.join("set3.safetensors");
    ok(&["export", "--model", p(&m), "--all", "--out", p(&set)]);
    refused(&["eval", "--model", p(&other), "--scores", p(&set)], "another model");
    let bad = d.join("bad.safetensors");
    std::fs::write(
        &bad,
        to_safetensors(&[("scores", &Array::matrix(2, 3, vec![0.0; 6]), Stored::F64)], BTreeMap::new()),
    )
    .unwrap();
    refused(&["eval", "--model", p(&m), "--scores", p(&bad), "--set", p(&set)], "has shape [2, 3], expected [81, 81]");
    std::fs::write(&bad, b"garbage").unwrap();
    refused(&["eval", "--model", p(&m), "--scores", p(&bad)], "is not a safetensors, .npy or .npz file");
    refused(&["eval", "--model", p(&m), "--set", p(&set)], "--checkpoint");
    refused(&["eval", "--model", p(&m), "--scores", p(&bad), "--similarity", "l2"], "dot");
}
