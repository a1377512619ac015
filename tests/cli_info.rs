//! Held-out check of the exact commands: `jghm info --exact` and
//! `jghm sufficiency --statistic map-root --exact` against an independent brute-force
//! computation (every hidden state enumerated by `bp::brute_force`, no BP, no separator) on
//! random tiny models, to 1e-9.

mod common;
mod tiny;

use proptest::prelude::*;
use std::process::Command;
use tiny::*;

fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_jghm")).args(args).output().expect("the binary runs");
    assert!(out.status.success(), "jghm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn write_model(model: &jghm::Jghm, tag: u64) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("jghm-cli-info-{}-{tag}.json", std::process::id()));
    std::fs::write(&path, model.to_json()).unwrap();
    path
}

/// `(I(X;Y), I(MAP(X); Y))` by brute force.
fn brute_force_map_root(model: &jghm::Jghm) -> (f64, f64) {
    let (xs, ys, p) = brute_joint(model);
    let (nx, ny) = (xs.len(), ys.len());
    let mi = brute_mutual_information(nx, ny, &p);
    let s0 = model.root_states();
    let map: Vec<usize> = xs
        .iter()
        .map(|x| {
            let obs = jghm::bp::Tokens { image: Some(x), text: None };
            let post = &jghm::bp::brute_force::enumerate(model, &obs).unwrap().marginals[0];
            (0..s0).fold(0, |best, z| if post[z] > post[best] { z } else { best })
        })
        .collect();
    let mut joint = vec![0.0; s0 * ny];
    for i in 0..nx {
        for j in 0..ny {
            joint[map[i] * ny + j] += p[i * ny + j];
        }
    }
    (mi, brute_mutual_information(s0, ny, &joint))
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn cli_exact_info_and_map_root_sufficiency_match_brute_force(model in arb_any_tiny_model(16.0), tag in any::<u64>()) {
        let path = write_model(&model, tag);
        let file = path.to_str().unwrap();
        let info = run(&["info", "--model", file, "--exact", "--json"]);
        let suff = run(&["sufficiency", "--model", file, "--statistic", "map-root", "--exact", "--json"]);
        std::fs::remove_file(&path).ok();
        let (mi, ti) = brute_force_map_root(&model);
        let get = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("missing key {k}"));
        prop_assert_eq!(info["method"].as_str(), Some("exact enumeration"));
        prop_assert_eq!(get(&info, "stderr"), 0.0);
        prop_assert!((get(&info, "mutual_information") - mi).abs() < 1e-9, "CLI {} vs brute {mi}", info["mutual_information"]);
        prop_assert!((get(&suff, "mutual_information") - mi).abs() < 1e-9);
        prop_assert!((get(&suff, "statistic_information") - ti).abs() < 1e-9, "CLI {} vs brute {ti}", suff["statistic_information"]);
        prop_assert!((get(&suff, "sufficiency") - (mi - ti)).abs() < 1e-9);
        // Entropies too: H(X) from the brute-force marginal.
        let (xs, ys, p) = brute_joint(&model);
        let hx: f64 = (0..xs.len()).map(|i| (0..ys.len()).map(|j| p[i * ys.len() + j]).sum::<f64>())
            .filter(|&q| q > 0.0).map(|q| -q * q.ln()).sum();
        prop_assert!((get(&info, "entropy_image") - hx).abs() < 1e-9);
    }
}

#[test]
fn cli_exact_refused_at_once_when_too_large() {
    let spec = jghm::RandomSpec::symmetric(10, 3, 4, 1);
    let model = spec.build().unwrap();
    let path = write_model(&model, 0);
    let out = Command::new(env!("CARGO_BIN_EXE_jghm"))
        .args(["info", "--model", path.to_str().unwrap(), "--exact"])
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("too large") && err.contains("--samples"), "{err}");
}
