//! `jghm eval --exact` and `jghm scores`, checked from outside: every large-batch figure of
//! `eval --exact` is recomputed from the written score matrix alone and the brute-force joint
//! law `p(x, y)` (enumeration of every hidden state, no BP), to 1e-9. Bad input (a model too
//! large to enumerate, a missing flag) ends in one line on stderr and a non-zero exit.

mod common;
mod tiny;

use std::path::PathBuf;

use common::cli::{ok, refused};
use jghm::logspace::log_sum_exp;
use serde_json::Value;
use tiny::brute_joint;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-exact-eval-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ℓ_∞^{A→C}(S) = Σ_a p(a) [−Σ_c p(c|a) S(a, c) + log Σ_c p(c) e^{S(a, c)}]` from a joint table
/// `p[a][c]` and scores `s[a][c]`.
fn loss_infinite(p: &[Vec<f64>], s: &[Vec<f64>]) -> f64 {
    let pc: Vec<f64> = (0..p[0].len()).map(|c| p.iter().map(|row| row[c]).sum()).collect();
    p.iter()
        .zip(s)
        .map(|(row, srow)| {
            let pa: f64 = row.iter().sum();
            if pa == 0.0 {
                return 0.0;
            }
            let positive: f64 = row.iter().zip(srow).filter(|(q, _)| **q > 0.0).map(|(q, v)| q / pa * v).sum();
            let logits: Vec<f64> = pc.iter().zip(srow).filter(|(q, _)| **q > 0.0).map(|(q, v)| q.ln() + v).collect();
            pa * (log_sum_exp(&logits) - positive)
        })
        .sum()
}

fn transpose(m: &[Vec<f64>]) -> Vec<Vec<f64>> {
    (0..m[0].len()).map(|j| m.iter().map(|row| row[j]).collect()).collect()
}

#[test]
fn eval_exact_agrees_with_a_recomputation_from_the_score_file() {
    let d = dir();
    let path = |n: &str| d.join(n).to_str().unwrap().to_string();
    let (model, ck, scores) = (path("m.json"), path("c.safetensors"), path("s.json"));
    ok(&[
        "model",
        "random",
        "--states",
        "3",
        "--children",
        "2",
        "--depth",
        "1",
        "--text-depth",
        "2",
        "--text-children",
        "1",
        "--flip",
        "0.2",
        "--seed",
        "4",
        "--out",
        &model,
    ]);
    ok(&["train", "--model", &model, "--class", "mlp", "--steps", "40", "--seed", "2", "--out", &ck]);
    ok(&["scores", "--model", &model, "--checkpoint", &ck, "--out", &scores]);
    let report: Value =
        serde_json::from_str(&ok(&["eval", "--model", &model, "--checkpoint", &ck, "--exact", "--json"])).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&scores).unwrap()).unwrap();

    // The joint law by brute force, re-indexed to the file's rows and columns.
    let m = jghm::files::load_model(std::path::Path::new(&model)).unwrap();
    let (xs, ys, p) = brute_joint(&m);
    let seqs = |key: &str| -> Vec<Vec<usize>> { serde_json::from_value(file[key].clone()).unwrap() };
    let (images, texts) = (seqs("images"), seqs("texts"));
    let s: Vec<Vec<f64>> = serde_json::from_value(file["scores"].clone()).unwrap();
    let at = |x: &Vec<usize>, y: &Vec<usize>| {
        let (i, j) = (xs.iter().position(|v| v == x).unwrap(), ys.iter().position(|v| v == y).unwrap());
        p[i * ys.len() + j]
    };
    let joint: Vec<Vec<f64>> = images.iter().map(|x| texts.iter().map(|y| at(x, y)).collect()).collect();
    let total: f64 = joint.iter().flatten().sum();
    assert!((total - 1.0).abs() < 1e-12, "the file's images and texts carry all the mass: {total}");
    let pmi: Vec<Vec<f64>> = {
        let px: Vec<f64> = joint.iter().map(|r| r.iter().sum()).collect();
        let py: Vec<f64> = (0..texts.len()).map(|j| joint.iter().map(|r| r[j]).sum()).collect();
        joint
            .iter()
            .enumerate()
            .map(|(i, r)| r.iter().enumerate().map(|(j, q)| (q / (px[i] * py[j])).ln()).collect())
            .collect()
    };
    let xy = loss_infinite(&joint, &s) - loss_infinite(&joint, &pmi);
    let yx = loss_infinite(&transpose(&joint), &transpose(&s)) - loss_infinite(&transpose(&joint), &transpose(&pmi));
    let got = |k: &str| report[k].as_f64().unwrap_or_else(|| panic!("{k} in {report}"));
    for (name, want) in
        [("excess_risk_image_to_text", xy), ("excess_risk_text_to_image", yx), ("excess_risk", (xy + yx) / 2.0)]
    {
        assert!((got(name) - want).abs() < 1e-9, "{name}: eval --exact {} vs recomputed {want}", got(name));
    }
    assert_eq!(got("excess_risk_stderr"), 0.0);
    assert_eq!(got("accuracy_stderr"), 0.0);
    assert!(report["method"].as_str().unwrap().contains("exact"));
    let exact_mi = report["exact"]["mutual_information"].as_f64().unwrap();
    assert!((exact_mi + loss_infinite(&joint, &pmi)).abs() < 1e-9, "I(X;Y) {exact_mi}");
}

#[test]
fn exact_evaluation_refuses_bad_input_in_one_line() {
    let d = dir();
    let path = |n: &str| d.join(n).to_str().unwrap().to_string();
    let (big, ck) = (path("big.json"), path("big.safetensors"));
    ok(&["model", "random", "--states", "4", "--children", "3", "--depth", "3", "--seed", "1", "--out", &big]);
    ok(&["train", "--model", &big, "--class", "mlp", "--steps", "2", "--seed", "1", "--out", &ck]);
    refused(&["eval", "--model", &big, "--checkpoint", &ck, "--exact"], "1.801e16");
    refused(&["scores", "--model", &big, "--checkpoint", &ck, "--out", &path("x.json")], "too large");
    refused(&["scores", "--model", &big, "--checkpoint", &ck], "required arguments");
    refused(&["scores", "--model", &big, "--out", &path("x.json")], "required arguments");
    refused(
        &["scores", "--model", &path("missing.json"), "--checkpoint", &ck, "--out", &path("x.json")],
        "missing.json",
    );
    assert!(!d.join("x.json").exists(), "nothing written on refusal");
}
