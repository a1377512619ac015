//! Long runs lose nothing: a real `jghm train` is killed with SIGKILL in the
//! middle of its run, several times, after it has written checkpoints. Each time the checkpoint
//! on disk is a complete, consistent file (written atomically: temporary file, then rename) of
//! the right model, seed and configuration, and `--resume` continues it to the end, with the
//! same parameters as a run that was never interrupted.

use jghm::learn::checkpoint::{sha256_hex, Checkpoint};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-long-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn jghm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jghm"));
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn ok(args: &[&str]) {
    let out = jghm().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

const STEPS: &str = "400";

fn train_args<'a>(model: &'a str, config: &'a str, out: &'a str) -> Vec<&'a str> {
    vec!["train", "--model", model, "--config", config, "--steps", STEPS, "--seed", "3", "--out", out]
}

/// The checkpoint at `path`, which must be a complete file of this model and run.
fn consistent(path: &Path, model_hash: &str) -> Checkpoint<f32> {
    let bytes = std::fs::read(path).expect("a checkpoint exists");
    let ck = Checkpoint::<f32>::from_bytes(&bytes).expect("the checkpoint is a complete, valid file");
    ck.check_model(model_hash).expect("the checkpoint names its model");
    assert_eq!(ck.seed, 3);
    assert_eq!(ck.config.schedule.steps, 400);
    assert!(ck.step >= 1 && ck.step <= 400, "step {}", ck.step);
    ck
}

/// Starts a run (fresh or resumed), waits until its checkpoint is at least at `min_step` (and
/// at least `extra` more has passed, to land the kill at varied moments), then SIGKILLs it.
fn kill_mid_run(args: &[&str], out: &Path, hash: &str, min_step: usize, extra: Duration) -> usize {
    let mut child = jghm().args(args).spawn().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed: make it longer");
        }
        if out.exists() {
            if let Ok(ck) = Checkpoint::<f32>::from_bytes(&std::fs::read(out).unwrap_or_default()) {
                if ck.step >= min_step {
                    break;
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint at step {min_step} after 2 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(extra);
    child.kill().unwrap(); // SIGKILL: no chance to clean up.
    child.wait().unwrap();
    let ck = consistent(out, hash);
    assert!(ck.step < 400, "killed before the end");
    ck.step
}

#[test]
fn a_killed_training_run_leaves_a_consistent_checkpoint_and_resumes() {
    let d = dir();
    let model = d.join("model.json");
    let m = model.to_str().unwrap();
    ok(&["model", "random", "--states", "3", "--children", "2", "--depth", "2", "--seed", "5", "--out", m]);
    let hash = sha256_hex(&std::fs::read(&model).unwrap());
    // Checkpoints every 3 steps, so kills land between, near and (sometimes) inside writes.
    let config = d.join("config.json");
    std::fs::write(&config, r#"{"class": "transformer", "width": 16, "layers": 1, "heads": 2, "out": 8, "batch": 32, "checkpoint_every": 3}"#).unwrap();
    let c = config.to_str().unwrap();

    // The reference: the same run, never interrupted.
    let reference = d.join("reference.safetensors");
    ok(&train_args(m, c, reference.to_str().unwrap()));
    let reference = consistent(&reference, &hash);
    assert_eq!(reference.step, 400);

    let out = d.join("killed.safetensors");
    let o = out.to_str().unwrap();
    let mut steps = vec![kill_mid_run(&train_args(m, c, o), &out, &hash, 3, Duration::from_millis(37))];
    // Killed again while resuming, at other moments.
    let mut resume = train_args(m, c, o);
    resume.push("--resume");
    for extra in [0, 11] {
        let last = *steps.last().unwrap();
        steps.push(kill_mid_run(&resume, &out, &hash, last + 3, Duration::from_millis(extra)));
    }
    assert!(steps.windows(2).all(|w| w[1] > w[0]), "each resume made progress: {steps:?}");
    // Resumed to the end: the same parameters as the uninterrupted run.
    ok(&resume);
    let done = consistent(&out, &hash);
    assert_eq!(done.step, 400);
    assert!(
        done.params == reference.params,
        "resumed parameters differ from the uninterrupted run's (kills at steps {steps:?})"
    );
}

// ---- `jghm rates`: a sweep killed between (and during) runs resumes to the same results ----

/// A small sweep: 2 classes x 2 sample sizes x 2 seeds = 8 runs of a fraction of a second each
/// on a 2-state model (long enough that a kill lands between runs).
const RATES_RUNS: usize = 8;

fn rates_args<'a>(model: &'a str, settings: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "rates",
        "--model",
        model,
        "--settings",
        settings,
        "--class",
        "bp,mlp",
        "--n",
        "64,128",
        "--seeds",
        "2",
        "--steps",
        "1000",
        "--seed",
        "9",
        "--out",
        out,
        "--json",
    ]
}

/// The finished runs in `dir/results.csv`, which must parse whole (every row complete), with
/// the wall-clock column zeroed (the only field that may differ between runs).
fn rates_rows(dir: &Path) -> Vec<jghm::rates::Row> {
    let mut rows =
        jghm::rates::results::read(&dir.join("results.csv")).expect("results.csv parses, every row complete");
    for r in &mut rows {
        assert!(r.seconds.is_finite() && r.held_out_loss.is_finite() && r.figures.excess_risk.is_finite(), "{r:?}");
        r.seconds = 0.0;
    }
    rows
}

/// Starts `args`, waits until `dir/results.csv` holds more than `after` rows, SIGKILLs the
/// sweep, and returns the rows it left (fewer than all: killed before the end).
fn kill_sweep_after(args: &[&str], dir: &Path, after: usize) -> Vec<jghm::rates::Row> {
    let mut child = jghm().args(args).spawn().unwrap();
    let csv = dir.join("results.csv");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the sweep ended ({status}) before it could be killed: make its runs longer");
        }
        // Counting lines of whatever is there (results.csv only ever appears whole, by rename).
        let rows = std::fs::read_to_string(&csv).map_or(0, |t| t.lines().count().saturating_sub(1));
        if rows > after {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "no run finished after 3 minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up.
    child.wait().unwrap();
    let rows = rates_rows(dir);
    assert!(rows.len() > after && rows.len() < RATES_RUNS, "killed after {} of {RATES_RUNS} runs", rows.len());
    rows
}

#[test]
fn a_killed_rates_sweep_keeps_its_finished_runs_and_resumes_to_the_same_results() {
    let d = dir().join("rates");
    std::fs::create_dir_all(&d).unwrap();
    let model = d.join("model.json");
    let m = model.to_str().unwrap();
    ok(&["model", "random", "--states", "2", "--children", "2", "--depth", "1", "--seed", "5", "--out", m]);
    // Patience larger than the budget: every run takes all its steps (no early stop).
    let settings = d.join("settings.json");
    std::fs::write(
        &settings,
        r#"{"eval_every": 25, "patience": 100, "batch": 8, "transformer_width": 8, "transformer_layers": 1, "mlp_width": 16, "bp_steps": 1000}"#,
    )
    .unwrap();
    let s = settings.to_str().unwrap();

    // The reference, never interrupted, runs alongside the killed sweep.
    let reference_dir = d.join("reference");
    let reference = jghm().args(rates_args(m, s, reference_dir.to_str().unwrap())).spawn().unwrap();

    let out = d.join("killed");
    let o = out.to_str().unwrap();
    let first = kill_sweep_after(&rates_args(m, s, o), &out, 0);
    // Killed again while resuming, after it has added a run.
    let mut resume = rates_args(m, s, o);
    resume.push("--resume");
    let second = kill_sweep_after(&resume, &out, first.len());
    assert_eq!(second[..first.len()], first[..], "a resumed sweep keeps the finished runs as they were");
    // A fresh sweep into the same folder is refused (it would lose the finished runs).
    let again = jghm().args(rates_args(m, s, o)).output().unwrap();
    assert!(!again.status.success(), "a fresh sweep over a killed one must be refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    ok(&resume);

    let reference = reference.wait_with_output().unwrap();
    assert!(reference.status.success(), "{}", String::from_utf8_lossy(&reference.stderr));
    let (done, expected) = (rates_rows(&out), rates_rows(&reference_dir));
    assert_eq!(expected.len(), RATES_RUNS);
    // Bit-identical: `Row`'s f64 fields compare exactly.
    assert_eq!(
        done,
        expected,
        "resumed sweep (killed after {} and {} runs) differs from the uninterrupted one",
        first.len(),
        second.len()
    );
    // The files written at the end read back as well.
    let fits: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fits.json")).unwrap()).expect("fits.json parses");
    assert!(fits["classes"]["bp"].is_object() && fits["classes"]["mlp"].is_object());
    assert!(jghm::rates::infonce::read(&out.join("infonce.csv")).is_ok_and(|p| !p.is_empty()));
}
