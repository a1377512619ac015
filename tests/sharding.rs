//! Sharded sweeps: a small sweep of each harness (`jghm rates`, `jghm reproduce risks
//! --bayes-only`, the width sweep of `jghm emulate`) run unsharded and as 3 shards in 3 separate
//! processes, merged by `jghm merge`, and compared with the unsharded run: the settings file byte
//! for byte, the result file byte for byte apart from the wall-time column `seconds` (a
//! measurement of the machine, not a result), and every merged line byte for byte one of the
//! shards' lines. Then the refusals: bad `--shard` arguments, missing, duplicate, foreign,
//! mismatched and unfinished shards, and a shard resumed as another shard.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn jghm() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jghm"))
}

fn run(args: &[&str]) -> Output {
    jghm().args(args).output().expect("the binary runs")
}

fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(out.status.success(), "jghm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `jghm args` and checks that it fails with one line on stderr (no panic) containing `want`.
fn refused(args: &[&str], want: &str) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "jghm {args:?} succeeded");
    assert!(!err.contains("panicked"), "jghm {args:?} panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "jghm {args:?}: not one line: {err}");
    assert!(err.contains(want), "jghm {args:?}: expected '{want}' in: {err}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("jghm-sharding-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tiny_model(root: &Path) -> PathBuf {
    let model = root.join("model.json");
    ok(&["model", "random", "--states", "3", "--children", "2", "--depth", "2", "--seed", "1", "--out", s(&model)]);
    model
}

/// Runs the unsharded command (`args` + `--out DIR/full`) and its 3 shards at once, as separate
/// processes (`--out DIR/shard-K`), then merges the shards (given out of order) into `DIR/merged`.
fn unsharded_shards_and_merge(root: &Path, args: &[&str]) -> (PathBuf, Vec<PathBuf>, PathBuf) {
    let full = root.join("full");
    let shards: Vec<PathBuf> = (1..=3).map(|k| root.join(format!("shard-{k}"))).collect();
    let spawn = |out: &Path, shard: Option<String>| -> Child {
        let mut c = jghm();
        c.args(args).args(["--out", s(out)]);
        if let Some(shard) = shard {
            c.args(["--shard", &shard]);
        }
        c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("the binary starts")
    };
    let mut children = vec![spawn(&full, None)];
    for (k, dir) in shards.iter().enumerate() {
        children.push(spawn(dir, Some(format!("{}/3", k + 1))));
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "jghm {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let merged = root.join("merged");
    ok(&["merge", s(&merged), s(&shards[2]), s(&shards[0]), s(&shards[1])]);
    (full, shards, merged)
}

/// The file's text with the column `seconds` (wall time) blanked on every line.
fn without_wall_time(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "seconds");
    text.lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            if let Some(c) = col {
                fields[c] = "";
            }
            fields.join(",") + "\n"
        })
        .collect()
}

/// The merged result file is the unsharded one (wall times aside), its header and every row
/// byte for byte a line of the shards' files (each used once), and the settings file is the
/// unsharded one, byte for byte.
fn check_merge(full: &Path, shards: &[PathBuf], merged: &Path, settings: &str, results: &str) {
    let read = |p: PathBuf| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(read(merged.join(settings)), read(full.join(settings)), "{settings}");
    assert_eq!(without_wall_time(&merged.join(results)), without_wall_time(&full.join(results)), "{results}");
    let merged_text = String::from_utf8(read(merged.join(results))).unwrap();
    let mut shard_lines: Vec<String> = vec![];
    for dir in shards {
        let text = String::from_utf8(read(dir.join(results))).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), merged_text.lines().next(), "header of {}", dir.display());
        shard_lines.extend(lines.map(String::from));
    }
    let mut merged_lines: Vec<String> = merged_text.lines().skip(1).map(String::from).collect();
    assert!(merged_text.ends_with('\n'));
    assert!(!merged_lines.is_empty());
    merged_lines.sort();
    shard_lines.sort();
    assert_eq!(merged_lines, shard_lines, "{results}: the merged rows are the shards' rows");
}

#[test]
fn rates_merge_equals_the_unsharded_sweep() {
    let root = scratch("rates");
    let model = tiny_model(&root);
    let settings = root.join("settings.json");
    std::fs::write(&settings, r#"{"classes":["bp"],"ns":[160,200],"seeds":2,"steps":40,"eval_every":20}"#).unwrap();
    let args = ["rates", "--model", s(&model), "--settings", s(&settings)];
    let (full, shards, merged) = unsharded_shards_and_merge(&root, &args);
    check_merge(&full, &shards, &merged, "sweep.json", "results.csv");
    for file in ["model.json", "infonce.csv", "fits.json"] {
        assert_eq!(std::fs::read(merged.join(file)).unwrap(), std::fs::read(full.join(file)).unwrap(), "{file}");
    }
    for figure in ["excess_risk.svg", "zero_shot.svg", "infonce.png"] {
        assert!(merged.join(figure).is_file(), "{figure}");
    }
    let sweep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shards[1].join("sweep.json")).unwrap()).unwrap();
    assert_eq!(sweep["shard"], "2/3");
}

#[test]
fn reproduce_merge_equals_the_unsharded_run() {
    let root = scratch("reproduce");
    let args =
        ["reproduce", "risks", "--bayes-only", "--quick", "--flips", "0.1,0.2", "--seeds", "2", "--samples", "200"];
    let (full, shards, merged) = unsharded_shards_and_merge(&root, &args);
    check_merge(&full, &shards, &merged, "risks-settings.json", "risks.csv");
    assert!(merged.join("risks.png").is_file());

    // A shard resumes as itself, not as another shard nor as the unsharded run.
    let resume = |shard: Option<&str>| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--out", s(&shards[1]), "--resume"]);
        if let Some(k) = shard {
            a.extend(["--shard", k]);
        }
        run(&a)
    };
    assert!(resume(Some("2/3")).status.success());
    for other in [Some("3/3"), None] {
        let out = resume(other);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("'shard' differs"), "{other:?}: {err}");
    }

    // An unfinished shard (a point's rows missing) is refused.
    let csv = shards[0].join("risks.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let kept: Vec<&str> = text.lines().take(text.lines().count() - 4).collect();
    std::fs::write(&csv, kept.join("\n") + "\n").unwrap();
    let out = root.join("unfinished");
    refused(&["merge", s(&out), s(&shards[0]), s(&shards[1]), s(&shards[2])], "is unfinished");
}

#[test]
fn emulate_merge_equals_the_unsharded_sweep_and_bad_shards_are_refused() {
    let root = scratch("emulate");
    let model = tiny_model(&root);
    let args = [
        "emulate",
        "--model",
        s(&model),
        "--widths",
        "4,6,8,10",
        "--samples",
        "50",
        "--eval-samples",
        "20",
        "--zero-shot-images",
        "20",
        "--prompts",
        "4",
    ];
    let (full, shards, merged) = unsharded_shards_and_merge(&root, &args);
    check_merge(&full, &shards, &merged, "emulation-settings.json", "emulation.csv");
    // No wall time in this file: byte for byte.
    assert_eq!(
        std::fs::read(merged.join("emulation.csv")).unwrap(),
        std::fs::read(full.join("emulation.csv")).unwrap()
    );
    assert!(merged.join("emulation_error.svg").is_file());

    let bad_out = root.join("bad");
    for bad in ["0/3", "4/3", "x", "1/0", "2/", "1/3/3", " 1/3"] {
        let mut a = args.to_vec();
        a.extend(["--out", s(&bad_out), "--shard", bad]);
        refused(&a, "shard");
    }
    let out = |name: &str| root.join(name);
    let [a, b, c] = [&shards[0], &shards[1], &shards[2]].map(|p| s(p));
    refused(&["merge", s(&out("m1")), a, c], "shard 2/3 is missing");
    refused(&["merge", s(&out("m2")), a, b, b, c], "shard 2/3 is given twice");
    refused(&["merge", s(&out("m3")), a, b, s(&full)], "is not a shard");
    refused(&["merge", s(&out("m4")), s(&root)], "holds no run that can be merged");
    refused(&["merge", s(&merged), a, b, c], "already holds");
    refused(&["merge", a, a, b, c], "both an input and the output");

    // A shard of another N, and a shard of other settings.
    let (n2, seed5) = (out("n2"), out("seed5"));
    let mut other_n = args.to_vec();
    other_n.extend(["--out", s(&n2), "--shard", "2/2"]);
    ok(&other_n);
    refused(&["merge", s(&out("m5")), a, s(&out("n2")), c], "must split one sweep into the same N");
    let mut other_seed = args.to_vec();
    other_seed.extend(["--seed", "5", "--out", s(&seed5), "--shard", "2/3"]);
    ok(&other_seed);
    refused(&["merge", s(&out("m6")), a, s(&out("seed5")), c], "has other settings than");
    for m in ["m1", "m2", "m3", "m5", "m6"] {
        assert!(!out(m).join("emulation.csv").exists(), "{m}: a refused merge wrote results");
    }
}
