//! The command line, driven as a user would: exact answers agree with the brute-force oracle,
//! and every bad input ends in one line on stderr with a non-zero exit.

mod common;

use jghm::bp::{brute_force, Tokens};
use jghm::model::{Jghm, Part};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn jghm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jghm")).args(args).output().expect("the binary runs")
}

fn ok_json(args: &[&str]) -> Value {
    let out = jghm(args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})"))
}

/// Runs a command that must fail: exactly one line on stderr, containing `expected`.
fn fails_with(args: &[&str], expected: &str) {
    let out = jghm(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected, got:\n{err}");
    assert!(err.contains(expected), "{args:?}: expected '{expected}' in: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jghm-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn csv(tokens: &[usize]) -> String {
    tokens.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")
}

/// Writes a random tiny model through the CLI and reads it back for the oracle.
fn random_model(name: &str, extra: &[&str]) -> (PathBuf, Jghm) {
    let path = temp(name);
    let mut args = vec!["model", "random", "--out", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = jghm(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = Jghm::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, model)
}

#[test]
fn cli_exact_answers_match_brute_force() {
    let shapes: [&[&str]; 4] = [
        &["--states", "2", "--children", "2", "--depth", "2", "--seed", "1"],
        &[
            "--states",
            "3",
            "--children",
            "1",
            "--depth",
            "3",
            "--text-children",
            "2",
            "--text-depth",
            "1",
            "--vocab",
            "4",
            "--seed",
            "2",
        ],
        &["--states", "2", "--children", "2", "--depth", "1", "--shared-depth", "1", "--seed", "3", "--flip", "0.05"],
        &[
            "--states",
            "3",
            "--children",
            "2",
            "--depth",
            "1",
            "--text-depth",
            "2",
            "--flip",
            "0.9",
            "--scale",
            "3",
            "--seed",
            "4",
        ],
    ];
    for (i, shape) in shapes.iter().enumerate() {
        let (path, model) = random_model(&format!("m{i}.json"), shape);
        let m = path.to_str().unwrap();
        let x = common::random_tokens(&model, Part::Image, i as u64);
        let y = common::random_tokens(&model, Part::Text, 100 + i as u64);
        let (xs, ys) = (csv(&x), csv(&y));
        let oracle = |obs: Tokens| brute_force::enumerate(&model, &obs).expect("tiny");
        let e_x = oracle(Tokens { image: Some(&x), text: None });
        let e_y = oracle(Tokens { image: None, text: Some(&y) });
        let e_xy = oracle(Tokens { image: Some(&x), text: Some(&y) });

        let post = ok_json(&["posterior", "--model", m, "--image", &xs, "--json"]);
        assert!((post["log_likelihood"].as_f64().unwrap() - e_x.log_likelihood).abs() < 1e-9);
        let root: Vec<f64> = serde_json::from_value(post["posterior"].clone()).unwrap();
        for (p, q) in root.iter().zip(&e_x.marginals[0]) {
            assert!((p - q).abs() < 1e-9, "shape {i}: posterior {p} vs {q}");
        }
        let post_y = ok_json(&["posterior", "--model", m, "--text", &ys, "--json"]);
        assert!((post_y["log_likelihood"].as_f64().unwrap() - e_y.log_likelihood).abs() < 1e-9);

        let pmi = ok_json(&["pmi", "--model", m, "--image", &xs, "--text", &ys, "--json"]);
        let expected = e_xy.log_likelihood - e_x.log_likelihood - e_y.log_likelihood;
        assert!((pmi["pmi"].as_f64().unwrap() - expected).abs() < 1e-9, "shape {i}");
        assert!((pmi["log_pxy"].as_f64().unwrap() - e_xy.log_likelihood).abs() < 1e-9);
        assert!((pmi["log_px"].as_f64().unwrap() - e_x.log_likelihood).abs() < 1e-9);
        assert!((pmi["log_py"].as_f64().unwrap() - e_y.log_likelihood).abs() < 1e-9);
    }
}

#[test]
fn cli_sample_is_reproducible_whatever_the_threads() {
    let (path, model) = random_model("s.json", &["--states", "3", "--children", "2", "--depth", "2", "--seed", "5"]);
    let run = |threads: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_jghm"))
            .args(["sample", "--model", path.to_str().unwrap(), "--n", "3000", "--seed", "8"])
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let one = run("1");
    assert_eq!(one, run("2"));
    let lines: Vec<Value> =
        one.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len(), 3000);
    assert_eq!(lines[0]["image"].as_array().unwrap().len(), model.image_len());
    assert_eq!(lines[0]["text"].as_array().unwrap().len(), model.text_len());
}

#[test]
fn cli_bad_input_fails_cleanly() {
    let (path, _) = random_model("b.json", &["--states", "2", "--children", "2", "--depth", "1", "--seed", "1"]);
    let m = path.to_str().unwrap();
    let bad_model = temp("bad.json");
    std::fs::write(&bad_model, r#"{"prior":[0.5,0.5],"image":[{"transitions":[[[0.9,0.2],[0.2,0.8]]]}],"text":[]}"#)
        .unwrap();
    let not_json = temp("notjson.json");
    std::fs::write(&not_json, "this is not json").unwrap();
    let zero = temp("zero.json");
    std::fs::write(&zero, r#"{"prior":[0.5,0.5],"image":[{"transitions":[[[1.0,0.0],[1.0,0.0]]]}],"text":[{"transitions":[[[0.5,0.5],[0.5,0.5]]]}]}"#).unwrap();

    fails_with(&["posterior", "--model", "/nonexistent/m.json", "--image", "0,1"], "cannot read model file");
    fails_with(
        &["posterior", "--model", bad_model.to_str().unwrap(), "--image", "0"],
        "image level 0 child 0 row 0 sums to",
    );
    fails_with(&["posterior", "--model", not_json.to_str().unwrap(), "--image", "0"], "not valid JSON");
    fails_with(&["posterior", "--model", m, "--image", "0"], "image has 1 tokens, but the model's image has 2 leaves");
    fails_with(&["posterior", "--model", m, "--image", "0,7"], "position 1 is 7, out of the vocabulary 0..2");
    fails_with(&["posterior", "--model", m, "--image", "0,-1"], "image token 1 ('-1') is not a nonnegative integer");
    fails_with(&["posterior", "--model", m, "--image", "0,a"], "not a nonnegative integer");
    fails_with(&["posterior", "--model", m, "--image", ""], "image is empty");
    fails_with(&["pmi", "--model", m, "--image", "0,1", "--text", "0,1,1"], "text has 3 tokens");
    fails_with(&["posterior", "--model", zero.to_str().unwrap(), "--image", "1"], "probability zero");
    fails_with(
        &["pmi", "--model", zero.to_str().unwrap(), "--image", "1", "--text", "0"],
        "the image has probability zero",
    );
    fails_with(&["sample", "--model", m, "--n", "0", "--seed", "1"], "--n");
    fails_with(&["sample", "--model", m, "--n", "-3", "--seed", "1"], "--n");
    fails_with(
        &["model", "random", "--states", "3", "--children", "2", "--depth", "2", "--seed", "1", "--flip", "2"],
        "--flip must lie in [0, 1]",
    );
    fails_with(&["model", "random", "--states", "0", "--children", "2", "--depth", "2", "--seed", "1"], "--states");
    fails_with(
        &[
            "model",
            "random",
            "--states",
            "3",
            "--children",
            "2",
            "--depth",
            "2",
            "--seed",
            "1",
            "--out",
            "/nonexistent/dir/m.json",
        ],
        "cannot write",
    );
    fails_with(&["frobnicate"], "unrecognized subcommand");
}

#[test]
fn cli_help_has_examples() {
    for cmd in ["posterior", "pmi", "sample", "demo", "next-token"] {
        let out = jghm(&[cmd, "--help"]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Example"), "{cmd} --help has no example");
    }
}

/// Found by the token-parser fuzz target: a field holding a newline or NUL must not break the
/// one-line error.
#[test]
fn token_errors_stay_on_one_line() {
    for text in [" \t\0\0\0\0\0\n7", "1,2\n3", "1,\r\n"] {
        let message = jghm::evidence::parse_tokens(Part::Image, text).unwrap_err().to_string();
        assert!(!message.contains('\n') && !message.contains('\r') && !message.contains('\0'), "{message:?}");
    }
}

/// A model with a root state of prior 1e-9: `eval` and `zero-shot --label root` run (the root
/// label's prompts are drawn below the fixed root state, not by rejection); `zero-shot` takes
/// `--max-memory` for a `ckpt:` score with eval's semantics (one clean line when it is too small).
#[test]
fn cli_eval_and_zero_shot_run_with_a_root_state_of_prior_1e_minus_9() {
    let (path, model) = random_model("rare.json", &["--states", "3", "--children", "2", "--depth", "2", "--seed", "4"]);
    let mut file = model.to_file();
    file.prior = vec![1e-9, 0.5, 0.5 - 1e-9];
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let (m, ck) = (path.to_str().unwrap(), temp("rare.safetensors"));
    let ck = ck.to_str().unwrap();
    ok_json(&["train", "--model", m, "--class", "bp", "--steps", "3", "--seed", "1", "--out", ck, "--json"]);
    let eval = ["eval", "--model", m, "--checkpoint", ck, "--samples", "10", "--images", "50", "--prompts", "4"];
    let r = ok_json(&[&eval[..], &["--batches", "2", "--json"]].concat());
    assert!(r["zero_shot_accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "{r}");
    let score = format!("ckpt:{ck}");
    let zs = ["zero-shot", "--model", m, "--score", &score, "--label", "root", "--prompts", "4", "--samples", "50"];
    let r = ok_json(&[&zs[..], &["--max-memory", "100000000", "--json"]].concat());
    assert!(r["accuracy"].as_f64().is_some(), "{r}");
    fails_with(&[&zs[..], &["--max-memory", "1000"]].concat(), "evaluating the pair needs about");
}
