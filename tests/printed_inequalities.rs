//! An inequality the tool prints carries its verdict: it holds as computed, holds within Monte
//! Carlo error, or is violated; one that does not apply is not printed as an inequality.

use jghm::info::{fixed, Estimate, Verdict};
use std::process::Command;

fn mc(value: f64, stderr: f64) -> Estimate {
    Estimate { value, stderr, ci95: [value - 1.96 * stderr, value + 1.96 * stderr] }
}

#[test]
fn verdicts_follow_the_standard_errors_of_both_sides() {
    let exact = Estimate::exact;
    assert_eq!(exact(0.1).at_most(&exact(0.2)), Verdict::Holds);
    assert_eq!(exact(0.2).at_most(&exact(0.2)), Verdict::Holds);
    assert_eq!(exact(0.2 + 1e-9).at_most(&exact(0.2)), Verdict::Violated);
    // 0.401843 ± 0.022758 against the exact 0.399324: a difference of 0.11 standard errors.
    assert_eq!(mc(0.401843, 0.022758).at_most(&exact(0.399324)), Verdict::HoldsWithinError);
    // 3 standard errors of the difference √(0.03² + 0.04²) = 0.05: 0.15 is the edge.
    assert_eq!(mc(1.149, 0.03).at_most(&mc(1.0, 0.04)), Verdict::HoldsWithinError);
    assert_eq!(mc(1.151, 0.03).at_most(&mc(1.0, 0.04)), Verdict::Violated);
}

#[test]
fn values_that_round_to_zero_print_without_a_sign() {
    assert_eq!(fixed(-1e-15, 12), "0.000000000000");
    assert_eq!(fixed(-0.0, 3), "0.000");
    assert_eq!(fixed(-0.5, 3), "-0.500");
    assert_eq!(mc(-1e-9, 1e-3).display(4), "0.0000 ± 0.0010");
    assert_eq!(Estimate::exact(2.5).display(2), "2.50");
}

#[test]
fn zero_shot_on_the_root_prints_no_inequality_and_a_channel_label_prints_verdicts() {
    let dir = std::env::temp_dir().join(format!("jghm-inequalities-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.json");
    let bin = env!("CARGO_BIN_EXE_jghm");
    let run = |args: &[&str]| {
        let out = Command::new(bin).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let m = model.to_str().unwrap();
    run(&["model", "random", "--states", "3", "--children", "2", "--depth", "2", "--seed", "1", "--out", m]);
    let root = run(&["zero-shot", "--model", m, "--label", "root", "--score", "perturbed:0.5"]);
    assert!(root.contains("T8 not applicable"), "{root}");
    assert!(!root.contains("<=") && !root.contains('≤'), "an inequality printed where T8 does not apply:\n{root}");
    let token = run(&["zero-shot", "--model", m, "--label", "text-token:0", "--score", "perturbed:0.5"]);
    let t8: Vec<&str> = token.lines().filter(|l| l.contains("T8:")).collect();
    assert_eq!(t8.len(), 2, "{token}");
    assert!(t8.iter().all(|l| l.contains(": holds")), "{token}");
}
