//! `jghm reproduce risks|prompts|ood`: the paper's simulations (THEORY §8). The risks, the
//! models and the figures live in [`crate::reproduce`]; this file parses, schedules the points,
//! writes the files and prints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::files::write_atomic;
use crate::plot::reproduce as figures;
use crate::plot::{draw, draw_grid};
use crate::reproduce::experiments::{
    paper_flips, point, point_with_bayes, prompts_point, read_csv, standard_model, write_csv, Predictor, Row, Settings,
    OOD_TRAIN_FLIP,
};
use crate::reproduce::learned::{train_learned, Budget, LearnedClass, LearnedModels};
use crate::score::Pmi;

pub const REPRODUCE_HELP: &str = "Model: the standard random family as in the paper: both towers 4 levels x 3 children
(81 tokens), 10 states, uniform root, scale 1, flip ε on both towers; model seeds 1..=k (the
draws are shared across ε). Risks in the paper's conventions: CLIP = l_4(X->Y) + l_4(Y->X) (sum,
K = 4); zero-shot = cross-entropy of the first text token (score classifiers: 32 prompts per
class in risks/ood); denoising = squared error summed over the 81 image leaves (σ = 1);
vision-language = next-token cross-entropy averaged over text positions 2..81.
Default samples give Bayes standard errors below 0.005 at every flip (denoising: 10^6 pairs
with an unbiased control variate; --quick: a tenth of each, standard errors about 3x larger).
Writes DIR/<command>.csv (every number; rewritten after each point, so --resume continues),
DIR/<command>.{svg,png} and DIR/<command>-settings.json (checked by --resume).

Examples:
  jghm reproduce risks --bayes-only --out plots/reproduce
  jghm reproduce risks --flips 0.2 --budget-seconds 120 --out run
  jghm reproduce prompts --prompts 1,2,4,8,16,32,64 --bayes-only --out run
  jghm reproduce ood --quick --budget-seconds 60 --out run --json
  jghm reproduce risks --out run --resume";

#[derive(Subcommand, Debug)]
pub enum ReproduceCommand {
    /// The four risks against ε for Bayes and each learned class (the paper's Fig. 2).
    #[command(after_help = REPRODUCE_HELP)]
    Risks(ReproduceArgs),
    /// Zero-shot risk against the number of prompts M, with fits a + b/M (Figs. 5-6).
    #[command(after_help = REPRODUCE_HELP)]
    Prompts(ReproduceArgs),
    /// Out of distribution: predictors built at ε = 0.2, evaluated at every ε (Figs. 8-9).
    #[command(after_help = REPRODUCE_HELP)]
    Ood(ReproduceArgs),
}

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Flips ε, comma-separated [default: 0.02,0.04,...,0.40; prompts: 0.2].
    #[arg(long, value_delimiter = ',')]
    pub flips: Option<Vec<f64>>,
    /// Only the Bayes predictors (and mis-specified BP for ood, the exact score for prompts).
    #[arg(long)]
    pub bayes_only: bool,
    /// Learned classes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "standard,shallow,guided")]
    pub classes: Vec<LearnedClass>,
    /// Model seeds 1..=k (the spread over them is shown).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub seeds: u64,
    /// Reduced grid (ε = 0.02, 0.1, 0.2, 0.3, 0.4; a tenth of the samples; halved training batches).
    #[arg(long)]
    pub quick: bool,
    /// Monte Carlo samples of every task (batches of 4 pairs for CLIP, images for zero-shot, pairs otherwise).
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub samples: Option<u64>,
    /// Monte Carlo samples of every task for the learned predictors [default: 2000, 1024, 2000, 1000; --quick: 200, 256, 200, 200].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=100_000_000))]
    pub learned_samples: Option<u64>,
    /// Wall-time budget of one learned model (CLIP encoders and both heads), seconds.
    #[arg(long, default_value_t = 120.0)]
    pub budget_seconds: f64,
    /// Numbers of prompts per class for the prompts figure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64,128")]
    pub prompts: Vec<usize>,
    /// Base seed of the Monte Carlo draws.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder.
    #[arg(long, default_value = "reproduce")]
    pub out: PathBuf,
    /// Continue an interrupted run in --out (same settings): finished points are kept.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    Risks,
    Prompts,
    Ood,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Risks => "risks",
            Which::Prompts => "prompts",
            Which::Ood => "ood",
        }
    }
}

pub fn run(c: &ReproduceCommand, json_out: bool) -> Result<()> {
    match c {
        ReproduceCommand::Risks(a) => run_one(Which::Risks, a, json_out),
        ReproduceCommand::Prompts(a) => run_one(Which::Prompts, a, json_out),
        ReproduceCommand::Ood(a) => run_one(Which::Ood, a, json_out),
    }
}

fn flips(which: Which, a: &ReproduceArgs) -> Result<Vec<f64>> {
    let mut f = match (&a.flips, which, a.quick) {
        (Some(f), _, _) => f.clone(),
        (None, Which::Prompts, _) => vec![OOD_TRAIN_FLIP],
        (None, _, true) => vec![0.02, 0.1, 0.2, 0.3, 0.4],
        (None, _, false) => paper_flips(),
    };
    if f.is_empty() {
        bail!("--flips: give at least one flip");
    }
    if let Some(bad) = f.iter().find(|e| !(e.is_finite() && **e > 0.0 && **e <= 1.0)) {
        bail!("--flips: {bad} is not in (0, 1] (at ε = 0 some pairs have probability zero)");
    }
    f.sort_by(|a, b| a.total_cmp(b));
    f.dedup();
    Ok(f)
}

fn check(a: &ReproduceArgs) -> Result<()> {
    if !(a.budget_seconds.is_finite() && a.budget_seconds > 0.0) {
        bail!("--budget-seconds must be a positive number of seconds (got {})", a.budget_seconds);
    }
    if a.prompts.is_empty() || a.prompts.contains(&0) || a.prompts.iter().any(|&m| m > 100_000) {
        bail!("--prompts: give numbers of prompts between 1 and 100000");
    }
    Ok(())
}

/// The settings a resumed run must share with the original.
fn meta(which: Which, a: &ReproduceArgs, flips: &[f64], s: &Settings) -> serde_json::Value {
    json!({
        "command": which.name(),
        "flips": flips,
        "seeds": a.seeds,
        "bayes_only": a.bayes_only,
        "classes": a.classes.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "budget_seconds": a.budget_seconds,
        "quick": a.quick,
        "prompts": if which == Which::Prompts { json!(a.prompts) } else { json!(null) },
        "settings": s,
    })
}

fn prepare(dir: &Path, which: Which, meta: &serde_json::Value, resume: bool) -> Result<Vec<Row>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let meta_path = dir.join(format!("{}-settings.json", which.name()));
    let csv = dir.join(format!("{}.csv", which.name()));
    if resume {
        let text = std::fs::read_to_string(&meta_path)
            .with_context(|| format!("--resume: no run to resume in '{}'", meta_path.display()))?;
        let old: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--resume: '{}' is not valid JSON", meta_path.display()))?;
        if &old != meta {
            bail!("--resume: the run in '{}' has other settings (give the same flags)", dir.display());
        }
        return if csv.exists() { read_csv(&csv) } else { Ok(vec![]) };
    }
    if csv.exists() {
        bail!("'{}' already holds a run: continue it with --resume, or choose another --out", csv.display());
    }
    write_atomic(&meta_path, format!("{meta:#}\n").as_bytes())?;
    Ok(vec![])
}

/// Rows accumulate in memory and the CSV is rewritten (atomically) after every point.
struct Sink {
    rows: Vec<Row>,
    csv: PathBuf,
}

impl Sink {
    fn done(&self, model: &str, flip: f64, seed: u64) -> bool {
        self.rows.iter().any(|r| r.point() == (model.to_string(), flip.to_bits(), seed))
    }
    fn add(&mut self, rows: Vec<Row>) -> Result<()> {
        for r in &rows {
            eprintln!(
                "  {:<10} {:<16} ε = {:<5} seed {}: risk {:.5} ± {:.5}{}",
                r.task,
                r.model,
                r.flip,
                r.seed,
                r.risk,
                r.stderr,
                r.excess_risk
                    .map_or(String::new(), |e| format!(", excess {e:.5} ± {:.5}", r.excess_stderr.unwrap_or(0.0)))
            );
        }
        self.rows.extend(rows);
        write_csv(&self.csv, &self.rows)
    }
}

fn budget(a: &ReproduceArgs) -> Budget {
    Budget { seconds: a.budget_seconds, quick: a.quick }
}

fn train(model: &crate::model::Jghm, class: LearnedClass, a: &ReproduceArgs, seed: u64) -> Result<LearnedModels> {
    eprintln!("training {} (budget {:.0} s) ...", class.name(), a.budget_seconds);
    let m = train_learned(model, class, &budget(a), seed).map_err(anyhow::Error::msg)?;
    eprintln!("  {}", m.describe());
    Ok(m)
}

fn learned<'a>(m: &'a LearnedModels, class: LearnedClass, trained_flip: Option<f64>) -> Predictor<'a> {
    Predictor::Learned {
        name: class.name().to_string(),
        score: m.score(),
        denoiser: m.denoiser(),
        next_token: m.next_token(),
        note: m.describe(),
        trained_flip,
    }
}

/// The training seed of a learned model: a function of the model seed only.
fn train_seed(model_seed: u64) -> u64 {
    model_seed.wrapping_mul(7919).wrapping_add(17)
}

/// Estimated cost: a pilot of the Bayes side (a 1/40 of the samples at the first flip) scaled
/// up, plus the learned budgets and their evaluation (about the Bayes side's cost again each).
fn estimate_cost(which: Which, a: &ReproduceArgs, flips: &[f64], s: &Settings) -> Result<f64> {
    let mut pilot = s.clone();
    pilot.samples = s.samples.map(|n| (n / 40).max(64));
    let model = standard_model(flips[0], 1)?;
    let t0 = Instant::now();
    let _ = point(&model, flips[0], 1, &Predictor::Bayes, &pilot)?;
    let bayes_point = t0.elapsed().as_secs_f64() * s.samples.iter().sum::<usize>() as f64
        / pilot.samples.iter().sum::<usize>() as f64;
    let classes = if a.bayes_only { 0.0 } else { a.classes.len() as f64 };
    let seeds = a.seeds as f64;
    let n = flips.len() as f64;
    Ok(match which {
        Which::Risks => seeds * n * (bayes_point * (1.0 + 2.0 * classes) + classes * a.budget_seconds),
        Which::Ood => seeds * (n * bayes_point * (2.0 + 2.0 * classes) + classes * a.budget_seconds),
        Which::Prompts => seeds * n * (bayes_point * 0.5 * (1.0 + classes) + classes * a.budget_seconds),
    })
}

fn run_one(which: Which, a: &ReproduceArgs, json_out: bool) -> Result<()> {
    check(a)?;
    let t0 = Instant::now();
    let flips = flips(which, a)?;
    let mut settings = Settings::new(a.quick, a.samples.map(|n| n as usize), a.seed);
    if let Some(n) = a.learned_samples {
        settings.learned_samples = [n as usize; 4];
    }
    let meta = meta(which, a, &flips, &settings);
    let done = prepare(&a.out, which, &meta, a.resume)?;
    let cost = estimate_cost(which, a, &flips, &settings)?;
    eprintln!(
        "jghm reproduce {}: {} flips x {} seeds{}; estimated cost {:.1} min on this machine (pilot-timed){}",
        which.name(),
        flips.len(),
        a.seeds,
        if a.bayes_only {
            ", Bayes only".to_string()
        } else {
            format!(", classes {:?}, budget {:.0} s each", a.classes, a.budget_seconds)
        },
        cost / 60.0,
        if done.is_empty() { String::new() } else { format!("; resuming with {} rows", done.len()) }
    );
    let mut sink = Sink { rows: done, csv: a.out.join(format!("{}.csv", which.name())) };
    for seed in 1..=a.seeds {
        match which {
            Which::Risks => risks_seed(a, &flips, seed, &settings, &mut sink)?,
            Which::Ood => ood_seed(a, &flips, seed, &settings, &mut sink)?,
            Which::Prompts => prompts_seed(a, &flips, seed, &settings, &mut sink)?,
        }
    }
    write_csv(&sink.csv, &sink.rows)?;
    let fits = draw_figures(which, a, &sink.rows, &flips)?;
    report(which, a, &sink.rows, &fits, json_out, t0.elapsed().as_secs_f64());
    Ok(())
}

fn risks_seed(a: &ReproduceArgs, flips: &[f64], seed: u64, s: &Settings, sink: &mut Sink) -> Result<()> {
    for &flip in flips {
        let model = standard_model(flip, seed)?;
        if !sink.done("bayes", flip, seed) {
            eprintln!("ε = {flip}, seed {seed}: Bayes");
            sink.add(point(&model, flip, seed, &Predictor::Bayes, s)?)?;
        }
        if a.bayes_only {
            continue;
        }
        for &class in &a.classes {
            if sink.done(class.name(), flip, seed) {
                continue;
            }
            let m = train(&model, class, a, train_seed(seed))?;
            sink.add(point(&model, flip, seed, &learned(&m, class, None), s)?)?;
        }
    }
    Ok(())
}

fn ood_seed(a: &ReproduceArgs, flips: &[f64], seed: u64, s: &Settings, sink: &mut Sink) -> Result<()> {
    let home = standard_model(OOD_TRAIN_FLIP, seed)?;
    let classes: Vec<LearnedClass> = if a.bayes_only { vec![] } else { a.classes.clone() };
    let mut trained: Vec<(LearnedClass, LearnedModels)> = vec![];
    for &flip in flips {
        let model = standard_model(flip, seed)?;
        let wrong = Predictor::Misspecified(&home, OOD_TRAIN_FLIP);
        match (sink.done("bayes", flip, seed), sink.done("misspecified-bp", flip, seed)) {
            (false, false) => {
                eprintln!("ε = {flip}, seed {seed}: Bayes and BP of the ε = {OOD_TRAIN_FLIP} model");
                sink.add(point_with_bayes(&model, flip, seed, &wrong, s)?)?;
            }
            (false, true) => {
                eprintln!("ε = {flip}, seed {seed}: Bayes");
                sink.add(point(&model, flip, seed, &Predictor::Bayes, s)?)?;
            }
            (true, false) => {
                eprintln!("ε = {flip}, seed {seed}: BP of the ε = {OOD_TRAIN_FLIP} model");
                sink.add(point(&model, flip, seed, &wrong, s)?)?;
            }
            (true, true) => {}
        }
        for &class in &classes {
            if sink.done(class.name(), flip, seed) {
                continue;
            }
            if !trained.iter().any(|(c, _)| *c == class) {
                trained.push((class, train(&home, class, a, train_seed(seed))?));
            }
            let m = &trained.iter().find(|(c, _)| *c == class).expect("trained").1;
            sink.add(point(&model, flip, seed, &learned(m, class, Some(OOD_TRAIN_FLIP)), s)?)?;
        }
    }
    Ok(())
}

fn prompts_seed(a: &ReproduceArgs, flips: &[f64], seed: u64, s: &Settings, sink: &mut Sink) -> Result<()> {
    for &flip in flips {
        let model = standard_model(flip, seed)?;
        if !sink.done("pmi", flip, seed) {
            eprintln!("ε = {flip}, seed {seed}: the exact score (PMI) with M prompts");
            let pmi = Pmi { model: &model };
            let note = "the exact score PMI(x, y) by BP".to_string();
            sink.add(prompts_point(&model, flip, seed, &[("pmi", &pmi, note)], &a.prompts, s, true)?)?;
        }
        if a.bayes_only {
            continue;
        }
        for &class in &a.classes {
            if sink.done(class.name(), flip, seed) {
                continue;
            }
            let m = train(&model, class, a, train_seed(seed))?;
            let rows =
                prompts_point(&model, flip, seed, &[(class.name(), m.score(), m.describe())], &a.prompts, s, false)?;
            sink.add(rows)?;
        }
    }
    Ok(())
}

type Fits = Vec<(String, f64, f64, f64)>;

fn budget_note(a: &ReproduceArgs) -> String {
    format!("budget {:.0} s{}", a.budget_seconds, if a.quick { ", quick" } else { "" })
}

fn draw_figures(which: Which, a: &ReproduceArgs, rows: &[Row], flips: &[f64]) -> Result<Fits> {
    let stem = a.out.join(which.name());
    match which {
        Which::Risks => {
            draw_grid(&figures::risk_panels(rows, "Risk", &budget_note(a)), 2, &stem)?;
            Ok(vec![])
        }
        Which::Ood => {
            let title = format!("OOD (built at ε = {OOD_TRAIN_FLIP})");
            draw_grid(&figures::risk_panels(rows, &title, &budget_note(a)), 2, &stem)?;
            Ok(vec![])
        }
        Which::Prompts => {
            let mut all = vec![];
            for &flip in flips {
                let mine: Vec<Row> = rows.iter().filter(|r| r.flip == flip).cloned().collect();
                let (fig, fits) = figures::prompts_figure(&mine, flip, &budget_note(a));
                let name = if flips.len() == 1 { stem.clone() } else { a.out.join(format!("prompts-{flip}")) };
                draw(&fig, &name)?;
                all.extend(fits.into_iter().map(|(m, a_, b, r)| (format!("{m} ε = {flip}"), a_, b, r)));
            }
            Ok(all)
        }
    }
}

fn report(which: Which, a: &ReproduceArgs, rows: &[Row], fits: &Fits, json_out: bool, wall: f64) {
    if json_out {
        let fits: Vec<_> = fits.iter().map(|(m, a, b, r)| json!({ "model": m, "a": a, "b": b, "rms": r })).collect();
        println!("{}", json!({ "rows": rows, "fits": fits, "out": a.out.display().to_string(), "wall_seconds": wall }));
        return;
    }
    println!(
        "{:<10} {:<16} {:>5} {:>4} {:>5} {:>11} {:>9} {:>11} {:>9}  below-Bayes",
        "task", "model", "flip", "seed", "M", "risk", "stderr", "excess", "stderr"
    );
    for r in rows {
        println!(
            "{:<10} {:<16} {:>5} {:>4} {:>5} {:>11.5} {:>9.5} {:>11} {:>9}  {}",
            r.task,
            r.model,
            r.flip,
            r.seed,
            r.prompts.map_or("-".into(), |m| m.to_string()),
            r.risk,
            r.stderr,
            r.excess_risk.map_or("-".into(), |e| format!("{e:.5}")),
            r.excess_stderr.map_or("-".into(), |e| format!("{e:.5}")),
            match r.below_bayes_flag {
                Some(true) => "FLAG: estimation error",
                Some(false) => "no",
                None => "-",
            }
        );
    }
    for (m, a_, b, rms) in fits {
        println!("fit {m}: risk ≈ a + b/M, a = {a_:.5}, b = {b:.5} (rms residual {rms:.2e}; points share prompts, no interval claimed)");
    }
    let bayes = rows.iter().filter(|r| r.model == "bayes");
    if let Some(worst) = bayes.max_by(|x, y| x.stderr.total_cmp(&y.stderr)) {
        println!("Largest Bayes standard error: {:.5} ({} at ε = {}).", worst.stderr, worst.task, worst.flip);
    }
    println!("Wrote {0}/{1}.csv and {0}/{1}.png (+ .svg) in {wall:.1} s.", a.out.display(), which.name());
}
