//! The four risks of the paper's simulations (the book, Reproducing the paper), Monte Carlo with standard errors.
//!
//! Each estimator takes the **data model** (which draws the samples and supplies the exact
//! conditionals) and the **predictors** separately (their own model, when they have one): the
//! same code gives the Bayes risk, a learned model's risk and mis-specified BP's risk. Every
//! predictor is evaluated on the same samples as the data model's Bayes predictor, so its
//! excess risk (predictor minus Bayes) is a paired difference with a tight interval.
//!
//! | task | loss of a predictor on one sample | Bayes predictor |
//! |---|---|---|
//! | CLIP | `ℓ_K^{X→Y} + ℓ_K^{Y→X}`: the **sum** of both directions, `K = 4` | `S = PMI` (T2) |
//! | zero-shot | `-log P̂(y_1 \| x)` | `p(y_1 \| x)` by BP |
//! | denoising | `Σ_{i ≤ N_X} (D(x̃, y)_i - v_i)²`, `x̃_i = v_i + σ ε_i`, `σ = 1` | `E[v_i \| x̃, y]` |
//! | vision-language | `(1/(N_Y-1)) Σ_{t=2}^{N_Y} -log q(y_t \| y_{<t}, x)` | `p(y_t \| y_{<t}, x)` |
//!
//! # Rao-Blackwellisation
//! Where the data model's conditional law of the target is exact by BP, the loss is averaged
//! over it instead of read at the sampled target (the same expectation, a smaller variance):
//! zero-shot `Σ_c p(c | x) (-log P̂(c | x))`; vision-language, per position,
//! `Σ_v p(v | y_{<t}, x) (-log q(v | y_{<t}, x))`; denoising
//! `Σ_i (D_i - E[v_i | x̃, y])² + Var[v_i | x̃, y]`. The Bayes risks become
//! `E H(Y_1 | X = x)`, the mean conditional entropy and `E Σ_i Var[v_i | X̃, Y]`, and each
//! excess risk a mean of per-sample KL divergences (or squared distances to the posterior
//! mean), nonnegative sample by sample. The CLIP loss of a finite batch has no such form and is
//! averaged over the batch's `K` anchors as in [`crate::contrastive::monte_carlo`].
//!
//! # Reproducibility
//! Samples come in fixed chunks, chunk `c` drawn from `rng::stream(seed, c)`, run in parallel
//! and combined in order: the numbers do not depend on the thread count.
//!
//! Slightly over 600 lines: the four estimators share their chunking, their paired summary
//! and their error type, and are compared side by side with the table above.

use rayon::prelude::*;
use serde::Serialize;

use super::control_variate::{ControlVariate, LocalVariance, StateCounts};
use super::{Denoiser, NextToken};
use crate::bp::{BatchMarginals, Incremental, MarginalWorkspace};
use crate::contrastive::{self, Batch};
use crate::downstream::bayes::{first_token_law, value_moments, value_moments_batch};
use crate::downstream::labels::Label;
use crate::downstream::noise::ValueNoise;
use crate::downstream::zero_shot::{PromptDraws, PromptEnsemble, ZeroShotRule};
use crate::evidence::SoftImage;
use crate::info::Estimate;
use crate::model::Jghm;
use crate::rng::{self, Rng};
use crate::sample::Sampler;
use crate::score::{Pmi, Score};

/// What stops a risk estimate, naming the cause.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    #[error("{task}: at least 2 samples are needed for a standard error (got {got})")]
    TooFewSamples { task: &'static str, got: usize },
    #[error("{task}: {what}")]
    Invalid { task: &'static str, what: String },
    #[error("{task}: the loss of '{name}' is not finite on a sample ({value}); the predictor gives probability zero to a possible outcome")]
    NotFinite { task: &'static str, name: String, value: f64 },
}

/// The four tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Task {
    Clip,
    ZeroShot,
    Denoise,
    Vlm,
}

impl Task {
    pub const ALL: [Task; 4] = [Task::Clip, Task::ZeroShot, Task::Denoise, Task::Vlm];
    /// The name in result files: `clip`, `zero-shot`, `denoise`, `vlm`.
    pub fn key(self) -> &'static str {
        match self {
            Task::Clip => "clip",
            Task::ZeroShot => "zero-shot",
            Task::Denoise => "denoise",
            Task::Vlm => "vlm",
        }
    }
    pub fn parse(s: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.key() == s)
    }
}

/// One predictor's risk on the samples of a [`TaskRisk`].
#[derive(Clone, Debug, Serialize)]
pub struct PredictorRisk {
    pub name: String,
    /// Prompts per class (zero-shot classifiers built from a score).
    pub prompts: Option<usize>,
    pub risk: Estimate,
    /// Paired with the data model's Bayes risk on the same samples: risk − Bayes.
    pub excess: Estimate,
}

/// The data model's Bayes risk and each predictor's risk on the same samples.
#[derive(Clone, Debug, Serialize)]
pub struct TaskRisk {
    pub task: Task,
    pub bayes: Estimate,
    pub predictors: Vec<PredictorRisk>,
    /// Independent Monte Carlo units the standard errors are taken over (batches for CLIP,
    /// chunks of images sharing one prompt set for zero-shot, pairs otherwise).
    pub units: usize,
    /// Pairs `(x, y)` drawn.
    pub pairs: usize,
    pub method: String,
}

/// Per-unit losses, index 0 the data model's Bayes predictor, into a [`TaskRisk`].
fn summarise(
    task: Task,
    units: Vec<Vec<f64>>,
    names: Vec<(String, Option<usize>)>,
    pairs: usize,
    method: String,
) -> Result<TaskRisk, RiskError> {
    for (values, (name, _)) in units.iter().zip(std::iter::once(&("bayes".to_string(), None)).chain(&names)) {
        if let Some(v) = values.iter().find(|v| !v.is_finite()) {
            return Err(RiskError::NotFinite { task: task.key(), name: name.clone(), value: *v });
        }
    }
    let bayes = &units[0];
    let predictors = names
        .into_iter()
        .zip(&units[1..])
        .map(|((name, prompts), values)| {
            let diff: Vec<f64> = values.iter().zip(bayes).map(|(a, b)| a - b).collect();
            PredictorRisk { name, prompts, risk: Estimate::from_samples(values), excess: Estimate::from_samples(&diff) }
        })
        .collect();
    Ok(TaskRisk { task, bayes: Estimate::from_samples(bayes), predictors, units: bayes.len(), pairs, method })
}

/// Runs `per_chunk(rng, len)` over fixed chunks of `chunk` units (the last one shorter), chunk
/// `c` with `rng::stream(seed, c)`, in parallel; returns `[predictor][unit]` in order.
fn chunked<F>(samples: usize, chunk: usize, seed: u64, per_chunk: F) -> Result<Vec<Vec<f64>>, RiskError>
where
    F: Fn(&mut Rng, usize) -> Result<Vec<Vec<f64>>, RiskError> + Sync,
{
    let parts: Vec<Vec<Vec<f64>>> = (0..samples.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut rng = rng::stream(seed, c as u64);
            per_chunk(&mut rng, chunk.min(samples - c * chunk))
        })
        .collect::<Result<_, _>>()?;
    let mut out: Vec<Vec<f64>> = vec![vec![]; parts.first().map_or(0, Vec::len)];
    for part in parts {
        for (o, p) in out.iter_mut().zip(part) {
            o.extend(p);
        }
    }
    Ok(out)
}

fn check_samples(task: Task, samples: usize) -> Result<(), RiskError> {
    if samples < 2 {
        return Err(RiskError::TooFewSamples { task: task.key(), got: samples });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CLIP

/// The CLIP risk `ℓ_K^{X→Y}(S) + ℓ_K^{Y→X}(S)` (the **sum** of both one-sided losses, each the
/// cross-entropy of the positive among `K` candidates with `K − 1` independent negatives), for
/// every score, and the Bayes risk at `S = PMI` of the data model (T2: the minimum of the sum).
/// `samples` i.i.d. batches of `K` pairs from `data`; each batch's loss averaged over its `K`
/// anchors ([`contrastive::monte_carlo`], common random numbers for all scores).
pub fn clip_risks(
    data: &Jghm,
    scores: &[&dyn Score],
    k: usize,
    samples: usize,
    seed: u64,
) -> Result<TaskRisk, RiskError> {
    check_samples(Task::Clip, samples)?;
    if k < 2 {
        return Err(RiskError::Invalid { task: "clip", what: format!("the batch K must be at least 2 (got {k})") });
    }
    let pmi = Pmi { model: data };
    let all: Vec<&dyn Score> = std::iter::once(&pmi as &dyn Score).chain(scores.iter().copied()).collect();
    let mc = contrastive::monte_carlo(data, &all, Batch::Finite(k), samples, seed)
        .map_err(|e| RiskError::Invalid { task: "clip", what: e.to_string() })?;
    // ℓ^{X→Y} + ℓ^{Y→X} per batch.
    let units: Vec<Vec<f64>> = mc.terms.iter().map(|t| t.iter().map(|[xy, yx]| xy + yx).collect()).collect();
    let names = scores.iter().map(|s| (s.name(), None)).collect();
    let method = format!("CLIP risk = sum of both directions; {}", mc.method);
    summarise(Task::Clip, units, names, samples * k, method)
}

/// [`clip_risks`] of one score.
pub fn clip_risk(data: &Jghm, score: &dyn Score, k: usize, samples: usize, seed: u64) -> Result<TaskRisk, RiskError> {
    clip_risks(data, &[score], k, samples, seed)
}

// ---------------------------------------------------------------------------------------------
// Zero-shot

/// A zero-shot classifier of the first text token (the paper's label).
#[derive(Clone, Copy)]
pub enum Classifier<'a> {
    /// `P̂(c | x) = p_m(y_1 = c | x)` by BP on model `m` (Bayes when `m` is the data model,
    /// mis-specified BP otherwise).
    Bayes(&'a Jghm),
    /// The prompt-ensemble classifier of a score ([`PromptEnsemble`], the book, T8-T10):
    /// `P̂(c | x) = softmax_c(log p(c) + log mean_{m ≤ M} exp S(x, y_{c,m}))`, prompts
    /// `y_{c,m} ~ p(y | y_1 = c)` of the data model, `p(c) = p(y_1 = c)`.
    Prompts(&'a dyn Score),
    /// The same prompts with the paper's rule, without `log p(c)` ([`ZeroShotRule::Paper`]):
    /// `P̂(c | x) = softmax_c(log mean_{m ≤ M} exp S(x, y_{c,m}))`. Named `<score> (paper's rule)`.
    PaperPrompts(&'a dyn Score),
}

impl Classifier<'_> {
    /// The score and rule of a prompt classifier.
    fn prompts(&self) -> Option<(&dyn Score, ZeroShotRule)> {
        match *self {
            Classifier::Bayes(_) => None,
            Classifier::Prompts(s) => Some((s, ZeroShotRule::WithPrior)),
            Classifier::PaperPrompts(s) => Some((s, ZeroShotRule::Paper)),
        }
    }
}

/// The suffix of a score's name under the paper's zero-shot rule.
pub const PAPER_RULE: &str = " (paper's rule)";

/// The paper's label: the first text token, `C = y_1`.
const FIRST_TOKEN: Label = Label::TextToken(0);

/// Images per zero-shot chunk; the images of a chunk share one prompt set, so the chunk is the
/// Monte Carlo unit (sample counts are rounded up to a multiple of it).
pub const ZERO_SHOT_CHUNK: usize = 32;

/// `Σ_c p(c) (-log q(c))` over the `c` with `p(c) > 0` (`+inf` if `q` misses one of them).
fn cross_entropy(p: &[f64], log_q: &[f64]) -> f64 {
    p.iter().zip(log_q).filter(|(p, _)| **p > 0.0).map(|(p, lq)| -p * lq).sum()
}

/// Zero-shot risks `E_X Σ_c p(c | X) (-log P̂(c | X))` (Rao-Blackwellised cross-entropy of the
/// first text token, module doc) of every classifier — a [`Classifier::Prompts`] once per
/// number of prompts in `prompts` (nested: the first `M` of one prompt set of size
/// `max(prompts)`) — and the Bayes risk `E_X H(Y_1 | X)` of the data model. `samples` images
/// (rounded up to a multiple of [`ZERO_SHOT_CHUNK`]).
pub fn zero_shot_risks(
    data: &Jghm,
    classifiers: &[Classifier],
    prompts: &[usize],
    samples: usize,
    seed: u64,
) -> Result<TaskRisk, RiskError> {
    check_samples(Task::ZeroShot, samples)?;
    let uses_prompts = classifiers.iter().any(|c| c.prompts().is_some());
    if uses_prompts && (prompts.is_empty() || prompts.contains(&0)) {
        return Err(RiskError::Invalid {
            task: "zero-shot",
            what: "give at least one number of prompts, each ≥ 1".into(),
        });
    }
    let m_max = if uses_prompts { prompts.iter().copied().max().unwrap_or(1) } else { 0 };
    let law = FIRST_TOKEN.law(data, None).map_err(|e| RiskError::Invalid { task: "zero-shot", what: e.to_string() })?;
    let chunks = samples.div_ceil(ZERO_SHOT_CHUNK);
    let sampler = Sampler::new(data);
    let mut names = vec![];
    for c in classifiers {
        match c {
            Classifier::Bayes(m) => {
                names.push((if std::ptr::eq(*m, data) { "bayes".into() } else { "bp".into() }, None))
            }
            Classifier::Prompts(s) => names.extend(prompts.iter().map(|&m| (s.name(), Some(m)))),
            Classifier::PaperPrompts(s) => names.extend(prompts.iter().map(|&m| (s.name() + PAPER_RULE, Some(m)))),
        }
    }
    let units = chunked(chunks, 1, seed, |rng, _| {
        let images: Vec<Vec<usize>> = (0..ZERO_SHOT_CHUNK).map(|_| sampler.pair(rng, false).image).collect();
        // The prompt sets shared by the chunk's images, drawn from p(y | y_1 = c).
        let ensemble = match uses_prompts {
            true => Some(
                PromptEnsemble::draw(data, &law, m_max, PromptDraws::Shared(rng))
                    .map_err(|e| RiskError::Invalid { task: "zero-shot", what: e.to_string() })?,
            ),
            false => None,
        };
        let mut mws = MarginalWorkspace::new(data);
        let laws: Vec<Vec<f64>> =
            images.iter().map(|x| first_token_law(&mut mws, data, x)).collect::<Result<_, _>>().map_err(|_| {
                RiskError::Invalid { task: "zero-shot", what: "a sampled image has probability zero".into() }
            })?;
        // Per image, then averaged over the chunk: index 0 Bayes, then each classifier.
        let mut per_image: Vec<Vec<f64>> =
            vec![laws.iter().map(|p| cross_entropy(p, &p.iter().map(|q| q.ln()).collect::<Vec<_>>())).collect()];
        for classifier in classifiers {
            match classifier {
                Classifier::Bayes(m) => {
                    let mut mws = MarginalWorkspace::new(m);
                    per_image.push(
                        images
                            .iter()
                            .zip(&laws)
                            .map(|(x, p)| match first_token_law(&mut mws, m, x) {
                                Ok(q) => cross_entropy(p, &q.iter().map(|q| q.ln()).collect::<Vec<_>>()),
                                Err(_) => f64::INFINITY,
                            })
                            .collect(),
                    );
                }
                Classifier::Prompts(_) | Classifier::PaperPrompts(_) => {
                    let (score, rule) = classifier.prompts().expect("a prompt classifier");
                    let ensemble = ensemble.as_ref().expect("drawn when a classifier uses prompts");
                    let flat = ensemble.flat();
                    let grid = score.grid(&images, &flat);
                    for &m in prompts {
                        per_image.push(
                            (0..images.len())
                                .map(|i| {
                                    let row = &grid[i * flat.len()..(i + 1) * flat.len()];
                                    cross_entropy(&laws[i], &ensemble.log_classifier_by(row, m, rule))
                                })
                                .collect(),
                        );
                    }
                }
            }
        }
        Ok(per_image.iter().map(|v| vec![v.iter().sum::<f64>() / v.len() as f64]).collect())
    })?;
    let method = format!(
        "Monte Carlo: {} images from the data model in {chunks} chunks of {ZERO_SHOT_CHUNK} (seed {seed}); each chunk shares one prompt set of {m_max} exact draws per class from p(y | y_1 = c); cross-entropy averaged over p(y_1 | x) by BP (Rao-Blackwellised); stderr over chunks",
        chunks * ZERO_SHOT_CHUNK
    );
    summarise(Task::ZeroShot, units, names, chunks * ZERO_SHOT_CHUNK, method)
}

/// [`zero_shot_risks`] of one score with `m` prompts per class.
pub fn zero_shot_risk(
    data: &Jghm,
    score: &dyn Score,
    m: usize,
    samples: usize,
    seed: u64,
) -> Result<TaskRisk, RiskError> {
    zero_shot_risks(data, &[Classifier::Prompts(score)], &[m], samples, seed)
}

// ---------------------------------------------------------------------------------------------
// Conditional denoising

/// Pairs per vision-language chunk.
pub const PAIR_CHUNK: usize = 128;

/// Pairs per denoising chunk: drawn in order from the chunk's stream, then their posterior
/// moments computed together (in SIMD blocks of [`crate::bp::marginals::LANES`]).
pub const DENOISE_CHUNK: usize = 1024;

/// Pilot pairs that fit the denoising control variate's coefficients: an eighth of the
/// samples, at least 512 and at most 8,192.
pub fn denoise_pilot_size(samples: usize) -> usize {
    (samples / 8).clamp(512, 8192)
}

/// How [`denoise_risks_with`] computes the data model's posterior moments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moments {
    /// All pairs of a chunk together ([`crate::downstream::bayes::value_moments_batch`]; predictors via
    /// [`Denoiser::denoise_batch`]).
    Batched,
    /// One pair at a time ([`value_moments`]; predictors via [`Denoiser::denoise`]): the oracle.
    PerSample,
}

/// Options of [`denoise_risks_with`]; [`denoise_risks`] uses the default (batched, with the
/// control variate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DenoiseOptions {
    pub moments: Moments,
    /// Subtract the control variate `β·(φ(Z) − μ)` of the hidden-state counts
    /// ([`super::control_variate`]) from every unit: unbiased, smaller variance.
    pub control_variate: bool,
}

impl Default for DenoiseOptions {
    fn default() -> Self {
        DenoiseOptions { moments: Moments::Batched, control_variate: true }
    }
}

/// One chunk's draws: every node's state (image values `v` at the image leaves), the noisy
/// values `x̃_i = v_i + σ ε_i`, in the order the stream gives them.
struct NoisyDraws {
    states: Vec<Vec<usize>>,
    images: Vec<Vec<usize>>,
    texts: Vec<Vec<usize>>,
    noisy: Vec<Vec<f64>>,
}

fn draw_noisy(sampler: &Sampler, rng: &mut Rng, len: usize, noise: ValueNoise) -> NoisyDraws {
    let mut d = NoisyDraws { states: vec![], images: vec![], texts: vec![], noisy: vec![] };
    for _ in 0..len {
        let pair = sampler.pair(rng, true);
        // x̃_i = v_i + σ ε_i
        d.noisy.push(noise.observe_image(&pair.image, rng));
        d.states.push(pair.hidden.expect("asked for"));
        d.images.push(pair.image);
        d.texts.push(pair.text);
    }
    d
}

/// The data model's posterior means `E[v_i | x̃, y]` and the Bayes units `Σ_i Var[v_i | x̃, y]`
/// of a chunk's draws.
fn posterior_moments(
    data: &Jghm,
    batch: &BatchMarginals,
    d: &NoisyDraws,
    noise: ValueNoise,
    how: Moments,
) -> Result<(Vec<Vec<f64>>, Vec<f64>), RiskError> {
    let vocab = data.image_vocab();
    let lambdas: Vec<Vec<f64>> = d.noisy.iter().map(|x| noise.evidence(x, vocab)).collect();
    let obs: Vec<SoftImage> =
        lambdas.iter().zip(&d.texts).map(|(lambda, text)| SoftImage { lambda, vocab, text }).collect();
    let moments: Vec<Option<(Vec<f64>, Vec<f64>)>> = match how {
        Moments::Batched => value_moments_batch(batch, data, &obs),
        Moments::PerSample => {
            let mut ws = MarginalWorkspace::new(data);
            obs.iter().map(|o| value_moments(&mut ws, data, o)).collect()
        }
    };
    let mut means = Vec::with_capacity(obs.len());
    let mut bayes = Vec::with_capacity(obs.len());
    for m in moments {
        let (mean, var) =
            m.ok_or_else(|| RiskError::Invalid { task: "denoise", what: "a sample has probability zero".into() })?;
        means.push(mean);
        bayes.push(var.iter().sum());
    }
    Ok((means, bayes))
}

/// Fits the control variate on `pilot` pairs drawn from the streams `u64::MAX − c` of `seed`
/// (never those of the main draws, which use `c = 0, 1, …`): `β` is independent of them.
fn fit_control_variate(
    data: &Jghm,
    sampler: &Sampler,
    batch: &BatchMarginals,
    noise: ValueNoise,
    pilot: usize,
    seed: u64,
) -> Result<ControlVariate, RiskError> {
    let parts: Vec<(NoisyDraws, Vec<f64>)> = (0..pilot.div_ceil(DENOISE_CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = rng::stream(seed, u64::MAX - c as u64);
            let d = draw_noisy(sampler, &mut rng, DENOISE_CHUNK.min(pilot - c * DENOISE_CHUNK), noise);
            let (_, bayes) = posterior_moments(data, batch, &d, noise, Moments::Batched)?;
            Ok((d, bayes))
        })
        .collect::<Result<_, RiskError>>()?;
    let mut states = vec![];
    let mut noisy = vec![];
    let mut values = vec![];
    for (d, v) in parts {
        states.extend(d.states);
        noisy.extend(d.noisy);
        values.extend(v);
    }
    Ok(ControlVariate::fit(StateCounts::new(data), LocalVariance::new(data, noise), &states, &noisy, &values))
}

/// Denoising risks `E Σ_i (D(X̃, Y)_i − v_i)²` under noise model (a), `X̃_i = v_i + σ ε_i`, for
/// every denoiser, Rao-Blackwellised over `v | x̃, y` of the data model (module doc), and the
/// Bayes risk `E Σ_i Var[v_i | X̃, Y]` (the posterior mean's). `samples` pairs, one noise draw
/// each; batched marginals and the control variate of the hidden-state counts
/// ([`DenoiseOptions::default`]).
pub fn denoise_risks(
    data: &Jghm,
    denoisers: &[&dyn Denoiser],
    noise: ValueNoise,
    samples: usize,
    seed: u64,
) -> Result<TaskRisk, RiskError> {
    denoise_risks_with(data, denoisers, noise, samples, seed, DenoiseOptions::default())
}

/// [`denoise_risks`] with the moments computed batched or per sample (the same draws and the
/// same numbers either way), with or without the control variate. Unit `j` of predictor `D`:
/// `Σ_i Var[v_i | x̃_j, y_j] + Σ_i (D_i − E[v_i | x̃_j, y_j])² − β·(φ(z_j) − μ)` (the last term
/// only with the control variate, the same for every predictor, so the paired excess is
/// unchanged); the standard error is over the `samples` i.i.d. units.
pub fn denoise_risks_with(
    data: &Jghm,
    denoisers: &[&dyn Denoiser],
    noise: ValueNoise,
    samples: usize,
    seed: u64,
    options: DenoiseOptions,
) -> Result<TaskRisk, RiskError> {
    check_samples(Task::Denoise, samples)?;
    let sigma = noise.sigma;
    if !(sigma > 0.0 && sigma.is_finite()) {
        return Err(RiskError::Invalid {
            task: "denoise",
            what: format!("σ must be positive and finite (got {sigma})"),
        });
    }
    let sampler = Sampler::new(data);
    let batch = BatchMarginals::new(data);
    let cv = match options.control_variate {
        true => {
            let cv = fit_control_variate(data, &sampler, &batch, noise, denoise_pilot_size(samples), seed)?;
            let mean = cv.mean();
            Some((cv, mean))
        }
        false => None,
    };
    let units = chunked(samples, DENOISE_CHUNK, seed, |rng, len| {
        let d = draw_noisy(&sampler, rng, len, noise);
        let (means, bayes) = posterior_moments(data, &batch, &d, noise, options.moments)?;
        let mut out = vec![bayes.clone(); denoisers.len() + 1];
        let texts: Vec<&[usize]> = d.texts.iter().map(Vec::as_slice).collect();
        for (o, den) in out[1..].iter_mut().zip(denoisers) {
            let estimates = match options.moments {
                Moments::Batched => den.denoise_batch(&d.noisy, &texts),
                Moments::PerSample => d.noisy.iter().zip(&texts).map(|(x, y)| den.denoise(x, y)).collect(),
            };
            for ((unit, est), mean) in o.iter_mut().zip(&estimates).zip(&means) {
                // E[(D_i - v_i)² | x̃, y] = (D_i - E[v_i | x̃, y])² + Var[v_i | x̃, y]
                *unit += est.iter().zip(mean).map(|(e, m)| (e - m).powi(2)).sum::<f64>();
            }
        }
        if let Some((cv, mean)) = &cv {
            for (j, (z, x)) in d.states.iter().zip(&d.noisy).enumerate() {
                // f_j − β·(φ(z_j, x̃_j) − μ)
                let c = cv.correction(z, x, mean);
                out.iter_mut().for_each(|o| o[j] -= c);
            }
        }
        Ok(out)
    })?;
    let names = denoisers.iter().map(|d| (d.name(), None)).collect();
    let cv_note = cv.as_ref().map_or(String::new(), |(cv, _)| {
        format!(
            "; minus the control variate β·(φ - μ) of the {} hidden-state counts per (depth, side) and the local variance Σ_i Var[v_i | x̃_i, z_pa(i)] (exact means: BP and quadrature), β fitted on {} independent pilot pairs (unbiased)",
            cv.counts.dim(),
            cv.pilot
        )
    });
    let method = format!(
        "Monte Carlo: {samples} pairs, one noise draw each (σ = {sigma}, seed {seed}); squared error summed over the {} image leaves, averaged over v | x̃, y by BP (Rao-Blackwellised){cv_note}; stderr over pairs",
        data.image_len()
    );
    summarise(Task::Denoise, units, names, samples, method)
}

/// [`denoise_risks`] of one denoiser.
pub fn denoise_risk(
    data: &Jghm,
    denoiser: &dyn Denoiser,
    noise: ValueNoise,
    samples: usize,
    seed: u64,
) -> Result<TaskRisk, RiskError> {
    denoise_risks(data, &[denoiser], noise, samples, seed)
}

// ---------------------------------------------------------------------------------------------
// Vision-language

/// The data model's `p(y_t = · | y_{<t}, x)`, row-major, with the log-domain fallback.
/// Vision-language risks: the next-text-token cross-entropy given the earlier text tokens and
/// the image, averaged over positions `t = 2..N_Y` (1-based; rows `1..N_Y` of
/// [`NextToken::next_token_log_probs`]), Rao-Blackwellised over `y_t | y_{<t}, x` of the data
/// model (module doc), for every model, and the Bayes risk (the mean conditional entropy).
pub fn vlm_risks(data: &Jghm, models: &[&dyn NextToken], samples: usize, seed: u64) -> Result<TaskRisk, RiskError> {
    check_samples(Task::Vlm, samples)?;
    let n = data.text_len();
    if n < 2 {
        return Err(RiskError::Invalid { task: "vlm", what: "the text needs at least 2 tokens".into() });
    }
    let v = data.text_vocab();
    let sampler = Sampler::new(data);
    let units = chunked(samples, PAIR_CHUNK, seed, |rng, len| {
        let mut inc = Incremental::new(data);
        let mut out = vec![Vec::with_capacity(len); models.len() + 1];
        for _ in 0..len {
            let pair = sampler.pair(rng, false);
            let p = inc.conditionals_or_log_domain(&pair.image, &pair.text);
            if p.iter().any(|q| q.is_nan()) {
                return Err(RiskError::Invalid {
                    task: "vlm",
                    what: "a pair has probability zero under the data model".into(),
                });
            }
            let log_p: Vec<f64> = p.iter().map(|q| q.ln()).collect();
            // (1/(N_Y-1)) Σ_{t=1}^{N_Y-1} Σ_v p_t(v) (-log q_t(v))   (0-based rows)
            let risk = |log_q: &[f64]| {
                (1..n).map(|t| cross_entropy(&p[t * v..(t + 1) * v], &log_q[t * v..(t + 1) * v])).sum::<f64>()
                    / (n - 1) as f64
            };
            out[0].push(risk(&log_p));
            for (o, m) in out[1..].iter_mut().zip(models) {
                o.push(risk(&m.next_token_log_probs(&pair.image, &pair.text)));
            }
        }
        Ok(out)
    })?;
    let names = models.iter().map(|m| (m.name(), None)).collect();
    let method = format!(
        "Monte Carlo: {samples} pairs (seed {seed}); cross-entropy of text positions 2..{n} averaged over each position's p(y_t | y_<t, x) by BP (Rao-Blackwellised); stderr over pairs"
    );
    summarise(Task::Vlm, units, names, samples, method)
}

/// [`vlm_risks`] of one next-token model.
pub fn vlm_risk(data: &Jghm, m: &dyn NextToken, samples: usize, seed: u64) -> Result<TaskRisk, RiskError> {
    vlm_risks(data, &[m], samples, seed)
}
