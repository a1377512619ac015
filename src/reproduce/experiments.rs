//! The experiments behind `jghm reproduce risks|prompts|ood` (the book, Reproducing the paper): the standard model at
//! each flip, the rows of result numbers (one per task, predictor, flip and model seed), their
//! CSV file, and the `a + b/M` fit of the prompts figure.
//!
//! A *point* is one predictor (Bayes, mis-specified BP, or one learned class) on one data model
//! (flip, seed): its four task rows are computed together and written together, so an
//! interrupted run resumes at the first unfinished point.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::risks::{self, Classifier, PredictorRisk, RiskError, Task, TaskRisk, PAPER_RULE};
use super::{Denoiser, NextToken};
use crate::downstream::bayes::{BayesDenoiser, BayesNextToken};
use crate::downstream::noise::{ValueNoise, DENOISING};
use crate::files::load_model;
use crate::model::{Jghm, ModelError, Part};
use crate::random_family::paper::{PaperSpec, PAPER_TREE_SEED};
use crate::random_family::RandomSpec;
use crate::runs::format::{display, display_opt};
use crate::runs::{BadField, CsvRow, RunDirError};
use crate::score::{Pmi, Score};

type Result<T, E = ExperimentError> = std::result::Result<T, E>;

/// The paper's model at flip `ε`: both towers 4 levels × 3 children (81 tokens), 10 states,
/// uniform root, scale 1, the draws fixed by `seed` alone (shared across flips).
pub fn standard_model(flip: f64, seed: u64) -> Result<Jghm> {
    Ok(RandomSpec { flip, ..RandomSpec::symmetric(10, 3, 4, seed) }.build()?)
}

/// The models a reproduction runs on: a two-tower JGHM for each flip of the image and text
/// towers and each model seed.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// The standard random family ([`standard_model`]): model seeds `1..=k`; per-tower flips
    /// take the image tower of the model at the image flip and the text tower of the model at
    /// the text flip (each tower draws from its own stream, so this is the same family).
    Standard,
    /// The paper's own draw ([`PaperSpec::paper`]): NumPy's legacy generator seeded by
    /// `np.random.seed(s)`, text tower first, 10 states, 3 children, 4 levels, scale 1; model
    /// seeds `42, 43, …, 41 + k` (the first is the paper's tree).
    Paper,
    /// User model files, one per flip: the pattern with `{flip}` replaced by the flip in Rust's
    /// shortest round-trip form (`0.02`, `0.2`); one model, reported as seed 0; no per-tower flips;
    /// `reproduce ood` also reads the file of its training flip 0.2.
    Files(String),
}

/// The placeholder of a [`Family::Files`] pattern.
pub const FLIP_PLACEHOLDER: &str = "{flip}";

impl Family {
    /// The family's name in settings files, notes and figures: `standard`, `paper`, or
    /// `files:PATTERN`.
    pub fn name(&self) -> String {
        match self {
            Family::Standard => "standard".into(),
            Family::Paper => "paper".into(),
            Family::Files(pattern) => format!("files:{pattern}"),
        }
    }

    /// The model seeds of a run asked for `seeds` of them (see each variant).
    pub fn model_seeds(&self, seeds: u64) -> Result<Vec<u64>> {
        match self {
            Family::Standard => Ok((1..=seeds).collect()),
            Family::Paper => Ok((PAPER_TREE_SEED..PAPER_TREE_SEED + seeds).collect()),
            Family::Files(_) if seeds == 1 => Ok(vec![0]),
            Family::Files(_) => {
                Err(ExperimentError::Family("--models gives one model per flip: --seeds must be 1".into()))
            }
        }
    }

    /// The model with flip `image_flip` on the image tower and `text_flip` on the text tower.
    pub fn model(&self, image_flip: f64, text_flip: f64, seed: u64) -> Result<Jghm> {
        match self {
            Family::Standard if image_flip == text_flip => standard_model(image_flip, seed),
            Family::Standard => {
                let (image, text) = (standard_model(image_flip, seed)?, standard_model(text_flip, seed)?);
                let levels = |m: &Jghm, part| m.levels(part).to_vec();
                Ok(Jghm::new(
                    image.prior().to_vec(),
                    vec![],
                    levels(&image, Part::Image),
                    levels(&text, Part::Text),
                )?)
            }
            Family::Paper => Ok(PaperSpec { seed, ..PaperSpec::paper(image_flip, text_flip) }.build()?),
            Family::Files(_) if image_flip != text_flip => Err(ExperimentError::Family(
                "--models gives one model per flip: per-tower flips (--vary image|text) need --family standard or paper"
                    .into(),
            )),
            Family::Files(pattern) => {
                let path = Family::file_of(pattern, image_flip);
                load_model(&path).map_err(|e| ExperimentError::Family(e.to_string()))
            }
        }
    }

    /// The file of flip `flip` under `pattern`.
    pub fn file_of(pattern: &str, flip: f64) -> PathBuf {
        PathBuf::from(pattern.replace(FLIP_PLACEHOLDER, &flip.to_string()))
    }
}

/// The paper's grid of prompts per class for the zero-shot risk against `M` (Figs. 5-6, as
/// drawn): `M = 5, 10, ..., 250`.
pub fn paper_prompts() -> Vec<usize> {
    (5..=250).step_by(5).collect()
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
    pub samples: PerTask<usize>,
    pub k: usize,
    /// The denoising task's noise (written as its `sigma` field in the settings file).
    #[serde(flatten)]
    pub noise: ValueNoise,
    /// The same for learned predictors (and mis-specified BP), evaluated with the data model's
    /// Bayes predictor on their own samples (the excess stays paired): a learned network costs
    /// far more per sample than BP, and the paired excess needs fewer samples.
    pub learned_samples: PerTask<usize>,
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
        let full = PerTask { clip: 32_000, zero_shot: 4_096, denoise: 1_000_000, vlm: 4_000 };
        let samples = match samples {
            Some(n) => PerTask::all(n),
            None if quick => full.map(|n| n / 10),
            None => full,
        };
        let learned = match quick {
            true => PerTask { clip: 200, zero_shot: 256, denoise: 200, vlm: 200 },
            false => PerTask { clip: 2_000, zero_shot: 1_024, denoise: 2_000, vlm: 1_000 },
        };
        let learned_samples = PerTask::from_fn(|task| learned.of(task).min(samples.of(task)));
        Settings { samples, learned_samples, k: 4, noise: DENOISING, risk_prompts: 32, seed }
    }
    fn n(&self, task: Task) -> usize {
        self.samples.of(task)
    }
    fn n_learned(&self, task: Task) -> usize {
        self.learned_samples.of(task)
    }
    /// The Monte Carlo seed of a task: the same draws at every flip and for every predictor.
    fn seed_of(&self, task: Task) -> u64 {
        self.seed.wrapping_mul(16).wrapping_add(task_index(task) as u64)
    }
}

fn task_index(task: Task) -> usize {
    Task::ALL.iter().position(|t| *t == task).expect("a task")
}

/// One value per task, by name. Settings files hold it as the list
/// `[clip, zero-shot, denoise, vlm]` (the order of [`Task::ALL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "[T; 4]")]
pub struct PerTask<T: Copy> {
    pub clip: T,
    pub zero_shot: T,
    pub denoise: T,
    pub vlm: T,
}

impl<T: Copy> PerTask<T> {
    /// The same value for every task.
    pub fn all(value: T) -> Self {
        PerTask { clip: value, zero_shot: value, denoise: value, vlm: value }
    }

    pub fn from_fn(f: impl Fn(Task) -> T) -> Self {
        PerTask { clip: f(Task::Clip), zero_shot: f(Task::ZeroShot), denoise: f(Task::Denoise), vlm: f(Task::Vlm) }
    }

    pub fn map<U: Copy>(self, f: impl Fn(T) -> U) -> PerTask<U> {
        PerTask { clip: f(self.clip), zero_shot: f(self.zero_shot), denoise: f(self.denoise), vlm: f(self.vlm) }
    }

    /// The values in the order of [`Task::ALL`].
    pub fn values(self) -> [T; 4] {
        self.into()
    }

    /// The value of `task`.
    pub fn of(&self, task: Task) -> T {
        match task {
            Task::Clip => self.clip,
            Task::ZeroShot => self.zero_shot,
            Task::Denoise => self.denoise,
            Task::Vlm => self.vlm,
        }
    }
}

impl<T: Copy> From<PerTask<T>> for [T; 4] {
    fn from(p: PerTask<T>) -> [T; 4] {
        Task::ALL.map(|task| p.of(task))
    }
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

/// A line of a result file: numbers in Rust's `Display` format, options as empty fields.
#[derive(Serialize, Deserialize)]
pub struct RowRecord {
    task: String,
    model: String,
    #[serde(serialize_with = "display")]
    flip: f64,
    seed: u64,
    prompts: Option<usize>,
    #[serde(serialize_with = "display_opt")]
    trained_flip: Option<f64>,
    #[serde(serialize_with = "display")]
    risk: f64,
    #[serde(serialize_with = "display")]
    stderr: f64,
    #[serde(serialize_with = "display_opt")]
    excess_risk: Option<f64>,
    #[serde(serialize_with = "display_opt")]
    excess_stderr: Option<f64>,
    below_bayes_flag: Option<bool>,
    units: usize,
    #[serde(serialize_with = "display")]
    seconds: f64,
    note: String,
}

impl CsvRow for Row {
    type Record = RowRecord;
    const HEADER: &'static [&'static str] = &[
        "task",
        "model",
        "flip",
        "seed",
        "prompts",
        "trained_flip",
        "risk",
        "stderr",
        "excess_risk",
        "excess_stderr",
        "below_bayes_flag",
        "units",
        "seconds",
        "note",
    ];
    const WHAT: &'static str = "a result file of `jghm reproduce`";

    fn to_record(&self) -> RowRecord {
        RowRecord {
            task: self.task.clone(),
            model: self.model.clone(),
            flip: self.flip,
            seed: self.seed,
            prompts: self.prompts,
            trained_flip: self.trained_flip,
            risk: self.risk,
            stderr: self.stderr,
            excess_risk: self.excess_risk,
            excess_stderr: self.excess_stderr,
            below_bayes_flag: self.below_bayes_flag,
            units: self.units,
            seconds: self.seconds,
            // Files written before the CSV was quoted replaced these; kept so a rewritten file
            // is the same byte for byte (and a note stays one field for any reader).
            note: self.note.replace([',', '\n'], ";"),
        }
    }

    fn from_record(r: RowRecord) -> Result<Row, BadField> {
        let task = Task::parse(&r.task)
            .ok_or_else(|| BadField { field: "task", problem: format!("unknown task '{}'", r.task) })?;
        Ok(Row {
            task: task.key().to_string(),
            model: r.model,
            flip: r.flip,
            seed: r.seed,
            prompts: r.prompts,
            trained_flip: r.trained_flip,
            risk: r.risk,
            stderr: r.stderr,
            excess_risk: r.excess_risk,
            excess_stderr: r.excess_stderr,
            below_bayes_flag: r.below_bayes_flag,
            units: r.units,
            seconds: r.seconds,
            note: r.note,
        })
    }
}

impl Row {
    /// The key of the point this row belongs to.
    pub fn point(&self) -> (String, u64, u64) {
        (self.model.clone(), self.flip.to_bits(), self.seed)
    }
}

/// Writes every row to `path`, atomically.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<(), RunDirError> {
    crate::runs::write_csv(path, rows)
}

/// Reads a file written by [`write_csv`]; the error names the file, the line and the field.
pub fn read_csv(path: &Path) -> Result<Vec<Row>, RunDirError> {
    crate::runs::read_csv(path)
}

/// Why an experiment stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Risk(#[from] RiskError),
    #[error(transparent)]
    Files(#[from] RunDirError),
    #[error(transparent)]
    Merge(#[from] crate::runs::MergeError),
    #[error("a learned predictor is evaluated on fewer samples than the Bayes point")]
    LearnedWithBayes,
    #[error("{0}")]
    Train(String),
    #[error("--flips: give at least one flip")]
    NoFlips,
    #[error("--flips: {0} is not in (0, 1] (at ε = 0 some pairs have probability zero)")]
    Flip(f64),
    #[error("--budget-seconds must be a positive number of seconds (got {0})")]
    Budget(f64),
    #[error("--prompts: give numbers of prompts between 1 and 100000")]
    Prompts,
    #[error("{0}")]
    Family(String),
    #[error("the {0} class has no CLIP score (no CLIP or zero-shot risk)")]
    NoScore(String),
}

/// What a point evaluates besides the data model's Bayes predictor.
pub enum Predictor<'a> {
    /// The Bayes predictors of the data model only.
    Bayes,
    /// BP of another model (the same seed at another flip) applied to the data.
    Misspecified(&'a Jghm, f64),
    /// A learned model: its score (none for the joint class: then no CLIP and zero-shot rows),
    /// denoiser and next-token model, and how it was trained.
    Learned {
        name: String,
        score: Option<&'a dyn Score>,
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
        return Err(ExperimentError::LearnedWithBayes);
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
        let scoreless = matches!(predictor, Predictor::Learned { score: None, .. });
        if scoreless && matches!(task, Task::Clip | Task::ZeroShot) {
            continue;
        }
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
                Task::Denoise => risks::denoise_risks(data, &[&BayesDenoiser::new(m, s.noise)], s.noise, n, seed),
                Task::Vlm => risks::vlm_risks(data, &[&BayesNextToken::new(m)], n, seed),
            }?;
            (name, r)
        }
        Predictor::Learned { name, score, denoiser, next_token, note, trained_flip } => {
            let score = || score.ok_or(ExperimentError::NoScore(name.clone()));
            let mut names = vec![(name.clone(), *trained_flip, note.clone())];
            let r = match task {
                Task::Clip => risks::clip_risks(data, &[score()?], s.k, n, seed),
                Task::ZeroShot => {
                    // Ours and the paper's classifier, on the same images and prompts.
                    names.push((format!("{name}{PAPER_RULE}"), *trained_flip, format!("{note}; {PAPER_RULE_NOTE}")));
                    let both = [Classifier::Prompts(score()?), Classifier::PaperPrompts(score()?)];
                    risks::zero_shot_risks(data, &both, &[s.risk_prompts], n, seed)
                }
                Task::Denoise => risks::denoise_risks(data, &[*denoiser], s.noise, n, seed),
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
        Task::Denoise => risks::denoise_risks(data, &[], s.noise, n, seed),
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
    // Each score with ours and the paper's rule, on the same images and prompts.
    let classifiers: Vec<Classifier> =
        scores.iter().flat_map(|(_, sc, _)| [Classifier::Prompts(*sc), Classifier::PaperPrompts(*sc)]).collect();
    let r = risks::zero_shot_risks(data, &classifiers, ms, s.n(Task::ZeroShot), s.seed_of(Task::ZeroShot))?;
    let names: Names = scores
        .iter()
        .flat_map(|(name, _, note)| {
            let ours = ms.iter().map(move |_| (name.to_string(), None, note.clone()));
            let paper =
                ms.iter().map(move |_| (format!("{name}{PAPER_RULE}"), None, format!("{note}; {PAPER_RULE_NOTE}")));
            ours.chain(paper)
        })
        .collect();
    Ok(rows_of(&r, &names, flip, seed, with_bayes, t0.elapsed().as_secs_f64()))
}

/// The note of a zero-shot row of the paper's rule ([`crate::downstream::zero_shot::ZeroShotRule::Paper`]).
pub const PAPER_RULE_NOTE: &str =
    "zero-shot by the paper's rule: softmax of log mean exp S over the prompts without log p(c)";

/// The least-squares fit `risk ≈ a + b/M` over the prompt counts `M ≥ from`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PromptFit {
    pub a: f64,
    pub b: f64,
    /// Root mean square residual over the fitted points.
    pub rms: f64,
    /// The smallest `M` fitted.
    pub from: usize,
}

/// Ordinary least squares of `risk` on `1/M` over the points with `M ≥ from` (at least two
/// distinct `M` among them).
///
/// `a + b/M` is the large-`M` law of the zero-shot risk (each logit is the log of a mean of `M`
/// draws of `exp S`, whose bias and variance are `O(1/M)` by the delta method); at small `M`
/// the heavy-tailed `exp PMI` keeps the curve far from it, so a fit over every `M` misses the whole curve and
/// its asymptote `a` lands well above the data's tail. [`prompts_fit_from`] picks the tail.
pub fn fit_prompts(points: &[(usize, f64)], from: usize) -> Option<PromptFit> {
    let points: Vec<(usize, f64)> = points.iter().copied().filter(|p| p.0 >= from && p.0 > 0).collect();
    let n = points.len() as f64;
    let xs: Vec<f64> = points.iter().map(|p| 1.0 / p.0 as f64).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if points.len() < 2 || sxx <= 0.0 || !sxx.is_finite() {
        return None;
    }
    // b = Σ (x - x̄)(y - ȳ) / Σ (x - x̄)²,  a = ȳ - b x̄
    let b = xs.iter().zip(&points).map(|(x, p)| (x - mx) * (p.1 - my)).sum::<f64>() / sxx;
    let a = my - b * mx;
    let rms = (xs.iter().zip(&points).map(|(x, p)| (p.1 - a - b * x).powi(2)).sum::<f64>() / n).sqrt();
    Some(PromptFit { a, b, rms, from })
}

/// The start of the fitted tail of a prompt grid `ms`: the smallest `M ≥ √(M_min · M_max)` (the
/// upper half of the grid on the log axis the figure uses), lowered while fewer than 3 points
/// remain; the whole grid when it has at most 3 points.
pub fn prompts_fit_from(ms: &[usize]) -> usize {
    let mut v: Vec<usize> = ms.iter().copied().filter(|&m| m > 0).collect();
    v.sort_unstable();
    v.dedup();
    if v.len() <= 3 {
        return v.first().copied().unwrap_or(1);
    }
    let mid = ((v[0] as f64) * (v[v.len() - 1] as f64)).sqrt();
    let first = v.iter().position(|&m| m as f64 >= mid - 1e-9).unwrap_or(0);
    v[first.min(v.len() - 3)]
}
