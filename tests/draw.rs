//! `jghm draw`: the picture of the tree carries BP's marginals, and bad input ends in one line.

use jghm::evidence::Evidence;
use jghm::model::Jghm;
use std::path::PathBuf;
use std::process::{Command, Output};

fn jghm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jghm")).args(args).output().expect("the binary runs")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jghm-draw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A model written by the CLI, read back for the oracle.
fn model(name: &str, args: &[&str]) -> (PathBuf, Jghm) {
    let path = temp(name);
    let mut all = vec!["model", "random", "--out", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = jghm(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = Jghm::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, m)
}

/// Runs a command that must fail: exit 1, exactly one line on stderr, containing `expected`.
fn fails_with(args: &[&str], expected: &str) {
    let out = jghm(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?} should exit 1; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: one line expected, got:\n{err}");
    assert!(err.contains(expected), "{args:?}: expected '{expected}' in: {err}");
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
}

fn top(p: &[f64]) -> (usize, f64) {
    p.iter().copied().enumerate().fold((0, f64::NEG_INFINITY), |b, (s, v)| if v > b.1 { (s, v) } else { b })
}

#[test]
fn the_svg_shows_every_node_and_the_bp_marginals() {
    let (path, m) = model("tiny.json", &["--states", "3", "--children", "2", "--depth", "2", "--seed", "1"]);
    let out_svg = temp("tree.svg");
    let (image, text) = ([0usize, 2, 1, 1], [2usize, 2, 0, 1]);
    let out = jghm(&[
        "draw",
        "--model",
        path.to_str().unwrap(),
        "--image",
        "0,2,1,1",
        "--text",
        "2,2,0,1",
        "--out",
        out_svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&out_svg).unwrap();
    assert!(svg.starts_with("<svg"), "not an SVG: {}", &svg[..svg.len().min(80)]);
    let nodes = m.tree().nodes.len();
    assert_eq!(nodes, 13);
    assert!(svg.contains(&format!("JGHM tree: {nodes} nodes, 8 leaves")), "the title names the node count");
    // One box per node: the label of its most likely state, from BP.
    let ev = Evidence::tokens(&m, Some(&image), Some(&text)).unwrap();
    let marginals = jghm::bp::marginals(&m, &ev).unwrap();
    let labels = svg.lines().filter(|l| l.trim_start().starts_with("z=")).count();
    assert_eq!(labels, nodes, "one state label per node");
    for (u, p) in marginals.iter().enumerate() {
        let (z, pz) = top(p);
        assert!(svg.contains(&format!("z={z}: {pz:.4}")), "node {u}: 'z={z}: {pz:.4}' not in the SVG");
    }
    // The leaves show the observed tokens.
    for (i, t) in image.iter().enumerate() {
        assert!(svg.contains(&format!("x{i} = {t}")));
    }
    for (i, t) in text.iter().enumerate() {
        assert!(svg.contains(&format!("y{i} = {t}")));
    }
    // --json reports the root's marginal, equal to BP's.
    let out = jghm(&[
        "draw",
        "--model",
        path.to_str().unwrap(),
        "--image",
        "0,2,1,1",
        "--out",
        out_svg.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ev = Evidence::tokens(&m, Some(&image), None).unwrap();
    let root = &jghm::bp::marginals(&m, &ev).unwrap()[0];
    let printed: Vec<f64> = v["root_marginal"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(v["nodes"], 13);
    for (a, b) in printed.iter().zip(root) {
        assert!((a - b).abs() < 1e-12, "{printed:?} vs {root:?}");
    }
    let svg = std::fs::read_to_string(&out_svg).unwrap();
    assert!(svg.contains("y0 = ?"), "an unobserved text leaf shows '?'");
    assert!(svg.contains(&format!("z={}: {:.4}", top(root).0, top(root).1)));
}

#[test]
fn a_png_is_written_and_a_trunk_model_is_drawn() {
    let (path, m) = model(
        "trunk.json",
        &["--states", "2", "--children", "2", "--depth", "1", "--shared-depth", "1", "--seed", "3"],
    );
    let png = temp("trunk.png");
    let out = jghm(&["draw", "--model", path.to_str().unwrap(), "--out", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("({} nodes", m.tree().nodes.len())), "{stdout}");
}

#[test]
fn bad_input_ends_in_one_line_and_exit_1() {
    let (path, _) = model("bad.json", &["--states", "3", "--children", "2", "--depth", "2", "--seed", "1"]);
    let p = path.to_str().unwrap();
    let svg = temp("bad.svg");
    let s = svg.to_str().unwrap();
    fails_with(&["draw", "--model", p, "--image", "0,1", "--out", s], "image");
    fails_with(&["draw", "--model", p, "--image", "0,1,2,7", "--out", s], "image");
    fails_with(&["draw", "--model", p, "--text", "a,b,c,d", "--out", s], "text");
    fails_with(&["draw", "--model", p, "--out", temp("tree.pdf").to_str().unwrap()], ".svg or .png");
    fails_with(&["draw", "--model", p, "--out", "/nonexistent-dir/x/tree.svg"], "tree.svg");
    fails_with(&["draw", "--model", temp("missing.json").to_str().unwrap(), "--out", s], "missing.json");
    assert!(!temp("tree.pdf").exists());
    // Too large to draw: the message gives the size.
    let (big, m) = model("big.json", &["--states", "2", "--children", "3", "--depth", "4", "--seed", "1"]);
    let n = m.tree().nodes.len();
    assert!(n > 200);
    fails_with(&["draw", "--model", big.to_str().unwrap(), "--out", s], &format!("{n} nodes"));
}
