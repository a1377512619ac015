//! Robustness of the command line: every kind of bad input, for every
//! command, ends in exactly one line on stderr and a non-zero exit, quickly, without a panic,
//! and never prints a non-finite number. Drives the real binary; each run has a deadline so a
//! hang fails the test instead of stalling the suite. (`tests/cli.rs` covers the first cases
//! for model/sample/posterior/pmi; this file extends them to every command and kind.)

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a bad input may take to be refused (generous: the machine is shared).
const DEADLINE: Duration = Duration::from_secs(60);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a deadline: a run still going after `DEADLINE` is killed and fails.
fn run(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jghm"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // Drain both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {DEADLINE:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run { code: status.code(), stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() }
}

/// A command that must be refused: non-zero exit, exactly one line on stderr containing
/// `expected` (case-insensitive), no panic, nothing non-finite on stdout.
fn fails_with(args: &[&str], expected: &str) {
    let r = run(args);
    assert!(r.code.is_some_and(|c| c != 0), "{args:?} should fail (exit {:?}); stdout: {}", r.code, r.stdout);
    assert!(!r.stderr.contains("panicked"), "{args:?} panicked: {}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{args:?}: one line on stderr expected, got:\n{}", r.stderr);
    assert!(
        r.stderr.to_lowercase().contains(&expected.to_lowercase()),
        "{args:?}: expected '{expected}' in: {}",
        r.stderr
    );
    no_non_finite(args, &r.stdout);
}

/// A command that must succeed, printing only finite numbers.
fn succeeds(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(r.code, Some(0), "{args:?} failed: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{args:?} panicked: {}", r.stderr);
    no_non_finite(args, &r.stdout);
    r.stdout
}

fn no_non_finite(args: &[&str], stdout: &str) {
    // `"batch": "inf"` names the large-batch loss; it is a string, not a number.
    let text = stdout.replace("\"inf\"", "");
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let w = word.to_ascii_lowercase();
        assert!(
            !["nan", "inf", "infinity", "null"].contains(&w.as_str()),
            "{args:?} printed '{word}' as a number: {stdout}"
        );
    }
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-robust-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(name: &str, contents: &str) -> String {
    let p = dir().join(name);
    std::fs::write(&p, contents).unwrap();
    p.to_str().unwrap().to_string()
}

fn random_model(name: &str, shape: &[&str]) -> String {
    let p = dir().join(name);
    let mut args = vec!["model", "random", "--out", p.to_str().unwrap()];
    args.extend_from_slice(shape);
    succeeds(&args);
    p.to_str().unwrap().to_string()
}

/// A tiny model: 2 root states, image 2 tokens, text 2 tokens.
fn tiny() -> String {
    random_model("tiny.json", &["--states", "2", "--children", "2", "--depth", "1", "--seed", "1"])
}

/// The default-sized model: far too large to enumerate.
fn big() -> String {
    random_model("big.json", &["--states", "10", "--children", "3", "--depth", "4", "--seed", "1"])
}

/// A model in which image token 1 and text token 1 never occur: `p(x = 1) = p(y = 1) = 0`.
const ZERO: &str = r#"{"prior":[0.5,0.5],
  "image":[{"transitions":[[[1.0,0.0],[1.0,0.0]]]}],
  "text":[{"transitions":[[[1.0,0.0],[1.0,0.0]]]}]}"#;

/// A model where x and y are each possible but never together: root 0 emits (0, 0), root 1
/// emits (1, 1), so p(x = 0, y = 1) = 0 while p(x = 0) > 0 and p(y = 1) > 0.
const DISJOINT: &str = r#"{"prior":[0.5,0.5],
  "image":[{"transitions":[[[1.0,0.0],[0.0,1.0]]]}],
  "text":[{"transitions":[[[1.0,0.0],[0.0,1.0]]]}]}"#;

/// Malformed model files, each with the words its error must contain.
fn bad_models() -> Vec<(&'static str, String, &'static str)> {
    let level = |rows: &str| format!(r#"[{{"transitions":[{rows}]}}]"#);
    let ok = level("[[0.5,0.5],[0.5,0.5]]");
    let with_image = |image: &str| format!(r#"{{"prior":[0.5,0.5],"image":{image},"text":{ok}}}"#);
    vec![
        ("empty-file", String::new(), "not valid JSON"),
        ("truncated", format!(r#"{{"prior":[0.5,0.5],"image":{ok}"#), "not valid JSON"),
        ("binary", "\u{0}\u{1}\u{7f}PK".into(), "not valid JSON"),
        ("wrong-type-prior", format!(r#"{{"prior":"half","image":{ok},"text":{ok}}}"#), "not valid JSON"),
        ("wrong-type-entry", with_image(&level(r#"[["0.5",0.5],[0.5,0.5]]"#)), "not valid JSON"),
        ("array-not-object", "[1,2,3]".into(), "not valid JSON"),
        ("overflow", with_image(&level("[[1e999,0.5],[0.5,0.5]]")), "not valid JSON"),
        ("nan-literal", with_image(&level("[[NaN,0.5],[0.5,0.5]]")), "not valid JSON"),
        ("row-sum", with_image(&level("[[0.5,0.4],[0.5,0.5]]")), "sums to"),
        ("negative", with_image(&level("[[1.5,-0.5],[0.5,0.5]]")), "finite and nonnegative"),
        ("ragged", with_image(&level("[[0.5,0.5],[1.0]]")), "entries, but row 0 has"),
        ("non-chaining", with_image(&level("[[0.5,0.5],[0.5,0.5],[0.5,0.5]]")), "parent level has 2 states"),
        (
            "non-chaining-deep",
            with_image(r#"[{"transitions":[[[0.5,0.5],[0.5,0.5]]]},{"transitions":[[[1.0],[1.0],[1.0]]]}]"#),
            "parent level has 2 states",
        ),
        ("empty-tower", with_image("[]"), "has no levels"),
        ("empty-level", with_image(r#"[{"transitions":[]}]"#), "no transition matrices"),
        ("empty-matrix", with_image(r#"[{"transitions":[[]]}]"#), "no rows or no columns"),
        ("empty-prior", format!(r#"{{"prior":[],"image":{ok},"text":{ok}}}"#), "prior is empty"),
        ("negative-prior", format!(r#"{{"prior":[1.5,-0.5],"image":{ok},"text":{ok}}}"#), "prior entry 1"),
        ("prior-sum", format!(r#"{{"prior":[0.5,0.6],"image":{ok},"text":{ok}}}"#), "prior sums to"),
        ("unknown-field", format!(r#"{{"prior":[0.5,0.5],"image":{ok},"text":{ok},"colour":1}}"#), "colour"),
    ]
}

#[test]
fn malformed_model_files_are_refused_by_model_check() {
    for (name, text, expected) in bad_models() {
        let path = write(&format!("{name}.json"), &text);
        fails_with(&["model", "check", "--model", &path], expected);
    }
    let d = dir();
    fails_with(&["model", "check", "--model", d.to_str().unwrap()], "cannot read model file");
}

/// Every command that reads a model: its arguments with the model path as `{}`.
fn model_commands(tiny_ck: &str) -> Vec<Vec<String>> {
    let out = dir().join("never-written");
    let out = out.to_str().unwrap();
    [
        "model check --model {}",
        "sample --model {} --n 2 --seed 1",
        "posterior --model {} --image 0,0",
        "pmi --model {} --image 0,0 --text 0,0",
        "next-token --model {}",
        "emulate --model {} --width 8 --samples 2",
        "info --model {}",
        "clip-loss --model {} --batch 2",
        "sufficiency --model {} --statistic map-root",
        &format!("train --model {{}} --class mlp --steps 2 --seed 1 --out {out}"),
        &format!("eval --model {{}} --checkpoint {tiny_ck}"),
    ]
    .iter()
    .map(|c| c.split(' ').map(String::from).collect())
    .collect()
}

fn with_model(cmd: &[String], model: &str) -> Vec<String> {
    cmd.iter().map(|a| if a == "{}" { model.to_string() } else { a.clone() }).collect()
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A checkpoint of a two-step MLP run on `model`.
fn checkpoint(model: &str, name: &str) -> String {
    let out = dir().join(name);
    succeeds(&[
        "train",
        "--model",
        model,
        "--class",
        "mlp",
        "--steps",
        "2",
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    out.to_str().unwrap().to_string()
}

#[test]
fn every_command_refuses_missing_and_malformed_models() {
    let ck = checkpoint(&tiny(), "tiny-for-models.safetensors");
    let not_json = write("prose.json", "a model, honestly");
    let row_sum = write("rowsum.json", &bad_models().into_iter().find(|b| b.0 == "row-sum").unwrap().1);
    for cmd in model_commands(&ck) {
        fails_with(&as_strs(&with_model(&cmd, "/nonexistent/model.json")), "cannot read model file");
        fails_with(&as_strs(&with_model(&cmd, &not_json)), "not valid JSON");
        fails_with(&as_strs(&with_model(&cmd, &row_sum)), "sums to");
    }
}

#[test]
fn bad_tokens_are_named() {
    let m = tiny();
    for (tokens, expected) in [
        ("0,,1", "token 1 ('') is not a nonnegative integer"),
        ("0,1,", "token 2"),
        ("+1,0", "token 0 ('+1')"),
        ("1e3,0", "token 0 ('1e3')"),
        ("0.0,1", "token 0 ('0.0')"),
        ("0,99999999999999999999999999", "token 1"),
        ("0;1", "token 0"),
        ("   ", "empty"),
        ("0,1,0,1,0,1,0,1,0,1,0,1", "has 12 tokens"),
    ] {
        fails_with(&["posterior", "--model", &m, "--text", tokens], expected);
        fails_with(&["pmi", "--model", &m, "--image", "0,1", "--text", tokens], expected);
        fails_with(&["next-token", "--model", &m, "--image", tokens], expected);
    }
    fails_with(&["pmi", "--model", &m, "--image", "0,2", "--text", "0,1"], "out of the vocabulary 0..2");
    fails_with(&["pmi", "--model", &m, "--image", "0,-1", "--text", "0,1"], "('-1') is not a nonnegative integer");
    // The next-token prefix: too long, out of range, negative, not a number.
    fails_with(&["next-token", "--model", &m, "--prefix", "0,1"], "no next token");
    fails_with(&["next-token", "--model", &m, "--prefix", "0,1,1,1"], "no next token");
    fails_with(&["next-token", "--model", &m, "--prefix", "5"], "out of the vocabulary 0..2");
    fails_with(&["next-token", "--model", &m, "--prefix", "-1"], "not a nonnegative integer");
    fails_with(&["next-token", "--model", &m, "--prefix", "x"], "not a nonnegative integer");
    fails_with(&["next-token", "--model", &m, "--image", "0", "--prefix", "0"], "image has 1 tokens");
}

#[test]
fn observations_of_probability_zero_are_said_so_never_printed_as_inf() {
    let zero = write("zero-obs.json", ZERO);
    let disjoint = write("disjoint.json", DISJOINT);
    for json in [false, true] {
        let j = |mut v: Vec<&'static str>| {
            if json {
                v.push("--json");
            }
            v
        };
        let with = |m: &str, rest: Vec<&'static str>| -> Vec<String> {
            let mut v = vec![rest[0].to_string(), "--model".into(), m.to_string()];
            v.extend(j(rest[1..].to_vec()).iter().map(|s| s.to_string()));
            v
        };
        let go = |v: Vec<String>, expected: &str| fails_with(&as_strs(&v), expected);
        go(with(&zero, vec!["posterior", "--text", "1"]), "text has probability zero");
        go(with(&zero, vec!["pmi", "--image", "0", "--text", "1"]), "the text has probability zero");
        go(with(&disjoint, vec!["pmi", "--image", "0", "--text", "1"]), "the pair (image, text) has probability zero");
        go(with(&zero, vec!["next-token", "--image", "1"]), "probability zero");
        // The possible observations still give finite numbers.
        succeeds(&as_strs(&with(&disjoint, vec!["pmi", "--image", "1", "--text", "1"])));
    }
}

#[test]
fn models_with_zeros_give_finite_information_or_a_clear_refusal() {
    // Exact zeros in the transitions: every information quantity is finite (0 log 0 = 0).
    for model in [write("zero-info.json", ZERO), write("disjoint-info.json", DISJOINT)] {
        succeeds(&["info", "--model", &model, "--exact", "--json"]);
        succeeds(&["info", "--model", &model, "--samples", "50", "--json"]);
        succeeds(&["sufficiency", "--model", &model, "--statistic", "map-root", "--exact", "--json"]);
        succeeds(&["sufficiency", "--model", &model, "--statistic", "map-root", "--samples", "50", "--json"]);
        succeeds(&["clip-loss", "--model", &model, "--batch", "2", "--exact", "--json"]);
        succeeds(&["clip-loss", "--model", &model, "--batch", "inf", "--samples", "20", "--json"]);
        // The T7 score is -inf on impossible pairs; the loss is still finite or refused cleanly.
        let r = run(&["clip-loss", "--model", &model, "--batch", "2", "--score", "t7", "--exact", "--json"]);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        no_non_finite(&["clip-loss t7"], &r.stdout);
        if r.code != Some(0) {
            assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
        }
    }
}

#[test]
fn exact_requests_too_large_say_how_large_and_what_instead() {
    let m = big();
    for cmd in [
        vec!["info", "--model", &m, "--exact"],
        vec!["clip-loss", "--model", &m, "--batch", "4", "--exact"],
        vec!["sufficiency", "--model", &m, "--statistic", "map-root", "--exact"],
    ] {
        fails_with(&cmd, "too large");
        let r = run(&cmd);
        assert!(r.stderr.contains("is 1.000e81, above the limit"), "the size is stated: {}", r.stderr);
        assert!(r.stderr.contains("--samples"), "the alternative is named: {}", r.stderr);
    }
    // A small model but a batch whose enumeration explodes.
    let t = tiny();
    fails_with(&["clip-loss", "--model", &t, "--batch", "100000", "--exact"], "too large");
    fails_with(&["clip-loss", "--model", &m, "--batch", "2", "--score", "through:map-root"], "too large");
}

#[test]
fn unknown_names_are_refused_with_the_choices() {
    let m = tiny();
    fails_with(&["clip-loss", "--model", &m, "--batch", "2", "--score", "cosine"], "unknown score 'cosine'");
    fails_with(&["clip-loss", "--model", &m, "--batch", "2", "--score", "pmi:3"], "unknown score");
    fails_with(&["clip-loss", "--model", &m, "--batch", "2", "--score", "perturbed:abc"], "perturbed:AMP");
    fails_with(&["clip-loss", "--model", &m, "--batch", "2", "--score", "perturbed:inf"], "perturbed:AMP");
    fails_with(&["clip-loss", "--model", &m, "--batch", "2", "--score", "perturbed:0.1:x"], "SEED");
    fails_with(&["clip-loss", "--model", &m, "--batch", "2", "--score", "through:magic"], "unknown statistic");
    fails_with(&["sufficiency", "--model", &m, "--statistic", "magic"], "unknown statistic 'magic'");
    fails_with(&["sufficiency", "--model", &m, "--statistic", "first-tokens:99"], "first-tokens");
    fails_with(&["sufficiency", "--model", &m, "--statistic", "first-tokens:x"], "first-tokens");
    fails_with(&["sufficiency", "--model", &m, "--statistic", "layer-posterior:9"], "layer-posterior");
    fails_with(&["sufficiency", "--model", &m, "--statistic", "masked-posterior:-1"], "masked-posterior");
    fails_with(&["sufficiency", "--model", &m, "--statistic", "map-root", "--side", "middle"], "--side");
    fails_with(&["train", "--model", &m, "--class", "lstm", "--seed", "1", "--out", "x"], "--class");
    fails_with(&["emulate", "--model", &m, "--width", "8", "--side", "middle"], "--side");
    fails_with(&["model", "shuffle"], "unrecognized subcommand");
    fails_with(&["bench", "gpu"], "unrecognized subcommand");
    fails_with(&["info", "--model", &m, "--colour"], "unexpected argument");
}

#[test]
fn nonsensical_numbers_are_refused() {
    let m = tiny();
    let out = dir().join("n.safetensors");
    let out = out.to_str().unwrap();
    for (args, expected) in [
        (vec!["info", "--model", &m, "--samples", "0"], "--samples"),
        (vec!["info", "--model", &m, "--samples", "1"], "--samples"),
        (vec!["info", "--model", &m, "--samples", "-5"], "--samples"),
        (vec!["info", "--model", &m, "--samples", "ten"], "--samples"),
        (vec!["info", "--model", &m, "--seed", "-1"], "'-1'"),
        (vec!["clip-loss", "--model", &m, "--batch", "0"], "--batch must be a positive integer"),
        (vec!["clip-loss", "--model", &m, "--batch", "-2"], "--batch"),
        (vec!["clip-loss", "--model", &m, "--batch", "1.5"], "--batch must be a positive integer"),
        (vec!["clip-loss", "--model", &m, "--batch", "many"], "--batch must be a positive integer"),
        (vec!["sufficiency", "--model", &m, "--statistic", "map-root", "--samples", "0"], "--samples"),
        (vec!["sample", "--model", &m, "--n", "ten", "--seed", "1"], "--n"),
        (vec!["demo", "--n", "0"], "--n"),
        (vec!["model", "random", "--states", "2", "--children", "0", "--depth", "1", "--seed", "1"], "--children"),
        (vec!["model", "random", "--states", "2", "--children", "2", "--depth", "0", "--seed", "1"], "--depth"),
        (vec!["model", "random", "--states", "2", "--children", "-2", "--depth", "1", "--seed", "1"], "--children"),
        (
            vec!["model", "random", "--states", "2", "--children", "2", "--depth", "1", "--seed", "1", "--flip", "NaN"],
            "--flip",
        ),
        (
            vec!["model", "random", "--states", "2", "--children", "2", "--depth", "1", "--seed", "1", "--scale", "-1"],
            "--scale",
        ),
        (
            vec![
                "model",
                "random",
                "--states",
                "2",
                "--children",
                "2",
                "--depth",
                "1",
                "--seed",
                "1",
                "--scale",
                "inf",
            ],
            "--scale",
        ),
        (vec!["train", "--model", &m, "--steps", "0", "--seed", "1", "--out", out], "--steps"),
        (vec!["train", "--model", &m, "--steps", "-3", "--seed", "1", "--out", out], "--steps"),
        (vec!["train", "--model", &m, "--n", "0", "--seed", "1", "--out", out], "--n"),
        (vec!["train", "--model", &m, "--n", "3", "--seed", "1", "--out", out], "fewer than one batch"),
        (vec!["train", "--model", &m, "--max-seconds", "0", "--seed", "1", "--out", out], "--max-seconds"),
        (vec!["train", "--model", &m, "--max-seconds", "-1", "--seed", "1", "--out", out], "--max-seconds"),
        (vec!["train", "--model", &m, "--max-seconds", "NaN", "--seed", "1", "--out", out], "--max-seconds"),
        (vec!["eval", "--model", &m, "--checkpoint", out, "--samples", "0"], "--samples"),
        (vec!["eval", "--model", &m, "--checkpoint", out, "--images", "0"], "--images"),
        (vec!["eval", "--model", &m, "--checkpoint", out, "--prompts", "-1"], "--prompts"),
        (vec!["emulate", "--model", &m, "--width", "0"], "--width"),
        (vec!["emulate", "--model", &m, "--width", "8", "--samples", "0"], "--samples"),
        (vec!["emulate", "--model", &m, "--widths", "8,0", "--out", out], "--widths"),
        (vec!["emulate", "--model", &m, "--widths", "8,,16", "--out", out], "--widths"),
        (vec!["emulate", "--model", &m], "give --width"),
        (vec!["bench", "bp", "--batch", "0"], "--batch"),
        (vec!["bench", "bp", "--reps", "0"], "--reps"),
        (vec!["bench", "bp", "--threads", "0"], "--threads"),
        (vec!["bench", "train", "--steps", "0"], "--steps"),
        (vec!["bench", "train", "--batch", "1"], "--batch"),
    ] {
        fails_with(&args, expected);
    }
}

#[test]
fn bad_training_configurations_are_refused() {
    let m = tiny();
    let out = dir().join("cfg.safetensors");
    let out = out.to_str().unwrap();
    for (name, text, expected) in [
        ("cfg-batch0", r#"{"batch": 0}"#, "batch must be at least 1"),
        ("cfg-width0", r#"{"width": 0}"#, "width must be at least 1"),
        ("cfg-heads", r#"{"width": 10, "heads": 3}"#, "not a multiple of heads"),
        ("cfg-lr", r#"{"schedule": {"lr": -1.0}}"#, "lr"),
        ("cfg-holdout", r#"{"holdout": 1.5}"#, "holdout"),
        ("cfg-every0", r#"{"checkpoint_every": 0}"#, "checkpoint_every must be at least 1"),
        ("cfg-unknown", r#"{"batchsize": 8}"#, "batchsize"),
        ("cfg-type", r#"{"batch": "eight"}"#, "invalid config"),
        ("cfg-negative", r#"{"batch": -8}"#, "invalid config"),
        ("cfg-notjson", "batch = 8", "not valid JSON"),
        ("cfg-class", r#"{"class": "lstm"}"#, "invalid config"),
    ] {
        let cfg = write(&format!("{name}.json"), text);
        fails_with(&["train", "--model", &m, "--config", &cfg, "--steps", "2", "--seed", "1", "--out", out], expected);
    }
    fails_with(
        &["train", "--model", &m, "--config", "/nonexistent/cfg.json", "--seed", "1", "--out", out],
        "cannot read config",
    );
    // The BP class needs a model without a trunk.
    let trunk = random_model(
        "trunk.json",
        &["--states", "2", "--children", "2", "--depth", "1", "--shared-depth", "1", "--seed", "1"],
    );
    let r = run(&["train", "--model", &trunk, "--class", "bp", "--steps", "2", "--seed", "1", "--out", out]);
    assert!(!r.stderr.contains("panicked"), "bp class on a trunk model panicked: {}", r.stderr);
    if r.code != Some(0) {
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    }
}

#[test]
fn checkpoints_that_do_not_match_are_refused() {
    let m = tiny();
    let other = random_model("other.json", &["--states", "2", "--children", "2", "--depth", "1", "--seed", "2"]);
    let bigger = random_model("bigger.json", &["--states", "3", "--children", "2", "--depth", "2", "--seed", "2"]);
    let ck = checkpoint(&m, "match.safetensors");
    succeeds(&[
        "eval",
        "--model",
        &m,
        "--checkpoint",
        &ck,
        "--samples",
        "4",
        "--images",
        "4",
        "--prompts",
        "2",
        "--json",
    ]);
    fails_with(&["eval", "--model", &other, "--checkpoint", &ck], "model");
    fails_with(&["eval", "--model", &bigger, "--checkpoint", &ck], "model");
    fails_with(&["eval", "--model", &m, "--checkpoint", "/nonexistent/ck.safetensors"], "cannot read checkpoint");
    let garbage = write("garbage.safetensors", "not a checkpoint at all");
    fails_with(&["eval", "--model", &m, "--checkpoint", &garbage], "checkpoint");
    let bytes = std::fs::read(&ck).unwrap();
    let truncated = dir().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(&["eval", "--model", &m, "--checkpoint", truncated.to_str().unwrap()], "checkpoint");
    let empty = write("empty.safetensors", "");
    fails_with(&["eval", "--model", &m, "--checkpoint", &empty], "checkpoint");
    // --resume: missing, garbage, another model's, another seed's, another configuration's.
    let resume = |model: &str, ck: &str, extra: &[&str]| {
        let mut v = vec!["train", "--model", model, "--class", "mlp", "--seed", "1", "--out", ck, "--resume"];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let copy = |name: &str| {
        let p = dir().join(name);
        std::fs::copy(&ck, &p).unwrap();
        p.to_str().unwrap().to_string()
    };
    fails_with(&as_strs(&resume(&m, "/nonexistent/ck.safetensors", &[])), "cannot read checkpoint");
    fails_with(&as_strs(&resume(&m, &garbage, &[])), "--resume");
    fails_with(&as_strs(&resume(&other, &copy("other-model.safetensors"), &[])), "model");
    let mut seed2 = resume(&m, &copy("seed.safetensors"), &[]);
    seed2[6] = "2".into();
    fails_with(&as_strs(&seed2), "--seed 1, not 2");
    fails_with(&as_strs(&resume(&m, &copy("steps.safetensors"), &["--steps", "7"])), "configuration differs");
    // The checkpoint file is untouched by a refused resume.
    assert_eq!(std::fs::read(dir().join("steps.safetensors")).unwrap(), bytes);
}

#[test]
fn unwritable_outputs_are_refused() {
    let m = tiny();
    let file = write("plain-file", "x");
    // (As root, permissions do not stop a write: a missing folder, or a file used as a folder, does.)
    for target in ["/nonexistent/dir/out", &format!("{file}/out")] {
        fails_with(&["sample", "--model", &m, "--n", "2", "--seed", "1", "--out", target], "cannot write");
        fails_with(
            &["model", "random", "--states", "2", "--children", "2", "--depth", "1", "--seed", "1", "--out", target],
            "cannot write",
        );
        fails_with(
            &["train", "--model", &m, "--class", "mlp", "--steps", "2", "--seed", "1", "--out", target],
            "cannot write",
        );
    }
    // `emulate --widths` creates its folder; it cannot below a file.
    fails_with(
        &["emulate", "--model", &m, "--widths", "8", "--samples", "2", "--out", &format!("{file}/out")],
        "cannot create",
    );
    // An output path that is a folder.
    let d = dir();
    fails_with(&["sample", "--model", &m, "--n", "2", "--seed", "1", "--out", d.to_str().unwrap()], "cannot write");
}

#[test]
fn help_of_every_command_has_an_example() {
    for cmd in [
        vec!["model", "random"],
        vec!["model", "check"],
        vec!["sample"],
        vec!["posterior"],
        vec!["pmi"],
        vec!["next-token"],
        vec!["demo"],
        vec!["emulate"],
        vec!["info"],
        vec!["clip-loss"],
        vec!["sufficiency"],
        vec!["train"],
        vec!["eval"],
        vec!["bench", "bp"],
        vec!["bench", "train"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let r = run(&args);
        assert_eq!(r.code, Some(0), "{cmd:?} --help failed: {}", r.stderr);
        assert!(r.stdout.contains("Example"), "{cmd:?} --help has no example");
    }
}

/// Held-out bad inputs for the newest commands (rates, plot, diffuse, generate, emulate, bench,
/// zero-shot), picked after the rest of this file was written: each fails cleanly and quickly
/// (the sweep's settings are checked before any work).
#[test]
fn newest_commands_refuse_held_out_bad_inputs() {
    let m = tiny();
    let sweep = dir().join("sweep");
    let s = sweep.to_str().unwrap();
    let settings = |name: &str, text: &str| write(name, text);
    let (holdout, negative, batch0, no_n) = (
        settings("rates-holdout.json", r#"{"holdout": 1.5}"#),
        settings("rates-negative.json", r#"{"steps": -1}"#),
        settings("rates-batch0.json", r#"{"batch": 0}"#),
        settings("rates-no-n.json", r#"{"ns": []}"#),
    );
    let (bp_huge, bp_zero) = (
        settings("train-bp-huge.json", r#"{"class": "bp", "bp_states_factor": 100000}"#),
        settings("train-bp-zero.json", r#"{"class": "bp", "bp_states_factor": 0}"#),
    );
    let ckpt = dir().join("never.st");
    let ck = ckpt.to_str().unwrap();
    for (args, expected) in [
        (vec!["rates", "--model", &m, "--class", "bp", "--n", "0", "--out", s], "holds out 0 pairs"),
        (vec!["rates", "--model", &m, "--class", "bp,cnn", "--out", s], "unknown class 'cnn'"),
        (vec!["rates", "--model", &m, "--settings", &holdout, "--out", s], "holdout"),
        (vec!["rates", "--model", &m, "--settings", &negative, "--out", s], "invalid settings"),
        (vec!["rates", "--model", &m, "--settings", &batch0, "--out", s], "batch must be at least 1"),
        (vec!["rates", "--model", &m, "--settings", &no_n, "--out", s], "a sweep needs at least one class, one n"),
        (vec!["rates", "--model", &m, "--out", s, "--resume"], "no sweep to resume"),
        (vec!["diffuse", "--model", &m, "--text", "0,5", "--samples", "10"], "out of the vocabulary"),
        (vec!["diffuse", "--model", &m, "--text", "0,1", "--condition", "statistic:bogus"], "unknown statistic"),
        (
            vec!["generate", "--model", &m, "--image", "0,1", "--from", "ckpt:/nonexistent.st", "--n", "2"],
            "cannot read",
        ),
        (vec!["emulate", "--model", &m, "--widths", "100000000", "--samples", "2", "--out", s], "--widths"),
        (vec!["zero-shot", "--model", &m, "--label", "nope"], "label 'nope'"),
        (vec!["train", "--model", &m, "--config", &bp_huge, "--seed", "1", "--out", ck], "above the supported 16"),
        (vec!["train", "--model", &m, "--config", &bp_zero, "--seed", "1", "--out", ck], "must be at least 1"),
    ] {
        fails_with(&args, expected);
    }
    // `jghm plot` on folders that are not finished sweeps: missing, foreign, corrupt rows.
    let header = "class,n,seed,run_seed,steps,best_step,stopped,held_out_loss,seconds,excess_risk,\
excess_image_to_text,excess_text_to_image,zero_shot_accuracy,exact_score_accuracy,bayes_accuracy,zero_shot_excess_risk";
    let row = |loss: &str| format!("bp,64,0,1,10,10,budget,{loss},0.1,0.05,0.05,0.05,0.9,0.9,0.9,0.01");
    for (name, csv, expected) in [
        ("plot-foreign", "class,n\nbp,3\n".to_string(), "unexpected header"),
        ("plot-short", format!("{header}\nbp,64,0,1,10\n"), "line 2: malformed row"),
        ("plot-nan", format!("{header}\n{}\n{}\n", row("1.5"), row("NaN")), "line 3: malformed row"),
        ("plot-inf", format!("{header}\n{}\n", row("inf")), "line 2: malformed row"),
    ] {
        let d = dir().join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("results.csv"), csv).unwrap();
        fails_with(&["plot", d.to_str().unwrap()], expected);
    }
    fails_with(&["plot", dir().join("no-such-sweep").to_str().unwrap()], "cannot read");
}

/// A malformed command line keeps what clap knows, on one line: the missing arguments by name,
/// the "did you mean" tip, the valid values of an enumeration; exit 2.
#[test]
fn command_line_errors_name_the_argument_and_suggest() {
    let m = tiny();
    for (args, expected) in [
        (vec!["pmi", "--model", &m, "--image", "0,1"], "--text <TEXT>"),
        (vec!["model", "random", "--states", "2"], "--children <CHILDREN>, --depth <DEPTH>"),
        (vec!["sample", "--model", &m, "--n", "2", "--sed", "3"], "a similar argument exists: '--seed'"),
        (vec!["train", "--model", &m, "--class", "cnn", "--out", "x"], "possible values: transformer, bp, mlp"),
        (vec!["smaple"], "a similar subcommand exists: 'sample'"),
    ] {
        let r = run(&args);
        assert_eq!(r.code, Some(2), "{args:?}: exit 2 expected, got {:?}", r.code);
        fails_with(&args, expected);
    }
}

/// Hand-written rows such as 0.3333 are refused by name, and `model check --renormalise --out`
/// divides each row by its sum and writes a model that then passes as it is.
#[test]
fn hand_written_rows_can_be_renormalised() {
    let hand = dir().join("hand.json");
    let fixed = dir().join("hand-fixed.json");
    std::fs::write(
        &hand,
        r#"{"prior":[0.3333,0.3333,0.3333],"image":[{"transitions":[[[0.3333,0.3333,0.3333],[0.5,0.5,0],[0,0.5,0.5]]]}],
            "text":[{"transitions":[[[1,0,0],[0,1,0],[0,0,1]]]}]}"#,
    )
    .unwrap();
    let (h, f) = (hand.to_str().unwrap(), fixed.to_str().unwrap());
    fails_with(&["model", "check", "--model", h], "prior sums to 0.9999");
    succeeds(&["model", "check", "--model", h, "--renormalise", "--out", f]);
    let model = jghm::Jghm::from_json(&std::fs::read_to_string(&fixed).unwrap()).unwrap();
    assert!((model.prior()[0] - 1.0 / 3.0).abs() < 1e-15);
    succeeds(&["model", "check", "--model", f]);
}

/// `sufficiency` on a model whose statistic side cannot be enumerated falls back to the
/// two-stage estimate and says so; a statistic with too many classes for it is refused with the
/// remedy.
#[test]
fn sufficiency_on_a_large_side_falls_back_to_two_stage_sampling() {
    let m = big();
    let out = succeeds(&["sufficiency", "--model", &m, "--statistic", "map-root", "--samples", "300", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["method"].as_str().unwrap().starts_with("two-stage Monte Carlo"), "{v}");
    assert!(v["stderr"].as_f64().unwrap() > 0.0 && v["sufficiency"].as_f64().unwrap().is_finite());
    fails_with(
        &["sufficiency", "--model", &m, "--statistic", "layer-posterior:1", "--samples", "100"],
        "too many classes to sample its fibres",
    );
}
