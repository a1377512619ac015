//! `jghm reproduce` on a chosen model family: the standard random family (default), the paper's
//! own draw (`--family paper`, compared with the paper's published Bayes values), or user model
//! files (`--models PATTERN`), and OOD runs that vary one tower (`--vary image|text`).

use std::path::{Path, PathBuf};
use std::process::Command;

use jghm::model::{Level, Part};
use jghm::random_family::paper::PaperSpec;
use jghm::reproduce::experiments::{standard_model, Family, Row};
use jghm::reproduce::published::{compare, published_bayes};
use jghm::reproduce::Task;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jghm-reproduce-family-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_jghm")).args(args).output().expect("the binary runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `jghm plot DIR` redraws the figure `<stem>` of a finished run from its CSV alone: the same SVG,
/// byte for byte, as the run drew (its labels come from the rows' notes, not from the options).
fn redraw_is_the_run_figure(out: &Path, stem: &str) -> String {
    let svg = out.join(format!("{stem}.svg"));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    std::fs::remove_file(&svg).unwrap();
    std::fs::remove_file(out.join(format!("{stem}.png"))).unwrap();
    let r = run(&["plot", s(out)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(&format!("Redrew {}.png", s(&out.join(stem)))), "{}", r.stdout);
    assert!(out.join(format!("{stem}.png")).exists());
    assert_eq!(std::fs::read_to_string(&svg).unwrap(), drawn);
    drawn
}

const TINY: [&str; 7] = ["--bayes-only", "--quick", "--flips", "0.2", "--samples", "64", "--out"];

/// The largest entry difference between two lists of levels of the same shape.
fn largest_difference(a: &[Level], b: &[Level]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut worst: f64 = 0.0;
    for (la, lb) in a.iter().zip(b) {
        assert_eq!(la.transitions.len(), lb.transitions.len());
        for (ma, mb) in la.transitions.iter().zip(&lb.transitions) {
            assert_eq!(ma.shape(), mb.shape());
            worst = ma.iter().zip(mb.iter()).fold(worst, |w, (x, y)| w.max((x - y).abs()));
        }
    }
    worst
}

#[test]
fn the_standard_family_is_the_standard_model_and_splits_by_tower() {
    let both = Family::Standard.model(0.2, 0.2, 3).unwrap();
    assert_eq!(both.levels(Part::Image), standard_model(0.2, 3).unwrap().levels(Part::Image));
    // A model rebuilt from towers renormalises its rows again: equal up to round-off.
    let mixed = Family::Standard.model(0.1, 0.3, 3).unwrap();
    assert!(largest_difference(mixed.levels(Part::Image), standard_model(0.1, 3).unwrap().levels(Part::Image)) < 1e-15);
    assert!(largest_difference(mixed.levels(Part::Text), standard_model(0.3, 3).unwrap().levels(Part::Text)) < 1e-15);
    assert!(largest_difference(mixed.levels(Part::Text), standard_model(0.1, 3).unwrap().levels(Part::Text)) > 0.01);
    assert_eq!(Family::Standard.model_seeds(3).unwrap(), vec![1, 2, 3]);
}

#[test]
fn the_paper_family_is_the_papers_draw_from_seed_42() {
    let ours = Family::Paper.model(0.3, 0.1, 42).unwrap();
    let paper = PaperSpec::paper(0.3, 0.1).build().unwrap();
    assert_eq!(ours.levels(Part::Image), paper.levels(Part::Image));
    assert_eq!(ours.levels(Part::Text), paper.levels(Part::Text));
    assert_eq!(Family::Paper.model_seeds(2).unwrap(), vec![42, 43]);
}

#[test]
fn the_files_family_reads_one_file_per_flip() {
    let d = dir("files");
    for flip in ["0.1", "0.2"] {
        let out = d.join(format!("m-{flip}.json"));
        let r = run(&["model", "paper", "--flip", flip, "--out", s(&out)]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    let family = Family::Files(format!("{}/m-{{flip}}.json", s(&d)));
    let m = family.model(0.2, 0.2, 0).unwrap();
    let paper = PaperSpec::paper(0.2, 0.2).build().unwrap();
    assert!(largest_difference(m.levels(Part::Text), paper.levels(Part::Text)) < 1e-15);
    assert!(largest_difference(m.levels(Part::Image), paper.levels(Part::Image)) < 1e-15);
    assert!(family.model(0.3, 0.3, 0).is_err(), "no file for 0.3");
    assert!(family.model(0.1, 0.2, 0).is_err(), "per-tower flips need a generator");
    assert!(family.model_seeds(2).is_err());
}

#[test]
fn published_values_are_found_by_flip_and_compared_with_three_stderrs_and_one_percent() {
    assert_eq!(published_bayes(Task::Clip, 0.2), Some(0.5813906359769319));
    assert_eq!(published_bayes(Task::ZeroShot, 0.02), Some(0.4092257022857666));
    assert_eq!(published_bayes(Task::Denoise, 0.4), Some(52.75099370416555));
    assert_eq!(published_bayes(Task::Vlm, 0.3), Some(1.5267271995544434));
    assert_eq!(published_bayes(Task::Vlm, 0.03), None);
    assert_eq!(published_bayes(Task::Vlm, 0.42), None);
    let row = |task: &str, risk: f64, stderr: f64, seed: u64| Row {
        task: task.into(),
        model: "bayes".into(),
        flip: 0.2,
        seed,
        prompts: None,
        trained_flip: None,
        risk,
        stderr,
        excess_risk: None,
        excess_stderr: None,
        below_bayes_flag: None,
        units: 1,
        seconds: 0.0,
        note: String::new(),
    };
    let paper = 33.04146856365949;
    // Allowed: 3 · 0.01 + 0.01 · 33.04 = 0.3604.
    let rows = [
        row("denoise", paper + 0.36, 0.01, 42),
        row("denoise", paper - 0.37, 0.01, 42),
        row("denoise", paper, 0.01, 1),
    ];
    let c = compare(&rows);
    assert_eq!(c.len(), 2, "only the paper's tree (seed 42) is compared");
    assert!(c[0].agrees && !c[1].agrees);
    assert!((c[0].difference_in_stderrs - 36.0).abs() < 1e-6);
}

#[test]
fn reproduce_on_the_paper_family_says_so_and_compares() {
    let out = dir("paper");
    let mut args = vec!["reproduce", "risks", "--family", "paper"];
    args.extend(TINY);
    args.push(s(&out));
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("next to its published values"), "{}", r.stdout);
    let compared = r.stdout.lines().filter(|l| l.contains(" 0.2 ") && l.ends_with("yes") || l.ends_with("NO")).count();
    assert_eq!(compared, 4, "{}", r.stdout);
    let csv = std::fs::read_to_string(out.join("risks.csv")).unwrap();
    assert_eq!(csv.lines().skip(1).filter(|l| l.contains(",42,") && l.contains("family paper;")).count(), 4, "{csv}");
    let settings = std::fs::read_to_string(out.join("risks-settings.json")).unwrap();
    assert!(settings.contains("\"family\": \"paper\""), "{settings}");
    let svg = redraw_is_the_run_figure(&out, "risks");
    assert!(svg.contains("Risk (paper family)") && svg.contains("published Bayes value"), "title and published points");
    // Resuming needs the same family.
    let mut again = args.clone();
    again[3] = "standard";
    again.push("--resume");
    let r = run(&again);
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("'family' differs"), "{}", r.stderr);
}

#[test]
fn a_standard_settings_file_without_a_family_still_resumes() {
    let out = dir("legacy");
    let mut args = vec!["reproduce", "risks"];
    args.extend(TINY);
    args.push(s(&out));
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let path = out.join("risks-settings.json");
    let mut settings: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(settings["family"], "standard");
    settings.as_object_mut().unwrap().remove("family");
    std::fs::write(&path, settings.to_string()).unwrap();
    args.push("--resume");
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    // ... but not as a paper-family run.
    let mut paper = args.clone();
    paper.splice(2..2, ["--family", "paper"]);
    let r = run(&paper);
    assert_ne!(r.code, Some(0), "{}", r.stdout);
}

#[test]
fn user_model_files_run_one_per_flip() {
    let d = dir("models");
    for flip in ["0.1", "0.2"] {
        let r = run(&["model", "paper", "--flip", flip, "--out", s(&d.join(format!("m-{flip}.json")))]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    let pattern = format!("{}/m-{{flip}}.json", s(&d));
    let out = d.join("run");
    let r = run(&[
        "reproduce",
        "risks",
        "--models",
        &pattern,
        "--bayes-only",
        "--flips",
        "0.1,0.2",
        "--samples",
        "64",
        "--out",
        s(&out),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let csv = std::fs::read_to_string(out.join("risks.csv")).unwrap();
    assert_eq!(csv.lines().filter(|l| l.contains("family files:")).count(), 8, "{csv}");
}

#[test]
fn ood_can_vary_one_tower() {
    let out = dir("ood");
    let r = run(&[
        "reproduce",
        "ood",
        "--family",
        "paper",
        "--vary",
        "image",
        "--bayes-only",
        "--flips",
        "0.1",
        "--samples",
        "64",
        "--out",
        s(&out),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let csv = std::fs::read_to_string(out.join("ood.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "Bayes and mis-specified BP, four tasks: {csv}");
    assert!(
        rows.iter().all(|l| l.contains("family paper; image flip varied with the text flip fixed at 0.2")),
        "{csv}"
    );
    let svg = redraw_is_the_run_figure(&out, "ood");
    assert!(svg.contains("OOD (built at ε = 0.2; image flip varied) (paper family)"), "the title says what varied");
}

#[test]
fn bad_family_options_are_one_line_errors() {
    let out = dir("bad");
    for (args, expected) in [
        (vec!["reproduce", "risks", "--models", "m.json", "--bayes-only", "--out"], "{flip}"),
        (vec!["reproduce", "risks", "--vary", "image", "--bayes-only", "--out"], "--vary"),
        (vec!["reproduce", "risks", "--family", "papers", "--out"], "papers"),
        (vec!["reproduce", "risks", "--models", "m-{flip}.json", "--family", "paper", "--out"], "--models"),
        (vec!["reproduce", "risks", "--models", "/nonexistent/m-{flip}.json", "--bayes-only", "--out"], "nonexistent"),
    ] {
        let mut args = args;
        args.push(s(&out));
        let r = run(&args);
        assert_ne!(r.code, Some(0), "{args:?}");
        assert_eq!(r.stderr.trim_end().lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(expected), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"));
    }
}

#[test]
fn the_comparison_is_in_the_json_output_too() {
    let out = dir("json");
    let mut args = vec!["reproduce", "risks", "--family", "paper", "--json"];
    args.extend(TINY);
    args.push(s(&out));
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("one JSON line");
    let c = v["paper_comparison"].as_array().expect("a comparison");
    assert_eq!(c.len(), 4);
    assert!(c.iter().any(|x| x["task"] == "denoise" && x["paper"] == 33.04146856365949), "{c:?}");
}

#[test]
fn the_figure_of_the_paper_family_carries_the_published_points() {
    let mut panels = jghm::plot::reproduce::risk_panels(&[], "Risk (paper family)", "");
    jghm::plot::reproduce::add_published(&mut panels, &[0.02, 0.03, 0.2]);
    for (panel, task) in panels.iter().zip(Task::ALL) {
        let published = panel.series.last().expect("the published series");
        let expected: Vec<(f64, f64)> = [0.02, 0.2].iter().map(|&f| (f, published_bayes(task, f).unwrap())).collect();
        assert_eq!(published.points, expected, "{}", task.key());
    }
}

/// The columns of a result row that a run fixed by steps must reproduce exactly (all but the
/// seconds and the note, which records them).
fn numbers(csv: &str) -> Vec<String> {
    csv.lines().map(|l| l.splitn(13, ',').take(12).collect::<Vec<_>>().join(",")).collect()
}

/// `reproduce --steps` cut by `--stop-after` again and again (a job with a time limit) and
/// continued each time with `--resume` writes the same numbers as the uncut run: every cut says
/// where it stopped and exits non-zero, and each continuation picks up the checkpoint.
#[test]
fn a_run_fixed_by_steps_cut_and_resumed_gives_the_uncut_numbers() {
    let d = dir("cut");
    let model = d.join("m-0.2.json");
    let r = run(&[
        "model",
        "random",
        "--states",
        "3",
        "--children",
        "2",
        "--depth",
        "2",
        "--flip",
        "0.2",
        "--out",
        s(&model),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let pattern = format!("{}/m-{{flip}}.json", s(&d));
    let (uncut, cut) = (d.join("uncut"), d.join("cut"));
    let args = |out: &Path| -> Vec<String> {
        let a = "reproduce risks --classes shallow --flips 0.2 --steps 12,5,5 --negatives in-batch --quick --samples 64 --learned-samples 64";
        let mut v: Vec<String> = a.split(' ').map(String::from).collect();
        v.extend(["--models".into(), pattern.clone(), "--out".into(), s(out).into()]);
        v
    };
    let whole = args(&uncut);
    let r = run(&whole.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let mut cuts = 0;
    loop {
        let mut a = args(&cut);
        a.extend(["--stop-after".into(), "0.000001".into()]);
        if cuts > 0 {
            a.push("--resume".into());
        }
        let r = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
        if r.code == Some(0) {
            break;
        }
        assert!(r.stderr.contains("stopped at step") && r.stderr.contains("--resume"), "{}", r.stderr);
        cuts += 1;
        assert!(cuts <= 40, "the run does not advance: {}", r.stderr);
    }
    // CLIP cut at steps 2 (the first call does 2 steps) to 11, each head at 1 to 4.
    assert_eq!(cuts, 10 + 4 + 4);
    let read = |dir: &Path| std::fs::read_to_string(dir.join("risks.csv")).unwrap();
    assert_eq!(numbers(&read(&cut)), numbers(&read(&uncut)));
    assert!(read(&cut).contains("shallow"));
}
