//! Conditional diffusion of an image from a text, on the one-hot image embedding
//! (the book, T8-T10 (b), theorem T10).
//!
//! # Forward process
//! The image `x ∈ [V]^{N_X}` is embedded as `e_X ∈ R^{N_X × V}` (one-hot rows) and noised as
//!
//! ```text
//! X_t = α_t e_X + σ_t ε,   ε ~ N(0, I),   α_t² + σ_t² = 1   (variance preserving)
//! ```
//!
//! with the **cosine schedule** of Nichol & Dhariwal (2021), `T` steps, offset `s = 0.008`:
//! `ᾱ(t) = f(t)/f(0)`, `f(t) = cos²(π/2 · (t/T + s)/(1 + s))`, `β_t = min(1 - ᾱ(t)/ᾱ(t-1), 0.999)`,
//! `ᾱ_t = Π_{u≤t} (1 - β_u)`, `α_t = √ᾱ_t`, `σ_t = √(1 - ᾱ_t)` ([`Schedule`]).
//!
//! # The exact Bayes denoiser
//! `N(x_{t,i}; α e_v, σ² I) ∝ exp(α x_{t,i}(v) / σ²)` in `v`, so observing `X_t` is soft leaf
//! evidence `λ_i(v) ∝ exp(α_t x_{t,i}(v) / σ_t²)` on image leaf `i` (the noise model
//! [`NoiseLevel`], in [`super::noise`]), and
//! `D(x_t, y) = E[e_X | X_t = x_t, Y = y]` is the vector of BP marginals of the image leaves
//! given that soft evidence and the observed text ([`denoise`]). Conditions ([`Condition`]):
//! the text `y`; a statistic `g(y)` (the denoiser `D_g = E[e_X | X_t, g(Y)]` is the mixture
//! `Σ_{y' ∈ g^{-1}(g(y))} w_{y'} D(x_t, y')`, `w_{y'} ∝ p(y') p(x_t-evidence | y')`, an upward
//! pass each); nothing (unconditional).
//!
//! # DDPM ancestral sampling
//! `x_T ~ N(0, I)`; for `t = T, …, 2`, with `x̂_0 = D(x_t)`,
//! `x_{t-1} = √ᾱ_{t-1} β_t/(1-ᾱ_t) x̂_0 + √(1-β_t)(1-ᾱ_{t-1})/(1-ᾱ_t) x_t + √β̃_t z`,
//! `β̃_t = β_t (1-ᾱ_{t-1})/(1-ᾱ_t)` (Ho et al. 2020, posterior mean and variance). The last step
//! draws the discrete image exactly from `p(x | x_1, condition)` by BP (the standard last step
//! would output the mean `x̂_0`, which is not a token sequence). With the exact denoiser the only
//! error is the Gaussian reverse kernel, which vanishes as `T → ∞`.
//!
//! # T10 (`proofs/T10-diffusion.md`)
//! Per sample, `‖D - D_g‖² ≤ Σ_i 2 TV_i² ≤ N_X KL(p(x | x_t, y) ‖ p(x | x_t, g))`, and in
//! expectation `E‖D - D_g‖² ≤ N_X I(X; Y | X_t, G) ≤ 2 N_X I(X;Y|X_t,G) ≤ 2 N_X Suff_X(g)`
//! ([`t10_sample`], [`t10_level`]).
//!
//! For a learned score `S`, the denoiser [`guided_denoise`] under the prior
//! `P^S(x | y) ∝ p(x) exp S(x, y)` satisfies, by the same per-leaf Pinsker step and the chain
//! rule of KL through the shared channel, `E‖D - D^S‖² ≤ N_X (ℓ_∞^{Y→X}(S) - ℓ_∞^{Y→X}(PMI))`
//! (the stated `2 N_X` holds a fortiori).
//!
//! Slightly over 600 lines: the schedule, the exact and guided denoisers, the sampler and the
//! T10 checks share the soft-evidence workspace, and splitting them would scatter one chapter.

use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::Serialize;

use crate::bp::{self, Workspace};
use crate::evidence::{check_tokens, EvidenceError};
use crate::info::{kl, Enumeration, Estimate};
use crate::logspace::normalise_log;
use crate::model::{Jghm, Part};
use crate::rng::{self, Rng};
use crate::sample::Sampler;
use crate::sufficiency::{Evaluator, Gap, Statistic};

use super::laws::SideLaw;
use super::noise::NoiseLevel;
use super::DownstreamError;

/// Samples per random stream.
pub const CHUNK: usize = 16;

/// A variance-preserving noise schedule: `ᾱ_t` for `t = 0..=T` (`ᾱ_0 = 1`).
#[derive(Clone, Debug, Serialize)]
pub struct Schedule {
    pub alpha_bar: Vec<f64>,
}

impl Schedule {
    /// The cosine schedule with `steps ≥ 1` steps (module doc).
    pub fn cosine(steps: usize) -> Self {
        let s = 0.008;
        let f = |t: usize| ((t as f64 / steps as f64 + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2);
        let mut alpha_bar = vec![1.0];
        for t in 1..=steps {
            // β_t = min(1 - ᾱ(t)/ᾱ(t-1), 0.999); ᾱ_t = ᾱ_{t-1} (1 - β_t)
            let beta = (1.0 - f(t) / f(t - 1)).min(0.999);
            alpha_bar.push(alpha_bar[t - 1] * (1.0 - beta));
        }
        Schedule { alpha_bar }
    }
    pub fn steps(&self) -> usize {
        self.alpha_bar.len() - 1
    }
    /// `β_t = 1 - ᾱ_t / ᾱ_{t-1}`.
    pub fn beta(&self, t: usize) -> f64 {
        1.0 - self.alpha_bar[t] / self.alpha_bar[t - 1]
    }
    /// `(α_t, σ_t) = (√ᾱ_t, √(1 - ᾱ_t))`.
    pub fn level(&self, t: usize) -> NoiseLevel {
        NoiseLevel { alpha: self.alpha_bar[t].sqrt(), sigma: (1.0 - self.alpha_bar[t]).sqrt() }
    }
}

/// What the denoiser sees of the text.
#[derive(Clone, Debug)]
pub enum Condition {
    /// The text `y`.
    Text(Vec<usize>),
    /// A statistic `g(y)`: every text of the class of `y`, with `p(y')` and the class's
    /// separator posterior `p(w | t)`.
    Statistic { name: String, texts: Vec<Vec<usize>>, weights: Vec<f64>, latent: Vec<f64> },
    /// Nothing: the unconditional denoiser.
    None,
}

impl Condition {
    /// The class `g^{-1}(g(y))` of text `y` under a statistic of the text (texts enumerable).
    pub fn through(model: &Jghm, statistic: Statistic, y: &[usize]) -> Result<Self, DownstreamError> {
        TextClasses::new(model, statistic)?.condition_of(y)
    }

    /// The law `p(x | condition)` over the enumerated images.
    pub fn law(&self, model: &Jghm, images: &SideLaw) -> Result<Vec<f64>, DownstreamError> {
        match self {
            Condition::Text(y) => images.conditional(model, y),
            Condition::Statistic { latent, .. } => Ok(images.conditional_from_latent(latent)),
            Condition::None => Ok((0..images.table.len()).map(|i| images.table.p(i)).collect()),
        }
    }

    /// Whether every text of the condition fits the model (length and vocabulary).
    pub fn check(&self, model: &Jghm) -> Result<(), EvidenceError> {
        self.texts().into_iter().flatten().try_for_each(|y| check_tokens(model, Part::Text, y))
    }

    fn texts(&self) -> Vec<Option<&[usize]>> {
        match self {
            Condition::Text(y) => vec![Some(y)],
            Condition::Statistic { texts, .. } => texts.iter().map(|y| Some(y.as_slice())).collect(),
            Condition::None => vec![None],
        }
    }
}

/// The classes of a statistic `g` of the text, each as a [`Condition::Statistic`].
pub struct TextClasses {
    pub texts: SideLaw,
    /// The condition of each class, by class id.
    pub conditions: Vec<Condition>,
    /// The class of each enumerated text.
    pub of: Vec<usize>,
}

impl TextClasses {
    /// Enumerates the texts and groups them by `g` (texts enumerable).
    pub fn new(model: &Jghm, statistic: Statistic) -> Result<Self, DownstreamError> {
        let texts = SideLaw::new(model, Part::Text)?;
        let classes = Evaluator::new(model, Part::Text, statistic)?.classes(&texts.table);
        let (nw, table) = (texts.cut.size(), &texts.table);
        let conditions = (0..classes.count)
            .map(|t| {
                let members: Vec<usize> = (0..table.len()).filter(|&j| classes.of[j] == t).collect();
                let pt: f64 = members.iter().map(|&j| table.p(j)).sum();
                let mut latent = vec![0.0; nw];
                for &j in &members {
                    // p(w | t) = Σ_{y ∈ t} p(y) p(w | y) / p(t)
                    latent.iter_mut().zip(table.latent_row(j)).for_each(|(o, w)| *o += table.p(j) * w / pt);
                }
                Condition::Statistic {
                    name: statistic.to_string(),
                    texts: members.iter().map(|&j| table.tokens[j].clone()).collect(),
                    weights: members.iter().map(|&j| table.p(j)).collect(),
                    latent,
                }
            })
            .collect();
        Ok(TextClasses { texts, conditions, of: classes.of })
    }

    /// The condition `g(Y) = g(y)`; an error for a text of probability zero.
    pub fn condition_of(&self, y: &[usize]) -> Result<Condition, DownstreamError> {
        let i = self
            .texts
            .index_of(y)
            .ok_or(bp::BpError::ZeroProbability { what: "p(y)", needed: "the statistic's class" })?;
        Ok(self.conditions[self.of[i]].clone())
    }
}

/// The mixture weights `w_y ∝ p(y) p(x_t-evidence | y)` of the condition's texts.
fn mixture(
    model: &Jghm,
    cond: &Condition,
    x_t: &[f64],
    level: NoiseLevel,
    ws: &mut Workspace,
) -> Result<Vec<f64>, DownstreamError> {
    let logs = cond
        .texts()
        .iter()
        .map(|y| Ok(ws.upward(model, &level.evidence(model, x_t, *y)?)))
        .collect::<Result<Vec<f64>, DownstreamError>>()?;
    normalise_log(&logs).ok_or_else(|| {
        bp::BpError::ZeroProbability { what: "p(condition, x_t)", needed: "the mixture over the condition's texts" }
            .into()
    })
}

/// The exact Bayes denoiser `E[e_X | X_t = x_t, condition]` (module doc), row-major `N_X × V`.
pub fn denoise(model: &Jghm, cond: &Condition, x_t: &[f64], level: NoiseLevel) -> Result<Vec<f64>, DownstreamError> {
    let (nx, v) = (model.image_len(), model.image_vocab());
    let texts = cond.texts();
    let w = if texts.len() == 1 { vec![1.0] } else { mixture(model, cond, x_t, level, &mut Workspace::new(model))? };
    let mut out = vec![0.0; nx * v];
    for (y, wy) in texts.iter().zip(&w).filter(|(_, w)| **w > 0.0) {
        let m = bp::marginals(model, &level.evidence(model, x_t, *y)?)?;
        for (i, &u) in model.tree().image_leaves.iter().enumerate() {
            out[i * v..(i + 1) * v].iter_mut().zip(&m[u]).for_each(|(o, p)| *o += wy * p);
        }
    }
    Ok(out)
}

/// An exact draw from `p(x | x_t, condition)` by BP (the text first from the mixture weights).
/// An error when `x_t` or the condition's texts do not fit the model.
pub fn sample_posterior(
    model: &Jghm,
    cond: &Condition,
    x_t: &[f64],
    level: NoiseLevel,
    rng: &mut Rng,
) -> Result<Vec<usize>, DownstreamError> {
    let mut ws = Workspace::new(model);
    let texts = cond.texts();
    let y = if texts.len() == 1 {
        texts[0]
    } else {
        texts[rng::categorical(rng, &mixture(model, cond, x_t, level, &mut ws)?)]
    };
    ws.upward(model, &level.evidence(model, x_t, y)?);
    let mut states = vec![0; model.tree().nodes.len()];
    ws.sample_into(model, rng, &mut states);
    Ok(model.tree().image_leaves.iter().map(|&u| states[u]).collect())
}

/// One DDPM ancestral trajectory driven by the exact denoiser (module doc).
pub fn ddpm_one(
    model: &Jghm,
    cond: &Condition,
    schedule: &Schedule,
    rng: &mut Rng,
) -> Result<Vec<usize>, DownstreamError> {
    let n = model.image_len() * model.image_vocab();
    let mut x: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    let ab = &schedule.alpha_bar;
    for t in (2..=schedule.steps()).rev() {
        let x0 = denoise(model, cond, &x, schedule.level(t))?;
        let beta = schedule.beta(t);
        // μ̃ = √ᾱ_{t-1} β_t/(1-ᾱ_t) x̂_0 + √(1-β_t)(1-ᾱ_{t-1})/(1-ᾱ_t) x_t,  β̃ = β_t (1-ᾱ_{t-1})/(1-ᾱ_t)
        let c0 = ab[t - 1].sqrt() * beta / (1.0 - ab[t]);
        let ct = (1.0 - beta).sqrt() * (1.0 - ab[t - 1]) / (1.0 - ab[t]);
        let sd = (beta * (1.0 - ab[t - 1]) / (1.0 - ab[t])).sqrt();
        for (xi, x0i) in x.iter_mut().zip(&x0) {
            let z: f64 = StandardNormal.sample(rng);
            *xi = c0 * x0i + ct * *xi + sd * z;
        }
    }
    sample_posterior(model, cond, &x, schedule.level(1), rng)
}

/// `n` DDPM samples; chunk `c` of [`CHUNK`] samples uses stream `c` of `seed`.
pub fn ddpm(
    model: &Jghm,
    cond: &Condition,
    schedule: &Schedule,
    n: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, DownstreamError> {
    let chunks: Vec<Vec<Vec<usize>>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = rng::stream(seed, c as u64);
            (0..CHUNK.min(n - c * CHUNK)).map(|_| ddpm_one(model, cond, schedule, &mut rng)).collect()
        })
        .collect::<Result<_, _>>()?;
    Ok(chunks.into_iter().flatten().collect())
}

/// `n` exact draws from `p(x | condition)` by BP (the reference sampler). An error when the
/// condition's texts do not fit the model.
pub fn sample_exact(model: &Jghm, cond: &Condition, n: usize, seed: u64) -> Result<Vec<Vec<usize>>, EvidenceError> {
    cond.check(model)?;
    let tree = model.tree();
    let chunks: Vec<Vec<Vec<usize>>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = rng::stream(seed, c as u64);
            let mut ws = Workspace::new(model);
            let mut states = vec![0; tree.nodes.len()];
            let sampler = Sampler::new(model);
            (0..CHUNK.min(n - c * CHUNK))
                .map(|_| {
                    match cond {
                        Condition::None => sampler.joint_into(&mut rng, &mut states),
                        Condition::Text(y) => {
                            ws.upward(model, &bp::Tokens { image: None, text: Some(y) });
                            ws.sample_into(model, &mut rng, &mut states);
                        }
                        Condition::Statistic { texts, weights, .. } => {
                            let y = &texts[rng::categorical(&mut rng, weights)];
                            ws.upward(model, &bp::Tokens { image: None, text: Some(y) });
                            ws.sample_into(model, &mut rng, &mut states);
                        }
                    }
                    tree.image_leaves.iter().map(|&u| states[u]).collect()
                })
                .collect()
        })
        .collect();
    Ok(chunks.into_iter().flatten().collect())
}

/// `TV = ½ Σ_x |p̂(x) - law(x)|`, `p̂` the empirical law of `samples` (samples outside the
/// table count fully).
pub fn total_variation(images: &SideLaw, law: &[f64], samples: &[Vec<usize>]) -> f64 {
    let mut counts = vec![0.0; law.len()];
    let mut outside = 0.0;
    for s in samples {
        match images.index_of(s) {
            Some(i) => counts[i] += 1.0,
            None => outside += 1.0,
        }
    }
    let n = samples.len() as f64;
    0.5 * (counts.iter().zip(law).map(|(c, p)| (c / n - p).abs()).sum::<f64>() + outside / n)
}

/// The T10 quantities of one `(x_t, y)`: `‖D - D_g‖²` and `KL(p(x | x_t, y) ‖ p(x | x_t, g(y)))`.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct T10Sample {
    pub squared_distance: f64,
    pub kl: f64,
}

/// `p(x | x_t, condition) ∝ p(x | condition) Π_i λ_i(x_i)` over the enumerated images.
pub fn image_posterior(
    model: &Jghm,
    images: &SideLaw,
    cond: &Condition,
    x_t: &[f64],
    level: NoiseLevel,
) -> Result<Vec<f64>, DownstreamError> {
    Ok(posterior_under_prior(model, images, &cond.law(model, images)?, x_t, level))
}

/// `p(x | x_t) ∝ prior(x) Π_i λ_i(x_i)` over the enumerated images, for any prior law over them
/// (the same noise channel whatever the prior).
pub fn posterior_under_prior(
    model: &Jghm,
    images: &SideLaw,
    prior: &[f64],
    x_t: &[f64],
    level: NoiseLevel,
) -> Vec<f64> {
    let v = model.image_vocab();
    let le = level.log_evidence(x_t);
    let logs: Vec<f64> = images
        .table
        .tokens
        .iter()
        .zip(prior)
        .map(|(x, p)| p.ln() + x.iter().enumerate().map(|(i, &xi)| le[i * v + xi]).sum::<f64>())
        .collect();
    normalise_log(&logs).expect("some image has positive weight")
}

/// `E[e_X]` under a law over the enumerated images, row-major `N_X × V`.
pub fn embedding_mean(model: &Jghm, images: &SideLaw, law: &[f64]) -> Vec<f64> {
    let v = model.image_vocab();
    let mut mean = vec![0.0; model.image_len() * v];
    for (x, w) in images.table.tokens.iter().zip(law) {
        for (i, &xi) in x.iter().enumerate() {
            mean[i * v + xi] += w;
        }
    }
    mean
}

/// The denoiser guided by a score (the book, T8-T10, "On learned scores"): the Bayes denoiser under
/// the prior `P^S(x | y) ∝ p(x) exp S(x, y)` and the true noise channel,
/// `D^S(x_t, y) = E_{P^S}[e_X | X_t = x_t, y]`, by enumeration of the images. `guided` is
/// `P^S(· | y)` over the enumerated images
/// ([`super::generation::induced_from_scores`] of `log p(x)` and `S(·, y)`).
pub fn guided_denoise(model: &Jghm, images: &SideLaw, guided: &[f64], x_t: &[f64], level: NoiseLevel) -> Vec<f64> {
    embedding_mean(model, images, &posterior_under_prior(model, images, guided, x_t, level))
}

/// T10 at one `(x_t, y)`: the denoisers by BP, the KL by enumeration of the images.
pub fn t10_sample(
    model: &Jghm,
    images: &SideLaw,
    y: &[usize],
    through: &Condition,
    x_t: &[f64],
    level: NoiseLevel,
) -> Result<T10Sample, DownstreamError> {
    let text = Condition::Text(y.to_vec());
    let (d, dg) = (denoise(model, &text, x_t, level)?, denoise(model, through, x_t, level)?);
    let squared_distance = d.iter().zip(&dg).map(|(a, b)| (a - b).powi(2)).sum();
    let p = image_posterior(model, images, &text, x_t, level)?;
    let q = image_posterior(model, images, through, x_t, level)?;
    Ok(T10Sample { squared_distance, kl: kl(&p, &q) })
}

/// T10 at one noise level, Monte Carlo over `(X, Y, ε)` with exact per-sample terms.
#[derive(Clone, Debug, Serialize)]
pub struct T10Level {
    pub level: NoiseLevel,
    /// `E‖D(X_t, Y) - D_g(X_t, g(Y))‖²`.
    pub squared_distance: Estimate,
    /// `I(X; Y | X_t, G) = E KL(p(x | X_t, Y) ‖ p(x | X_t, G))`.
    pub conditional_information: Estimate,
    /// `Suff_X(g) = I(X; Y | G)` (exact).
    pub sufficiency: f64,
    /// `N_X`.
    pub image_tokens: usize,
}

/// T10 at `level` for a statistic of the text: `samples` pairs `(x, y) ~ p`, one noise draw
/// each, stream `c` of `seed` per chunk of [`CHUNK`].
pub fn t10_level(
    en: &Enumeration,
    statistic: Statistic,
    level: NoiseLevel,
    samples: usize,
    seed: u64,
) -> Result<T10Level, DownstreamError> {
    let model = en.model;
    let images = SideLaw::new(model, Part::Image)?;
    let classes = Evaluator::new(model, Part::Text, statistic)?.classes(&en.text);
    let sufficiency = Gap::new(en, Part::Text, classes).kl_form();
    let by_class = TextClasses::new(model, statistic)?;
    let sampler = Sampler::new(model);
    let terms: Vec<Vec<T10Sample>> = (0..samples.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = rng::stream(seed, c as u64);
            (0..CHUNK.min(samples - c * CHUNK))
                .map(|_| {
                    let pair = sampler.pair(&mut rng, false);
                    let x_t = level.forward(&pair.image, model.image_vocab(), &mut rng);
                    let through = by_class.condition_of(&pair.text)?;
                    t10_sample(model, &images, &pair.text, &through, &x_t, level)
                })
                .collect()
        })
        .collect::<Result<_, _>>()?;
    let terms: Vec<T10Sample> = terms.into_iter().flatten().collect();
    Ok(T10Level {
        level,
        squared_distance: Estimate::from_samples(&terms.iter().map(|t| t.squared_distance).collect::<Vec<_>>()),
        conditional_information: Estimate::from_samples(&terms.iter().map(|t| t.kl).collect::<Vec<_>>()),
        sufficiency,
        image_tokens: model.image_len(),
    })
}

/// How close generated images are to the exact law `p(x | condition)` ([`total_variation`]),
/// next to the noise floor: the same distance for as many exact BP draws (seed of
/// [`rng::Purpose::DiffusionReference`]). `None` when the image side is too large to enumerate.
pub fn total_variation_check(
    model: &Jghm,
    cond: &Condition,
    generated: &[Vec<usize>],
    seed: u64,
) -> Result<Option<[f64; 2]>, DownstreamError> {
    if crate::info::side_size(model, Part::Image) > crate::info::SIDE_LIMIT {
        return Ok(None);
    }
    let images = SideLaw::new(model, Part::Image)?;
    let law = cond.law(model, &images)?;
    let reference = sample_exact(model, cond, generated.len(), rng::Purpose::DiffusionReference.seed(seed))?;
    Ok(Some([total_variation(&images, &law, generated), total_variation(&images, &law, &reference)]))
}

/// T10's chain `E‖D − D_g‖² ≤ 2 N_X I(X; Y | X_t, G) ≤ 2 N_X Suff_X(g)` at one level, with both
/// bounds evaluated.
#[derive(Clone, Debug)]
pub struct T10Bounds {
    /// The step `t` of the schedule.
    pub step: usize,
    pub level: T10Level,
    /// `2 N_X I(X; Y | X_t, G)`.
    pub bound_information: f64,
    /// `2 N_X Suff_X(g)`.
    pub bound_sufficiency: f64,
}

/// T10 at eight steps `t = T/8, 2T/8, …, T` of `schedule` ([`t10_level`], `samples` pairs each).
pub fn t10_grid(
    model: &Jghm,
    statistic: Statistic,
    schedule: &Schedule,
    samples: usize,
    seed: u64,
) -> Result<Vec<T10Bounds>, DownstreamError> {
    let en = Enumeration::new(model)?;
    (1..=8)
        .map(|k| (k * schedule.steps() / 8).max(1))
        .map(|step| {
            let level = t10_level(&en, statistic, schedule.level(step), samples, seed)?;
            let two_n = 2.0 * level.image_tokens as f64;
            Ok(T10Bounds {
                step,
                bound_information: two_n * level.conditional_information.value,
                bound_sufficiency: two_n * level.sufficiency,
                level,
            })
        })
        .collect()
}

/// What the denoiser of `jghm diffuse` sees, by name: `text`, `statistic:NAME` (a statistic
/// `g(y)` of the text; texts enumerable) or `none`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConditionSpec {
    Text,
    Statistic(Statistic),
    None,
}

impl std::str::FromStr for ConditionSpec {
    type Err = DownstreamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("statistic:") {
            Some(name) => Ok(ConditionSpec::Statistic(name.parse()?)),
            None if s == "text" => Ok(ConditionSpec::Text),
            None if s == "none" => Ok(ConditionSpec::None),
            None => Err(DownstreamError::Input(format!("unknown condition '{s}': use text, statistic:NAME or none"))),
        }
    }
}

/// A Monte Carlo figure as `jghm diffuse` prints it: value and standard error.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ValueStderr {
    pub value: f64,
    pub stderr: f64,
}

impl From<Estimate> for ValueStderr {
    fn from(e: Estimate) -> Self {
        ValueStderr { value: e.value, stderr: e.stderr }
    }
}

/// One level of [`t10_grid`] as `jghm diffuse --t10` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct T10Row {
    pub t: usize,
    pub alpha: f64,
    pub sigma: f64,
    pub squared_distance: ValueStderr,
    pub conditional_information: ValueStderr,
    pub bound_information: f64,
    /// The standard error of `bound_information` (`2 N_X` times that of the information).
    pub bound_information_stderr: f64,
    pub bound_sufficiency: f64,
    pub sufficiency: f64,
}

/// Everything `jghm diffuse` reports: DDPM with the exact Bayes denoiser, its total variation to
/// `p(x | condition)` next to the exact sampler's (both `None` when the images cannot be
/// enumerated), the generated images when asked, and the T10 check when asked.
#[derive(Clone, Debug, Serialize)]
pub struct DiffuseReport {
    pub tv_to_exact: Option<f64>,
    pub tv_reference: Option<f64>,
    pub steps: usize,
    pub samples: usize,
    pub condition: String,
    pub schedule: &'static str,
    pub method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<Vec<usize>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t10: Option<Vec<T10Row>>,
}

/// What to run: `samples` images by DDPM over the cosine schedule of `steps` steps given the text
/// `text` seen through `condition`; T10 at eight levels with `t10` pairs each when given.
#[derive(Clone, Debug)]
pub struct DiffuseSpec {
    pub text: Vec<usize>,
    pub condition: ConditionSpec,
    /// The condition's name as given (reported back).
    pub condition_name: String,
    pub steps: usize,
    pub samples: usize,
    pub seed: u64,
    pub keep_images: bool,
    pub t10: Option<usize>,
}

/// Runs `jghm diffuse` ([`DiffuseReport`]).
pub fn diffuse(model: &Jghm, spec: &DiffuseSpec) -> Result<DiffuseReport, DownstreamError> {
    let y = &spec.text;
    if bp::log_py(model, y)? == f64::NEG_INFINITY {
        return Err(DownstreamError::Input(
            "the text has probability zero under the model, so p(x | y) is undefined".into(),
        ));
    }
    let cond = match spec.condition {
        ConditionSpec::Statistic(st) => Condition::through(model, st, y)?,
        ConditionSpec::None => Condition::None,
        ConditionSpec::Text => Condition::Text(y.clone()),
    };
    let schedule = Schedule::cosine(spec.steps);
    let generated = ddpm(model, &cond, &schedule, spec.samples, spec.seed)?;
    let tv = total_variation_check(model, &cond, &generated, spec.seed)?;
    let t10 = match (spec.t10, spec.condition) {
        (None, _) => None,
        (Some(m), ConditionSpec::Statistic(st)) => Some(t10_grid(model, st, &schedule, m, spec.seed)?),
        (Some(_), _) => return Err(DownstreamError::Input("--t10 needs --condition statistic:NAME".into())),
    };
    let row = |b: &T10Bounds| T10Row {
        t: b.step,
        alpha: b.level.level.alpha,
        sigma: b.level.level.sigma,
        squared_distance: b.level.squared_distance.into(),
        conditional_information: b.level.conditional_information.into(),
        bound_information: b.bound_information,
        bound_information_stderr: 2.0 * b.level.image_tokens as f64 * b.level.conditional_information.stderr,
        bound_sufficiency: b.bound_sufficiency,
        sufficiency: b.level.sufficiency,
    };
    Ok(DiffuseReport {
        tv_to_exact: tv.map(|t| t[0]),
        tv_reference: tv.map(|t| t[1]),
        steps: spec.steps,
        samples: spec.samples,
        condition: spec.condition_name.clone(),
        schedule: "cosine (Nichol & Dhariwal 2021, s = 0.008), variance preserving",
        method: if tv.is_some() {
            "TV between the empirical law of the N generated images and the exact p(x | condition) by BP; tv_reference: the same for N exact BP draws"
        } else {
            "the image side is too large to enumerate: no exact TV (tv_to_exact and tv_reference are null)"
        },
        images: spec.keep_images.then_some(generated),
        t10: t10.map(|rows| rows.iter().map(row).collect()),
    })
}
