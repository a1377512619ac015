//! Result and settings files of the experiment harnesses (`jghm rates`, `jghm plot`,
//! `jghm reproduce`, `jghm emulate --widths`).
//!
//! 1. The committed outputs under `plots/` read back and write again byte for byte (the serde
//!    CSV keeps the number formats the files were written with).
//! 2. A resume or a redraw given a malformed, truncated, non-UTF-8, NaN-bearing or mismatched
//!    file ends in exit 1 and one line on stderr naming the file and the line or field, and the
//!    bad file is left as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jghm::runs::{csv_bytes, read_csv, CsvRow};

fn committed<R: CsvRow>(path: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let before = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows: Vec<R> = read_csv(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!rows.is_empty(), "{}: no rows", path.display());
    let after = csv_bytes(&rows, &path).unwrap();
    if before != after {
        let (b, a) = (String::from_utf8_lossy(&before), String::from_utf8_lossy(&after));
        let first = b.lines().zip(a.lines()).position(|(x, y)| x != y);
        panic!("{} is not reproduced byte for byte; first differing line {first:?}", path.display());
    }
}

#[test]
fn committed_result_files_round_trip_byte_for_byte() {
    committed::<jghm::rates::Row>("plots/results.csv");
    committed::<jghm::rates::infonce::Point>("plots/infonce.csv");
    committed::<jghm::emulate::SweepRow>("plots/emulation.csv");
    let reproduce = Path::new(env!("CARGO_MANIFEST_DIR")).join("plots/reproduce");
    let mut seen = 0;
    for entry in std::fs::read_dir(&reproduce).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "csv") {
            committed::<jghm::reproduce::experiments::Row>(
                p.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().to_str().unwrap(),
            );
            seen += 1;
        }
    }
    assert!(seen >= 4, "the committed reproduce CSVs: {seen}");
}

struct Run {
    code: Option<i32>,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out =
        Command::new(env!("CARGO_BIN_EXE_jghm")).args(args).stdin(Stdio::null()).output().expect("the binary runs");
    Run { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-result-files-{}", std::process::id())).join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `args` fails with exit 1 and one line on stderr containing each of `expected`; `bad` is
/// unchanged.
fn refused(args: &[&str], bad: &Path, expected: &[&str]) {
    let before = std::fs::read(bad).unwrap();
    let r = run(args);
    assert_eq!(r.code, Some(1), "{args:?} should fail with exit 1; stderr: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{args:?} panicked: {}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{args:?}: one line on stderr expected, got:\n{}", r.stderr);
    for e in expected {
        assert!(r.stderr.contains(e), "{args:?}: expected '{e}' in: {}", r.stderr);
    }
    assert_eq!(std::fs::read(bad).unwrap(), before, "{args:?} changed {}", bad.display());
}

const RESULTS_HEADER: &str = "class,n,seed,run_seed,steps,best_step,stopped,held_out_loss,seconds,excess_risk,\
excess_image_to_text,excess_text_to_image,zero_shot_accuracy,exact_score_accuracy,bayes_accuracy,zero_shot_excess_risk";

fn results_row(loss: &str) -> String {
    format!("bp,64,0,1,10,10,budget,{loss},0.1,0.05,0.05,0.05,0.9,0.9,0.9,0.01")
}

/// Bad `results.csv` files: (name, bytes, what the message must say).
fn bad_results() -> Vec<(&'static str, Vec<u8>, Vec<&'static str>)> {
    let good = results_row("1.5");
    vec![
        (
            "nan",
            format!("{RESULTS_HEADER}\n{good}\n{}\n", results_row("NaN")).into_bytes(),
            vec!["line 3", "held_out_loss", "NaN"],
        ),
        ("truncated", format!("{RESULTS_HEADER}\n{good}\nbp,64,0,1,1").into_bytes(), vec!["line 3", "5 fields"]),
        (
            "text-in-number",
            format!("{RESULTS_HEADER}\n{}\n", results_row("x1")).into_bytes(),
            vec!["line 2", "held_out_loss"],
        ),
        (
            "class",
            format!("{RESULTS_HEADER}\n{}\n", good.replacen("bp", "cnn", 1)).into_bytes(),
            vec!["line 2", "unknown class 'cnn'"],
        ),
        (
            "not-utf8",
            [
                format!("{RESULTS_HEADER}\n").as_bytes(),
                b"bp,64,0,1,10,10,\xff\xfe,1.5,0.1,0.05,0.05,0.05,0.9,0.9,0.9,0.01\n",
            ]
            .concat(),
            vec!["line 2", "stopped", "UTF-8"],
        ),
        ("foreign", b"a,b\n1,2\n".to_vec(), vec!["unexpected header"]),
        ("empty", vec![], vec!["unexpected header"]),
    ]
}

fn tiny_model(d: &Path) -> PathBuf {
    let m = d.join("tiny.json");
    let r =
        run(&["model", "random", "--states", "2", "--children", "2", "--depth", "1", "--seed", "1", "--out", s(&m)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    m
}

#[test]
fn rates_resume_refuses_bad_result_and_settings_files_and_keeps_them() {
    let root = dir("rates");
    let model = tiny_model(&root);
    let options = jghm::rates::run::SweepOptions {
        classes: Some(vec![jghm::learn::Class::Bp]),
        ns: Some(vec![200]),
        seeds: Some(1),
        seed: 1,
        ..Default::default()
    };
    let settings = options.settings().unwrap();
    let hash = jghm::learn::checkpoint::sha256_hex(&std::fs::read(&model).unwrap());
    let sweep_json = serde_json::json!({ "settings": settings, "model_sha256": hash });
    let args = |out: &Path| -> Vec<String> {
        ["rates", "--model", s(&model), "--class", "bp", "--n", "200", "--seeds", "1", "--out", s(out), "--resume"]
            .map(String::from)
            .to_vec()
    };
    for (name, bytes, expected) in bad_results() {
        let out = root.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("sweep.json"), format!("{sweep_json:#}\n")).unwrap();
        std::fs::write(out.join("results.csv"), &bytes).unwrap();
        let a = args(&out);
        let mut expected = expected.clone();
        expected.push("results.csv");
        refused(&a.iter().map(String::as_str).collect::<Vec<_>>(), &out.join("results.csv"), &expected);
    }
    let mut other_model = sweep_json.clone();
    other_model["model_sha256"] = "0".repeat(64).into();
    let mut other_ns = sweep_json.clone();
    other_ns["settings"]["ns"] = serde_json::json!([300]);
    for (name, bytes, expected) in [
        ("settings-garbage", b"{\"settings\": [1, 2".to_vec(), vec!["sweep.json", "is not valid JSON", "line 1"]),
        ("settings-not-utf8", b"{\"model_sha256\": \"\xff\"}".to_vec(), vec!["sweep.json", "is not valid JSON"]),
        ("settings-model", format!("{other_model:#}").into_bytes(), vec!["ran on another model"]),
        ("settings-ns", format!("{other_ns:#}").into_bytes(), vec!["other settings", "'settings.ns' differs"]),
    ] {
        let out = root.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("sweep.json"), &bytes).unwrap();
        std::fs::write(out.join("results.csv"), format!("{RESULTS_HEADER}\n{}\n", results_row("1.5"))).unwrap();
        let a = args(&out);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        refused(&a, &out.join("sweep.json"), &expected);
        assert_eq!(
            std::fs::read_to_string(out.join("results.csv")).unwrap(),
            format!("{RESULTS_HEADER}\n{}\n", results_row("1.5")),
            "{name}: the finished runs were changed"
        );
    }
}

#[test]
fn plot_refuses_bad_result_files_and_keeps_them() {
    let root = dir("plot");
    for (name, bytes, expected) in bad_results() {
        let out = root.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("results.csv"), &bytes).unwrap();
        refused(&["plot", s(&out)], &out.join("results.csv"), &expected);
    }
    // A good sweep with a bad T3 table or a bad emulation sweep beside it: refused before
    // anything is written.
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("plots/results.csv");
    for (name, file, bytes, expected) in [
        ("infonce-nan", "infonce.csv", "score,k,loss_minus_log_k,limit,rate_constant\nPMI,2,NaN,1,1\n", vec!["infonce.csv", "line 2", "'loss_minus_log_k' is NaN"]),
        ("infonce-short", "infonce.csv", "score,k,loss_minus_log_k,limit,rate_constant\nPMI,2,1\n", vec!["infonce.csv", "line 2", "3 fields"]),
        ("emulation-bad", "emulation.csv", "width,parameters,layers,max_abs_error,mean_abs_error,excess_risk,excess_risk_stderr,zero_shot_accuracy,zero_shot_accuracy_stderr,oracle_zero_shot_accuracy,bayes_accuracy\n4,1,1,1e0,1e0,inf,1e0,0.5,0.1,0.5,0.5\n", vec!["emulation.csv", "line 2", "'excess_risk' is inf"]),
        ("emulation-foreign", "emulation.csv", "width\n4\n", vec!["emulation.csv", "unexpected header"]),
    ] {
        let out = root.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::copy(&committed, out.join("results.csv")).unwrap();
        std::fs::write(out.join(file), bytes).unwrap();
        refused(&["plot", s(&out)], &out.join(file), &expected);
        assert!(!out.join("fits.json").exists(), "{name}: fits.json written before the inputs were checked");
    }
}

#[test]
fn reproduce_resume_refuses_bad_result_and_settings_files_and_keeps_them() {
    let root = dir("reproduce");
    let fresh = root.join("fresh");
    let base = ["reproduce", "risks", "--bayes-only", "--quick", "--flips", "0.2", "--samples", "64"];
    let with_out = |out: &Path, resume: bool| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|a| a.to_string()).collect();
        v.extend(["--out".to_string(), s(out).to_string()]);
        if resume {
            v.push("--resume".into());
        }
        v
    };
    let a = with_out(&fresh, false);
    let r = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let settings = std::fs::read(fresh.join("risks-settings.json")).unwrap();
    let csv = std::fs::read_to_string(fresh.join("risks.csv")).unwrap();
    let (header, first) = (csv.lines().next().unwrap(), csv.lines().nth(1).unwrap());
    let nan_risk = {
        let mut f: Vec<&str> = first.split(',').collect();
        f[6] = "nan";
        f.join(",")
    };
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("nan", format!("{header}\n{first}\n{nan_risk}\n").into_bytes(), vec!["risks.csv", "line 3", "'risk' is nan"]),
        (
            "truncated",
            format!("{header}\n{first}\nclip,bayes,0.2").into_bytes(),
            vec!["risks.csv", "line 3", "3 fields"],
        ),
        (
            "task",
            format!("{header}\n{}\n", first.replacen("clip", "clipp", 1)).into_bytes(),
            vec!["line 2", "unknown task 'clipp'"],
        ),
        (
            "flag",
            format!("{header}\n{}\n", first.replacen(",,,,", ",,,maybe,", 1)).into_bytes(),
            vec!["line 2", "below_bayes_flag"],
        ),
        (
            "not-utf8",
            [format!("{header}\n").as_bytes(), &first.as_bytes()[..first.len() - 3], b"\xff\n"].concat(),
            vec!["line 2", "note", "UTF-8"],
        ),
    ];
    for (name, bytes, expected) in cases {
        let out = root.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("risks-settings.json"), &settings).unwrap();
        std::fs::write(out.join("risks.csv"), &bytes).unwrap();
        let a = with_out(&out, true);
        refused(&a.iter().map(String::as_str).collect::<Vec<_>>(), &out.join("risks.csv"), &expected);
    }
    let text = String::from_utf8(settings.clone()).unwrap();
    for (name, bytes, expected) in [
        ("settings-flips", text.replace("0.2", "0.3").into_bytes(), vec!["other settings", "'flips' differs"]),
        (
            "settings-truncated",
            settings[..settings.len() / 2].to_vec(),
            vec!["risks-settings.json", "is not valid JSON"],
        ),
    ] {
        let out = root.join(name);
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("risks-settings.json"), &bytes).unwrap();
        std::fs::write(out.join("risks.csv"), &csv).unwrap();
        let a = with_out(&out, true);
        refused(&a.iter().map(String::as_str).collect::<Vec<_>>(), &out.join("risks-settings.json"), &expected);
        assert_eq!(std::fs::read_to_string(out.join("risks.csv")).unwrap(), csv, "{name}: the finished rows changed");
    }
    // A resume of the untouched run redoes nothing and rewrites the same rows.
    let a = with_out(&fresh, true);
    let r = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("resuming with 4 rows"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(fresh.join("risks.csv")).unwrap(), csv);
}

/// A learned row's note names its CLIP learning rate (`lr 1e-3 cosine`), and the redrawn
/// figure's legend carries it, so that two runs differing only in the rate are told apart;
/// rows written before the note said it keep the legend they had; rows of the paper's encoder
/// say so as well.
#[test]
fn the_legend_names_the_clip_learning_rate_when_the_rows_record_it() {
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("plots/reproduce/risks-standard-paper-clip.csv");
    let rows = std::fs::read_to_string(committed).unwrap();
    assert!(!rows.contains(" lr "), "the committed rows predate the rate in the note");
    let legend = |csv: &str| {
        let d = dir("legend-lr");
        std::fs::write(d.join("risks.csv"), csv).unwrap();
        let r = run(&["plot", s(&d)]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        std::fs::read_to_string(d.join("risks.svg")).unwrap()
    };
    let with_rate = rows.replace("K = 4 independent)", "K = 4 independent; lr 1e-3 cosine)");
    assert_ne!(with_rate, rows);
    assert!(legend(&with_rate).contains("standard (3000 CLIP steps, lr 1e-3)"));
    let old = legend(&rows);
    assert!(old.contains("standard (3000 CLIP steps)") && !old.contains("lr 1e-3"));
    // Rows of the paper's encoder (`--encoder paper`) say so in the legend too.
    let paper = with_rate
        .replace("standard encoders (", "standard encoders (the paper's encoder with 1 attention head; learned pool; ");
    assert_ne!(paper, with_rate);
    let svg = legend(&paper).replace("&apos;", "'").replace("&#39;", "'");
    assert!(svg.contains("standard (3000 CLIP steps, lr 1e-3, the paper's encoder)"), "{svg}");
}
