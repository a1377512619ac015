//! A learned pair measured against the exact ground truth (the book, T2-T10).
//!
//! A trained pair `(f, g)` with its head is a [`Score`] ([`LearnedScore`]), so the exact
//! engine's estimators apply to it unchanged. On a model too large to enumerate, every figure is
//! Monte Carlo, with its standard error, stated:
//!
//! * **Excess risk (T4)** `ℓ_∞(Ŝ) − ℓ_∞(PMI)` per direction, by [`contrastive::monte_carlo`]
//!   at `K = ∞` (nested, jackknifed) with *common random numbers*: both scores see the same
//!   outer pairs and inner draws, and the standard error is that of the per-outer-pair
//!   differences. `excess_risk` is the CLIP average `(X→Y + Y→X)/2`.
//! * **Sufficiency bounds (T5)**: `Suff_Y(f) ≤ ℓ_∞^{X→Y}(Ŝ) − ℓ_∞^{X→Y}(PMI)` (the score depends
//!   on `x` only through `f(x)`), and `Suff_X(g)` by the `Y→X` excess.
//! * **Zero-shot on the root label (T8)**: `ĉ(x) = argmax_c log p(c) + log mean_m exp S(x, y_{c,m})`
//!   with `M` prompts `y_{c,m} ~ p(y | z = c)` per class (exact draws by
//!   [`crate::downstream::labels::LabelLaw::prompts`], the classifier of
//!   [`crate::downstream::zero_shot::PromptEnsemble`]); the same prompts and images with
//!   `S = PMI` (the oracle protocol),
//!   and the Bayes classifier `argmax_z p(z | x)` by BP. Accuracies on fresh images `x ~ p(x)`
//!   labelled by their true root.
//! * **Finite-`K` loss at the training `K`** ([`finite_k_losses`]): the CLIP loss
//!   `L_K(Ŝ) = (ℓ_K^{X→Y} + ℓ_K^{Y→X})/2` the pair was trained on, next to its optimum `L_K(PMI)`
//!   (T2: the PMI minimises `L_K` for every `K`), on the same Monte Carlo batches, with the
//!   standard error of the per-batch difference.
//! * **PMI correlation**: Pearson correlation of `Ŝ(x_i, y_j)` and `PMI(x_i, y_j)` over the
//!   grid of `G × G` sampled images and texts (positive and independent pairs alike).
//!
//! On a model small enough to enumerate, [`exact`] evaluates the same pair exactly instead.

use rayon::prelude::*;
use serde::Serialize;
use std::sync::Mutex;

use crate::bp;
use crate::contrastive::{self, Batch};
use crate::downstream::labels::Label;
use crate::downstream::zero_shot::{PromptDraws, PromptEnsemble};
use crate::downstream::{argmax, DownstreamError};
use crate::evidence::EvidenceError;
use crate::info::Enumeration;
use crate::info::{Estimate, InfoError};
use crate::learn::checkpoint::{CheckpointError, CheckpointFile, LoadError, ModelFile};
use crate::learn::encoder::{Encoder, CHUNK};
use crate::learn::score_head::{Head, HeadCache};
use crate::learn::{with_encoders, Params, Real, WithEncoders};
use crate::model::{Jghm, Part};
use crate::rng::Purpose;
use crate::sample::sample_pairs;
use crate::score::{LogWeighted, Perturbed, Table};
use crate::score::{Pmi, Score};
use crate::sufficiency::{Evaluator, Gap, Statistic, SufficiencyError};

pub mod exact;
pub mod imported;

/// A trained pair `(f, g)` and its head, as a [`Score`]: `S(x, y) = head(f(x), g(y))`.
/// Encodes in chunks of [`CHUNK`], in parallel, each chunk with a cache from a pool.
pub struct LearnedScore<R: Real, E: Encoder<R>> {
    image: E,
    text: E,
    params: Params<R>,
    head: Head,
    pool: Mutex<Vec<(bool, E::Cache)>>,
}

impl<R: Real, E: Encoder<R>> LearnedScore<R, E> {
    pub fn new(image: E, text: E, params: Params<R>, head: Head) -> Self {
        LearnedScore { image, text, params, head, pool: Mutex::new(vec![]) }
    }

    /// The trained parameters of both towers and the head.
    pub fn params(&self) -> &Params<R> {
        &self.params
    }

    /// `Ok` when `seq` fits the image tower (`image = true`) or the text tower: its length and
    /// its vocabulary; else an error naming the side, the position and the token.
    pub fn check(&self, image: bool, seq: &[usize]) -> Result<(), EvidenceError> {
        let (enc, part) = if image { (&self.image, Part::Image) } else { (&self.text, Part::Text) };
        let (expected, vocab) = (enc.seq_len(), enc.vocab());
        if seq.len() != expected {
            return Err(EvidenceError::Length { part, got: seq.len(), expected });
        }
        match seq.iter().position(|&t| t >= vocab) {
            Some(position) => Err(EvidenceError::OutOfVocabulary { part, position, token: seq[position], vocab }),
            None => Ok(()),
        }
    }

    /// `f(x)` (`image = true`) or `g(y)` for every sequence, rows of `P`, or the first sequence
    /// that does not fit its tower ([`LearnedScore::check`]).
    pub fn try_encode(&self, image: bool, seqs: &[Vec<usize>]) -> Result<Vec<R>, EvidenceError> {
        for s in seqs {
            self.check(image, s)?;
        }
        Ok(self.encode(image, seqs))
    }

    /// `f(x)` (`image = true`) or `g(y)` for every sequence, rows of `P`; a sequence that does
    /// not fit its tower gets a row of NaN (never a pass on tokens the tower has no weights for).
    pub fn encode(&self, image: bool, seqs: &[Vec<usize>]) -> Vec<R> {
        let (enc, params) = if image { (&self.image, &self.params.image) } else { (&self.text, &self.params.text) };
        let (t, p) = (enc.seq_len(), enc.out_dim());
        let fits: Vec<bool> = seqs.iter().map(|s| self.check(image, s).is_ok()).collect();
        let mut out = vec![R::zero(); seqs.len() * p];
        out.par_chunks_mut(CHUNK * p).zip(seqs.par_chunks(CHUNK)).zip(fits.par_chunks(CHUNK)).for_each(
            |((o, chunk), ok)| {
                // A sequence that does not fit is encoded as tokens 0 (in every vocabulary), then
                // its row is overwritten with NaN.
                let tokens: Vec<u32> = chunk
                    .iter()
                    .zip(ok)
                    .flat_map(|(s, &ok)| (0..t).map(move |i| if ok { s[i] as u32 } else { 0 }))
                    .collect();
                let taken = {
                    let mut pool = self.pool.lock().expect("pool lock");
                    pool.iter().position(|(side, _)| *side == image).map(|i| pool.swap_remove(i).1)
                };
                let mut cache = taken.unwrap_or_else(|| enc.new_cache(CHUNK));
                enc.forward(params, &tokens, chunk.len(), &mut cache, o);
                self.pool.lock().expect("pool lock").push((image, cache));
                for (row, _) in o.chunks_mut(p.max(1)).zip(ok).filter(|(_, &ok)| !ok) {
                    row.iter_mut().for_each(|v| *v = R::of(f64::NAN));
                }
            },
        );
        out
    }
}

impl<R: Real, E: Encoder<R>> Score for LearnedScore<R, E> {
    fn name(&self) -> String {
        "learned".into()
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        self.check(true, x)?;
        self.check(false, y)
    }
    /// `-inf` for tokens that do not fit a tower (no weight, as for the exact PMI).
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        self.grid(&[x.to_vec()], &[y.to_vec()])[0]
    }
    /// `head(f(x_i), g(y_j))` for every pair; `-inf` in the rows and columns of sequences that
    /// do not fit their tower.
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let p = self.image.out_dim();
        let (u, v) = (self.encode(true, xs), self.encode(false, ys));
        let pairs: Vec<(u32, u32)> =
            (0..xs.len() as u32).flat_map(|i| (0..ys.len() as u32).map(move |j| (i, j))).collect();
        let mut scores = vec![];
        self.head.forward(&self.params.head, &u, &v, p, &pairs, &mut scores, &mut HeadCache::default());
        let x_fits: Vec<bool> = xs.iter().map(|x| self.check(true, x).is_ok()).collect();
        let y_fits: Vec<bool> = ys.iter().map(|y| self.check(false, y).is_ok()).collect();
        scores
            .into_iter()
            .zip(&pairs)
            .map(|(s, &(i, j))| if x_fits[i as usize] && y_fits[j as usize] { s.f64() } else { f64::NEG_INFINITY })
            .collect()
    }
}

/// A learned pair seen as a score whose embeddings can be read: `f(x)` of the image tower and
/// `g(y)` of the text tower. The exact evaluation ([`exact`]) partitions each side into the
/// level sets of its embedding (T5, T9).
pub trait Learned: Score + Send {
    /// `f(x)` (`Part::Image`) or `g(y)` (`Part::Text`) of every sequence, in `f64`; a row of
    /// NaN for a sequence that does not fit its tower.
    fn embeddings(&self, part: Part, seqs: &[Vec<usize>]) -> Vec<Vec<f64>>;
}

impl<R: Real, E: Encoder<R>> Learned for LearnedScore<R, E> {
    fn embeddings(&self, part: Part, seqs: &[Vec<usize>]) -> Vec<Vec<f64>> {
        let p = if part == Part::Image { self.image.out_dim() } else { self.text.out_dim() };
        let flat = self.encode(part == Part::Image, seqs);
        flat.chunks(p.max(1)).map(|row| row.iter().map(|v| v.f64()).collect()).collect()
    }
}

/// The learned pair of a checkpoint as a [`Learned`] score, and the step it was saved at.
pub struct CheckpointScore<'m> {
    pub score: Box<dyn Learned + Send + 'm>,
    pub step: usize,
}

/// Builds the learned score of a checked checkpoint: its class's encoders in its float type
/// ([`with_encoders`]), its parameters and its head. The one place a checkpoint becomes a score
/// (`jghm eval`, and `ckpt:PATH` scores of the downstream commands).
pub fn checkpoint_score<'m>(model: &'m Jghm, file: &CheckpointFile) -> Result<CheckpointScore<'m>, CheckpointError> {
    struct Build<'a, 'm> {
        model: &'m Jghm,
        file: &'a CheckpointFile,
    }
    impl<'m> WithEncoders for Build<'_, 'm> {
        type Output = Result<CheckpointScore<'m>, CheckpointError>;
        fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> Self::Output {
            let ck = self.file.checkpoint::<R>()?;
            let head = self.file.config.head(self.model);
            let score = LearnedScore::new(make(Part::Image), make(Part::Text), ck.params, head);
            Ok(CheckpointScore { score: Box::new(score), step: ck.step })
        }
    }
    with_encoders(&file.config, model, Build { model, file })
}

/// Sizes of the Monte Carlo evaluation.
#[derive(Clone, Copy, Debug)]
pub struct EvalSpec {
    /// Outer pairs of the `K = ∞` estimator (each with `contrastive::INNER_SAMPLES` inner draws).
    pub samples: usize,
    /// Test images of the zero-shot task.
    pub zero_shot_images: usize,
    /// Prompts per class.
    pub prompts: usize,
    /// Side `G` of the correlation grid.
    pub grid: usize,
    pub seed: u64,
}

/// The figures of `jghm eval`.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub excess_risk: f64,
    pub excess_risk_stderr: f64,
    pub excess_risk_image_to_text: Estimate,
    pub excess_risk_text_to_image: Estimate,
    pub sufficiency_bound_image: f64,
    pub sufficiency_bound_text: f64,
    pub zero_shot_accuracy: f64,
    pub oracle_zero_shot_accuracy: f64,
    pub bayes_accuracy: f64,
    /// Binomial standard error of an accuracy on this many images, at the Bayes accuracy.
    pub accuracy_stderr: f64,
    pub pmi_correlation: f64,
    pub method: String,
}

/// Every figure of the module doc for `score` on `model`.
pub fn evaluate(model: &Jghm, score: &dyn Score, spec: &EvalSpec) -> Result<EvalReport, DownstreamError> {
    let pmi = Pmi { model };
    // T4 / T5: common random numbers, differences per outer pair.
    let mc = contrastive::monte_carlo(model, &[score, &pmi], Batch::Infinite, spec.samples, spec.seed)?;
    let diff = |d: usize| -> Vec<f64> { mc.terms[0].iter().zip(&mc.terms[1]).map(|(a, b)| a[d] - b[d]).collect() };
    let (dx, dy) = (diff(0), diff(1));
    // Zero-shot on the root label.
    let zs = zero_shot(model, score, &pmi, spec)?;
    // Correlation with the PMI on a G × G grid.
    let g = sample_pairs(model, spec.grid, Purpose::EvalCorrelationGrid.seed(spec.seed), false);
    let xs: Vec<Vec<usize>> = g.iter().map(|p| p.image.clone()).collect();
    let ys: Vec<Vec<usize>> = g.iter().map(|p| p.text.clone()).collect();
    let corr = pearson(&score.grid(&xs, &ys), &pmi.grid(&xs, &ys));
    let method = format!(
        "{}; excess risks are per-outer-pair differences against the exact PMI on the same draws. Zero-shot: {} images, {} prompts per class from p(y | z = c), seed {}. Correlation over a {}x{} grid.",
        mc.method, spec.zero_shot_images, spec.prompts, spec.seed, spec.grid, spec.grid
    );
    Ok(EvalReport::from_differences(&dx, &dy, &zs, spec.zero_shot_images, corr, method))
}

impl EvalReport {
    /// The report from the per-sample excess-risk differences of each direction (`dx`: `X→Y`,
    /// `dy`: `Y→X`, paired by sample: the CLIP average is the mean of `(dx_i + dy_i)/2`), the
    /// zero-shot accuracies on `images` test images (the binomial standard error at the Bayes
    /// accuracy), the PMI correlation and how it was all obtained.
    pub(crate) fn from_differences(
        dx: &[f64],
        dy: &[f64],
        zs: &ZeroShot,
        images: usize,
        corr: f64,
        method: String,
    ) -> Self {
        let both: Vec<f64> = dx.iter().zip(dy).map(|(a, b)| 0.5 * (a + b)).collect();
        let (ex, ey, e) = (Estimate::from_samples(dx), Estimate::from_samples(dy), Estimate::from_samples(&both));
        EvalReport {
            excess_risk: e.value,
            excess_risk_stderr: e.stderr,
            sufficiency_bound_image: ex.value,
            sufficiency_bound_text: ey.value,
            excess_risk_image_to_text: ex,
            excess_risk_text_to_image: ey,
            zero_shot_accuracy: zs.learned,
            oracle_zero_shot_accuracy: zs.oracle,
            bayes_accuracy: zs.bayes,
            accuracy_stderr: (zs.bayes * (1.0 - zs.bayes) / images as f64).sqrt(),
            pmi_correlation: corr,
            method,
        }
    }
}

/// The CLIP loss at a finite batch size `K` of a learned score and of its optimum, the PMI (T2).
#[derive(Clone, Debug, Serialize)]
pub struct FiniteK {
    /// The batch size `K` (the training scheme's: the batch for in-batch negatives, `k` for K-way).
    pub k: usize,
    /// `L_K(Ŝ)`, the CLIP average of both directions.
    pub loss: Estimate,
    /// `L_K(PMI) = min_S L_K(S)` (T2).
    pub optimum: Estimate,
    /// `L_K(Ŝ) − L_K(PMI) ≥ 0`, per-batch differences on common batches.
    pub excess: Estimate,
    pub method: String,
}

/// The batch size `K` a configuration trains at: the batch for in-batch negatives, `k` for
/// the K-way scheme (T2: `L_K` is minimised by the PMI at every `K`, so the learned pair is
/// compared with `L_K(PMI)` at its own `K`).
pub fn training_k(config: &crate::learn::TrainConfig) -> usize {
    match config.scheme {
        crate::learn::Scheme::InBatch => config.batch,
        crate::learn::Scheme::KWay { k, .. } => k,
    }
}

/// The JSON object of `jghm eval --json`: the report's keys, the checkpoint's class and step,
/// and the finite-`K` figures at the training `K` with their standard errors.
pub fn report_json(r: &EvalReport, finite: &FiniteK, class: crate::learn::Class, step: usize) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("report serialises");
    v["class"] = serde_json::json!(class);
    v["steps"] = serde_json::json!(step);
    v["training_k"] = serde_json::json!(finite.k);
    for (key, e) in
        [("finite_k_loss", &finite.loss), ("finite_k_optimum", &finite.optimum), ("finite_k_excess", &finite.excess)]
    {
        v[key] = serde_json::json!(e.value);
        v[format!("{key}_stderr")] = serde_json::json!(e.stderr);
    }
    v["finite_k_method"] = serde_json::json!(finite.method);
    v
}

/// `L_K(Ŝ)` and `L_K(PMI)` by [`contrastive::monte_carlo`] over `batches` i.i.d. batches of `K`
/// pairs, both scores on the same batches. Each batch contributes
/// `(1/K) Σ_i ½ (CE_i^{X→Y} + CE_i^{Y→X})`, an unbiased estimate of `L_K`.
pub fn finite_k_losses(
    model: &Jghm,
    score: &dyn Score,
    k: usize,
    batches: usize,
    seed: u64,
) -> Result<FiniteK, InfoError> {
    let pmi = Pmi { model };
    let mc = contrastive::monte_carlo(model, &[score, &pmi], Batch::Finite(k), batches, seed)?;
    let clip = |t: &[f64; 2]| 0.5 * (t[0] + t[1]);
    let learned: Vec<f64> = mc.terms[0].iter().map(clip).collect();
    let optimum: Vec<f64> = mc.terms[1].iter().map(clip).collect();
    let excess: Vec<f64> = learned.iter().zip(&optimum).map(|(a, b)| a - b).collect();
    Ok(FiniteK {
        k,
        loss: Estimate::from_samples(&learned),
        optimum: Estimate::from_samples(&optimum),
        excess: Estimate::from_samples(&excess),
        method: mc.method,
    })
}

/// Zero-shot accuracies on the root label: the learned score's, the PMI's on the same prompts,
/// and the Bayes classifier's.
pub(crate) struct ZeroShot {
    pub(crate) learned: f64,
    pub(crate) oracle: f64,
    pub(crate) bayes: f64,
}

/// Zero-shot accuracy on the root label by the prompt-ensemble classifier ([`PromptEnsemble`],
/// `M = spec.prompts` exact draws from `p(y | z = c)` per class), for the learned score and for
/// the PMI on the same prompts and images, and the Bayes classifier `argmax_z p(z | x)`.
fn zero_shot(model: &Jghm, score: &dyn Score, pmi: &Pmi, spec: &EvalSpec) -> Result<ZeroShot, DownstreamError> {
    let draws = PromptDraws::Streams(Purpose::EvalPrompts.seed(spec.seed));
    let ensemble = PromptEnsemble::draw(model, &Label::Root.law(model, None)?, spec.prompts, draws)?;
    let prompts = ensemble.flat();
    let test = sample_pairs(model, spec.zero_shot_images, Purpose::EvalZeroShotImages.seed(spec.seed), true);
    let xs: Vec<Vec<usize>> = test.iter().map(|p| p.image.clone()).collect();
    let truth: Vec<usize> = test.iter().map(|p| p.hidden.as_ref().expect("with hidden")[0]).collect();
    let fraction_right = |predicted: &mut dyn Iterator<Item = usize>| -> f64 {
        predicted.zip(&truth).filter(|(c, z)| c == *z).count() as f64 / truth.len() as f64
    };
    let accuracy = |s: &dyn Score| -> f64 {
        let grid = s.grid(&xs, &prompts);
        fraction_right(&mut grid.chunks(prompts.len()).map(|row| ensemble.predict(row)))
    };
    let posteriors = bp::root_posteriors(model, Part::Image, &xs);
    let bayes = fraction_right(&mut posteriors.iter().map(|post| argmax(post)));
    Ok(ZeroShot { learned: accuracy(score), oracle: accuracy(pmi), bayes })
}

/// Pearson correlation of finite pairs (`NaN` when either side is constant).
pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let pairs: Vec<(f64, f64)> =
        a.iter().zip(b).filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(&x, &y)| (x, y)).collect();
    let n = pairs.len() as f64;
    let (ma, mb) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let cov: f64 = pairs.iter().map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = pairs.iter().map(|(x, _)| (x - ma).powi(2)).sum();
    let vb: f64 = pairs.iter().map(|(_, y)| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// A score named on the command line (`--score`, `--from`): `pmi`, `t7` (the T7 representation,
/// log-weighted inner product of the posteriors), `perturbed:AMP[:SEED]` (the PMI plus a fixed
/// pseudo-random perturbation of amplitude `AMP`), `through:STATISTIC` (the PMI of a statistic
/// of the image, on an enumerable model) or `ckpt:PATH` (a checkpoint of `jghm train` on the
/// same model, [`checkpoint_score`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ScoreSpec {
    Pmi,
    T7,
    Perturbed { amplitude: f64, seed: u64 },
    Through(Statistic),
    Checkpoint(std::path::PathBuf),
}

/// Why a named score cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ScoreSpecError {
    #[error("unknown score '{0}': use pmi, t7, perturbed:AMP[:SEED], through:STATISTIC or ckpt:PATH")]
    Unknown(String),
    #[error("perturbed:AMP needs a finite number AMP, got '{0}'")]
    Amplitude(String),
    #[error("perturbed:AMP:SEED needs an integer SEED, got '{0}'")]
    Seed(String),
    #[error("--score through:{0} needs exact enumeration of the model (it is too large); use pmi, t7, perturbed:AMP or ckpt:PATH")]
    ThroughTooLarge(String),
    #[error(transparent)]
    Statistic(#[from] SufficiencyError),
    #[error(transparent)]
    Info(#[from] InfoError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl std::str::FromStr for ScoreSpec {
    type Err = ScoreSpecError;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let (head, arg) = name.split_once(':').map_or((name, None), |(h, a)| (h, Some(a)));
        Ok(match (head, arg) {
            ("pmi", None) => ScoreSpec::Pmi,
            ("t7", None) => ScoreSpec::T7,
            ("perturbed", Some(arg)) => {
                let mut parts = arg.split(':');
                let amplitude = parts
                    .next()
                    .and_then(|a| a.parse::<f64>().ok())
                    .filter(|a| a.is_finite())
                    .ok_or_else(|| ScoreSpecError::Amplitude(arg.into()))?;
                let seed = match parts.next() {
                    None => 0,
                    Some(s) => s.parse().map_err(|_| ScoreSpecError::Seed(s.into()))?,
                };
                ScoreSpec::Perturbed { amplitude, seed }
            }
            ("through", Some(statistic)) => ScoreSpec::Through(statistic.parse()?),
            ("ckpt", Some(path)) => ScoreSpec::Checkpoint(path.into()),
            _ => return Err(ScoreSpecError::Unknown(name.into())),
        })
    }
}

impl ScoreSpec {
    /// The score on the model of `file`. `through:` enumerates the model (an error when it is
    /// too large); `ckpt:` reads and checks the checkpoint against the model (its hash) and
    /// `max_bytes` of memory.
    pub fn build<'m>(
        &self,
        file: &'m ModelFile,
        max_bytes: Option<u64>,
    ) -> Result<Box<dyn Score + Send + 'm>, ScoreSpecError> {
        let model = &file.model;
        Ok(match self {
            ScoreSpec::Pmi => Box::new(Pmi { model }),
            ScoreSpec::T7 => Box::new(LogWeighted::new(model)?),
            ScoreSpec::Perturbed { amplitude, seed } => {
                Box::new(Perturbed { base: Pmi { model }, amplitude: *amplitude, seed: *seed })
            }
            ScoreSpec::Through(statistic) => {
                let en = Enumeration::new(model).map_err(|_| ScoreSpecError::ThroughTooLarge(statistic.to_string()))?;
                let classes = Evaluator::new(model, Part::Image, *statistic)?.classes(&en.image);
                let gap = Gap::new(&en, Part::Image, classes);
                Box::new(Table::new(
                    &format!("through:{statistic}"),
                    &en.image.tokens,
                    &en.text.tokens,
                    gap.statistic_pmi_grid(),
                ))
            }
            ScoreSpec::Checkpoint(path) => {
                checkpoint_score(model, &CheckpointFile::open(file, path, max_bytes)?)?.score
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of a score's name parses to its variant; malformed ones name the part at fault.
    #[test]
    fn score_names_parse_to_their_variants() {
        let parse = |s: &str| s.parse::<ScoreSpec>();
        assert_eq!(parse("pmi").unwrap(), ScoreSpec::Pmi);
        assert_eq!(parse("t7").unwrap(), ScoreSpec::T7);
        assert_eq!(parse("perturbed:0.5").unwrap(), ScoreSpec::Perturbed { amplitude: 0.5, seed: 0 });
        assert_eq!(parse("perturbed:0.5:7").unwrap(), ScoreSpec::Perturbed { amplitude: 0.5, seed: 7 });
        assert_eq!(parse("through:map-root").unwrap(), ScoreSpec::Through(Statistic::MapRoot));
        assert_eq!(parse("ckpt:a/b.safetensors").unwrap(), ScoreSpec::Checkpoint("a/b.safetensors".into()));
        assert!(matches!(parse("pmi:3"), Err(ScoreSpecError::Unknown(_))));
        assert!(matches!(parse("cosine"), Err(ScoreSpecError::Unknown(_))));
        assert!(matches!(parse("perturbed:inf"), Err(ScoreSpecError::Amplitude(_))));
        assert!(matches!(parse("perturbed:0.1:x"), Err(ScoreSpecError::Seed(_))));
        assert!(matches!(parse("through:nonsense"), Err(ScoreSpecError::Statistic(_))));
    }
}
