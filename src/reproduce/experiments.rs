//! The experiments behind `jghm reproduce risks|prompts|ood` (THEORY §8): the standard model at
//! each flip, the rows of result numbers (one per task, predictor, flip and model seed), their
//! CSV file, and the `a + b/M` fit of the prompts figure.
//!
//! A *point* is one predictor (Bayes, mis-specified BP, or one learned class) on one data model
//! (flip, seed): its four task rows are computed together and written together, so an
//! interrupted run resumes at the first unfinished point.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::bayes::{BayesDenoiser, BayesNextToken};
use super::risks::{self, Classifier, PredictorRisk, Task, TaskRisk};
use super::{Denoiser, NextToken};
use crate::downstream::noise::DENOISING;
use crate::files::write_atomic;
use crate::model::Jghm;
use crate::random_family::RandomSpec;
use crate::score::{Pmi, Score};

/// The paper's model at flip `ε`: both towers 4 levels × 3 children (81 tokens), 10 states,
/// uniform root, scale 1, the draws fixed by `seed` alone (shared across flips).
pub fn standard_model(flip: f64, seed: u64) -> Result<Jghm> {
    Ok(RandomSpec { flip, ..RandomSpec::symmetric(10, 3, 4, seed) }.build()?)
}

/// The paper's flips `0.02, 0.04, …, 0.40`.
pub fn paper_flips() -> Vec<f64> {
    (1..=20).map(|i| (i as f64 * 0.02 * 100.0).round() / 100.0).collect()
}

/// The flip the out-of-distribution encoders (and mis-specified BP) are trained at.
pub const OOD_TRAIN_FLIP: f64 = 0.2;

/// Monte Carlo sizes and conventions of every risk.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// Batches of `K` pairs for CLIP; images for zero-shot; pairs for denoising and VLM.
    pub samples: [usize; 4],
    pub k: usize,
    pub sigma: f64,
    /// The same for learned predictors (and mis-specified BP), evaluated with the data model's
    /// Bayes predictor on their own samples (the excess stays paired): a learned network costs
    /// far more per sample than BP, and the paired excess needs fewer samples.
    pub learned_samples: [usize; 4],
    /// Prompts per class of a score's zero-shot classifier in the risks and OOD figures.
    pub risk_prompts: usize,
    /// Base seed of the Monte Carlo draws.
    pub seed: u64,
}

impl Settings {
    /// Default sizes (measured on the standard model, README "Reproducing the paper"): Bayes
    /// standard errors below 0.005 at every flip of the paper's grid. The denoising risk (a sum
    /// over 81 leaves, ~5-55) has a per-pair standard deviation up to ~6.3, ~3.9 after its
    /// control variate ([`super::control_variate`]): 10^6 pairs give a standard error ≲ 0.004.
    /// `quick`: a tenth of each.
    pub fn new(quick: bool, samples: Option<usize>, seed: u64) -> Settings {
        let full = [32_000, 4_096, 1_000_000, 4_000];
        let samples = match samples {
            Some(n) => [n; 4],
            None if quick => full.map(|n| n / 10),
            None => full,
        };
        let learned = match (samples, quick) {
            (_, true) => [200, 256, 200, 200],
            _ => [2_000, 1_024, 2_000, 1_000],
        };
        let learned_samples = std::array::from_fn(|i| learned[i].min(samples[i]));
        Settings { samples, learned_samples, k: 4, sigma: DENOISING.sigma, risk_prompts: 32, seed }
    }
    fn n(&self, task: Task) -> usize {
        self.samples[task_index(task)]
    }
    fn n_learned(&self, task: Task) -> usize {
        self.learned_samples[task_index(task)]
    }
    /// The Monte Carlo seed of a task: the same draws at every flip and for every predictor.
    fn seed_of(&self, task: Task) -> u64 {
        self.seed.wrapping_mul(16).wrapping_add(task_index(task) as u64)
    }
}

fn task_index(task: Task) -> usize {
    Task::ALL.iter().position(|t| *t == task).expect("a task")
}

/// One number of a figure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub task: String,
    /// `bayes`, `misspecified-bp`, `pmi` (a prompt classifier of the exact score), or a learned class.
    pub model: String,
    pub flip: f64,
    pub seed: u64,
    /// Prompts per class (zero-shot classifiers built from a score).
    pub prompts: Option<usize>,
    /// The flip the predictor was built at, when not the data's (OOD).
    pub trained_flip: Option<f64>,
    pub risk: f64,
    pub stderr: f64,
    /// Predictor minus Bayes, paired on the same samples.
    pub excess_risk: Option<f64>,
    pub excess_stderr: Option<f64>,
    /// The risk is below Bayes beyond its 95% interval: an estimation error.
    pub below_bayes_flag: Option<bool>,
    /// Monte Carlo units the standard error is over.
    pub units: usize,
    pub seconds: f64,
    /// How the predictor was obtained (training budget and steps for learned ones).
    pub note: String,
}

const HEADER: &str = "task,model,flip,seed,prompts,trained_flip,risk,stderr,excess_risk,excess_stderr,below_bayes_flag,units,seconds,note";

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(String::new(), T::to_string)
}

impl Row {
    fn to_csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            self.task,
            self.model,
            self.flip,
            self.seed,
            opt(&self.prompts),
            opt(&self.trained_flip),
            self.risk,
            self.stderr,
            opt(&self.excess_risk),
            opt(&self.excess_stderr),
            opt(&self.below_bayes_flag),
            self.units,
            self.seconds,
            self.note.replace([',', '\n'], ";")
        )
    }

    fn from_csv(line: &str) -> Option<Row> {
        let c: Vec<&str> = line.splitn(14, ',').collect();
        if c.len() != 14 {
            return None;
        }
        fn maybe<T: std::str::FromStr>(s: &str) -> Option<Option<T>> {
            if s.is_empty() {
                Some(None)
            } else {
                s.parse().ok().map(Some)
            }
        }
        Some(Row {
            task: Task::parse(c[0])?.key().to_string(),
            model: c[1].to_string(),
            flip: c[2].parse().ok()?,
            seed: c[3].parse().ok()?,
            prompts: maybe(c[4])?,
            trained_flip: maybe(c[5])?,
            risk: c[6].parse().ok()?,
            stderr: c[7].parse().ok()?,
            excess_risk: maybe(c[8])?,
            excess_stderr: maybe(c[9])?,
            below_bayes_flag: if c[10].is_empty() { None } else { Some(c[10].parse().ok()?) },
            units: c[11].parse().ok()?,
            seconds: c[12].parse().ok()?,
            note: c[13].to_string(),
        })
    }

    /// The key of the point this row belongs to.
    pub fn point(&self) -> (String, u64, u64) {
        (self.model.clone(), self.flip.to_bits(), self.seed)
    }
}

/// Writes every row to `path`, atomically.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r.to_csv());
        text.push('\n');
    }
    Ok(write_atomic(path, text.as_bytes())?)
}

/// Reads a file written by [`write_csv`]; the error names the bad line.
pub fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(HEADER) {
        bail!("'{}' is not a result file of `jghm reproduce` (unexpected header)", path.display());
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Row::from_csv(l).with_context(|| format!("'{}' line {}: malformed row", path.display(), i + 2)))
        .collect()
}

/// What a point evaluates besides the data model's Bayes predictor.
pub enum Predictor<'a> {
    /// The Bayes predictors of the data model only.
    Bayes,
    /// BP of another model (the same seed at another flip) applied to the data.
    Misspecified(&'a Jghm, f64),
    /// A learned model: its score, denoiser and next-token model, and how it was trained.
    Learned {
        name: String,
        score: &'a dyn Score,
        denoiser: &'a dyn Denoiser,
        next_token: &'a dyn NextToken,
        note: String,
        trained_flip: Option<f64>,
    },
}

/// The rows of one task's estimate: Bayes (when `with_bayes`) and each predictor.
fn rows_of(
    r: &TaskRisk,
    names: &[(String, Option<f64>, String)],
    flip: f64,
    seed: u64,
    with_bayes: bool,
    seconds: f64,
) -> Vec<Row> {
    let task = r.task.key().to_string();
    let mut out = vec![];
    if with_bayes {
        out.push(Row {
            task: task.clone(),
            model: "bayes".into(),
            flip,
            seed,
            prompts: None,
            trained_flip: None,
            risk: r.bayes.value,
            stderr: r.bayes.stderr,
            excess_risk: None,
            excess_stderr: None,
            below_bayes_flag: None,
            units: r.units,
            seconds,
            note: r.method.clone(),
        });
    }
    for (p, (name, trained, note)) in r.predictors.iter().zip(names) {
        out.push(predictor_row(p, &task, name, *trained, note, flip, seed, r.units, seconds));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn predictor_row(
    p: &PredictorRisk,
    task: &str,
    name: &str,
    trained_flip: Option<f64>,
    note: &str,
    flip: f64,
    seed: u64,
    units: usize,
    seconds: f64,
) -> Row {
    Row {
        task: task.into(),
        model: name.into(),
        flip,
        seed,
        prompts: p.prompts,
        trained_flip,
        risk: p.risk.value,
        stderr: p.risk.stderr,
        excess_risk: Some(p.excess.value),
        excess_stderr: Some(p.excess.stderr),
        // Below Bayes beyond the 95% interval of the paired difference.
        below_bayes_flag: Some(p.excess.ci95[1] < 0.0),
        units,
        seconds,
        note: note.into(),
    }
}

/// The four task rows of one point on `data` (flip, seed): the data model's Bayes rows with
/// [`Predictor::Bayes`], else the predictor's rows (paired with Bayes on the same samples).
pub fn point(data: &Jghm, flip: f64, seed: u64, predictor: &Predictor, s: &Settings) -> Result<Vec<Row>> {
    point_rows(data, flip, seed, predictor, s, matches!(predictor, Predictor::Bayes))
}

/// [`point`] of mis-specified BP together with the data model's Bayes rows, from one pass: a
/// non-learned predictor is evaluated on the same samples as the Bayes point (same sizes and
/// seeds), so its Bayes rows are the Bayes point's numbers, computed once.
pub fn point_with_bayes(data: &Jghm, flip: f64, seed: u64, predictor: &Predictor, s: &Settings) -> Result<Vec<Row>> {
    if matches!(predictor, Predictor::Learned { .. }) {
        bail!("a learned predictor is evaluated on fewer samples than the Bayes point");
    }
    point_rows(data, flip, seed, predictor, s, true)
}

fn point_rows(
    data: &Jghm,
    flip: f64,
    seed: u64,
    predictor: &Predictor,
    s: &Settings,
    with_bayes: bool,
) -> Result<Vec<Row>> {
    let mut rows = vec![];
    for task in Task::ALL {
        let t0 = std::time::Instant::now();
        let (r, names) = one_task(data, task, predictor, s)?;
        rows.extend(rows_of(&r, &names, flip, seed, with_bayes, t0.elapsed().as_secs_f64()));
    }
    Ok(rows)
}

type Names = Vec<(String, Option<f64>, String)>;

fn one_task(data: &Jghm, task: Task, predictor: &Predictor, s: &Settings) -> Result<(TaskRisk, Names)> {
    let seed = s.seed_of(task);
    let n = if matches!(predictor, Predictor::Learned { .. }) { s.n_learned(task) } else { s.n(task) };
    let (names, r): (Names, _) = match predictor {
        Predictor::Bayes => (vec![], bayes_only(data, task, s)?),
        Predictor::Misspecified(m, f) => {
            let name =
                vec![("misspecified-bp".to_string(), Some(*f), format!("exact BP of the flip-{f} model (same seed)"))];
            let r = match task {
                Task::Clip => risks::clip_risks(data, &[&Pmi { model: m }], s.k, n, seed),
                Task::ZeroShot => risks::zero_shot_risks(data, &[Classifier::Bayes(m)], &[], n, seed),
                Task::Denoise => risks::denoise_risks(data, &[&BayesDenoiser::new(m, s.sigma)], s.sigma, n, seed),
                Task::Vlm => risks::vlm_risks(data, &[&BayesNextToken::new(m)], n, seed),
            }?;
            (name, r)
        }
        Predictor::Learned { name, score, denoiser, next_token, note, trained_flip } => {
            let names = vec![(name.clone(), *trained_flip, note.clone())];
            let r = match task {
                Task::Clip => risks::clip_risks(data, &[*score], s.k, n, seed),
                Task::ZeroShot => {
                    risks::zero_shot_risks(data, &[Classifier::Prompts(*score)], &[s.risk_prompts], n, seed)
                }
                Task::Denoise => risks::denoise_risks(data, &[*denoiser], s.sigma, n, seed),
                Task::Vlm => risks::vlm_risks(data, &[*next_token], n, seed),
            }?;
            (names, r)
        }
    };
    Ok((r, names))
}

fn bayes_only(data: &Jghm, task: Task, s: &Settings) -> Result<TaskRisk> {
    let (n, seed) = (s.n(task), s.seed_of(task));
    Ok(match task {
        Task::Clip => risks::clip_risks(data, &[], s.k, n, seed),
        Task::ZeroShot => risks::zero_shot_risks(data, &[], &[], n, seed),
        Task::Denoise => risks::denoise_risks(data, &[], s.sigma, n, seed),
        Task::Vlm => risks::vlm_risks(data, &[], n, seed),
    }?)
}

/// Zero-shot risk against the number of prompts `M` of each score (nested prompt sets), with
/// the Bayes risk, on `data`: the rows of the prompts figure.
pub fn prompts_point(
    data: &Jghm,
    flip: f64,
    seed: u64,
    scores: &[(&str, &dyn Score, String)],
    ms: &[usize],
    s: &Settings,
    with_bayes: bool,
) -> Result<Vec<Row>> {
    let t0 = std::time::Instant::now();
    let classifiers: Vec<Classifier> = scores.iter().map(|(_, sc, _)| Classifier::Prompts(*sc)).collect();
    let r = risks::zero_shot_risks(data, &classifiers, ms, s.n(Task::ZeroShot), s.seed_of(Task::ZeroShot))?;
    let names: Names = scores
        .iter()
        .flat_map(|(name, _, note)| ms.iter().map(move |_| (name.to_string(), None, note.clone())))
        .collect();
    Ok(rows_of(&r, &names, flip, seed, with_bayes, t0.elapsed().as_secs_f64()))
}

/// The least-squares fit `risk ≈ a + b/M`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PromptFit {
    pub a: f64,
    pub b: f64,
    /// Root mean square residual.
    pub rms: f64,
}

/// Ordinary least squares of `risk` on `1/M` (at least two distinct `M`).
pub fn fit_prompts(points: &[(usize, f64)]) -> Option<PromptFit> {
    let n = points.len() as f64;
    let xs: Vec<f64> = points.iter().map(|p| 1.0 / p.0 as f64).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if points.len() < 2 || sxx <= 0.0 {
        return None;
    }
    // b = Σ (x - x̄)(y - ȳ) / Σ (x - x̄)²,  a = ȳ - b x̄
    let b = xs.iter().zip(points).map(|(x, p)| (x - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let a = my - b * mx;
    let rms = (xs.iter().zip(points).map(|(x, p)| (p.1 - a - b * x).powi(2)).sum::<f64>() / n).sqrt();
    Some(PromptFit { a, b, rms })
}
