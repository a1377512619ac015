//! Zero-shot classification (THEORY §5, theorem T8).
//!
//! A label `C` hangs off the text through `P_{C|Y}` ([`Label`]). The zero-shot classifier of a
//! score `S` is
//!
//! ```text
//! P̂^S(c | x) = p(c) E_{Y~P_{Y|c}} exp S(x, Y) / E_{Y~P_Y} exp S(x, Y) = Σ_y p(c | y) Q^S(y | x)
//! ```
//!
//! computed two ways:
//! - **exact prompts** ([`classify_exact`]): the sum over every enumerated text, with
//!   `Q^S(y | x) = p(y) exp S(x, y) / Σ_{y'} p(y') exp S(x, y')`;
//! - **prompt ensembles** ([`classify_ensemble`]): `M` exact draws `y_{c,1..M} ~ P_{Y|C=c}` per
//!   class, logits `log p(c) + log mean_m exp S(x, y_{c,m})`, normalised over the classes (the
//!   denominator `E_Y exp S = Σ_c p(c) E_{Y|c} exp S` estimated by the same prompts). This is
//!   the paper's protocol; it tends to the exact classifier as `M → ∞`, and T8 is a statement
//!   about that limit.
//!
//! Figures, over test images (all images weighted by `p(x)` when enumerable, else `n` sampled
//! images with standard errors), each Rao-Blackwellised over the label given the image:
//! accuracy `E_X p(ĉ(X) | X)`, Bayes accuracy `E_X max_c p(c | X)`, log-loss
//! `E_X Σ_c p(c|X) (-log P̂(c|X))`, Bayes log-loss `E_X H(P_{C|X})`, and the excess log-loss
//! `E_X KL(P_{C|X} ‖ P̂_{C|X})`.
//!
//! **T8** (`proofs/T8-zero-shot.md`): with `S = PMI` and exact prompts the classifier is Bayes;
//! for any `S`, `E_X KL(P_{C|X} ‖ P̂^S_{C|X}) ≤ E_X KL(P_{Y|X} ‖ Q^S_{Y|X}) = ε` (the T4 excess
//! risk), and the 0-1 excess risk is `≤ √(2 E_X KL(P_{C|X} ‖ P̂)) ≤ √(2ε)`.

use rayon::prelude::*;
use serde::Serialize;

use crate::contrastive::{self, Batch, Direction, Exact};
use crate::info::{self, kl, Enumeration, Estimate};
use crate::logspace::{log_sum_exp, normalise_log};
use crate::model::{Jghm, Part};
use crate::rng;
use crate::sample::sample_pairs;
use crate::score::{Pmi, Score};

use super::labels::{mix, Label};
use super::laws::SideLaw;
use super::{argmax, DownstreamError};

/// How the expectation over prompts is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompts {
    /// The exact sum over every text (needs the texts enumerable).
    Exact,
    /// `size` exact draws from `P_{Y|C=c}` per class; class `c` from stream `c` of `seed`.
    Ensemble { size: usize, seed: u64 },
}

/// Test images with weights: every image with `p(x)` (exact), or `n` draws with `1/n`.
#[derive(Clone, Debug)]
pub struct TestImages {
    pub tokens: Vec<Vec<usize>>,
    pub weights: Vec<f64>,
    pub exact: bool,
    pub method: String,
}

impl TestImages {
    /// Every image of positive probability, weighted by `p(x)`.
    pub fn enumerated(model: &Jghm) -> Result<Self, DownstreamError> {
        let images = SideLaw::new(model, Part::Image)?;
        let t = images.table;
        Ok(TestImages {
            weights: (0..t.len()).map(|i| t.p(i)).collect(),
            tokens: t.tokens,
            exact: true,
            method: "every image, weighted by p(x) (exact)".into(),
        })
    }

    /// `n ≥ 2` images drawn from `p(x)` with seed `seed`.
    pub fn sampled(model: &Jghm, n: usize, seed: u64) -> Result<Self, DownstreamError> {
        if n < 2 {
            return Err(info::InfoError::TooFewSamples(n).into());
        }
        Ok(TestImages {
            tokens: sample_pairs(model, n, seed, false).into_iter().map(|p| p.image).collect(),
            weights: vec![1.0 / n as f64; n],
            exact: false,
            method: format!("{n} test images x ~ p(x), seed {seed}; mean ± stderr over images"),
        })
    }

    /// `Σ_i w_i v_i` (exact) or the sample mean with its standard error.
    pub fn average(&self, values: &[f64]) -> Estimate {
        if self.exact {
            Estimate::exact(values.iter().zip(&self.weights).map(|(v, w)| v * w).sum())
        } else {
            Estimate::from_samples(values)
        }
    }
}

/// The exact zero-shot classifier `P̂^S(c | x) = Σ_y p(c | y) Q^S(y | x)`, one row per image.
pub fn classify_exact(
    model: &Jghm,
    score: &dyn Score,
    label: &Label,
    texts: &SideLaw,
    images: &[Vec<usize>],
) -> Vec<Vec<f64>> {
    let (k, ny) = (label.classes(model), texts.table.len());
    let rows = label.rows(model, texts);
    let s = score.grid(images, &texts.table.tokens);
    s.par_chunks(ny)
        .map(|s_x| {
            // log Q^S(y | x) ∝ log p(y) + S(x, y)
            let logits: Vec<f64> = texts.table.log_p.iter().zip(s_x).map(|(lp, s)| lp + s).collect();
            match normalise_log(&logits) {
                Some(q) => mix(&q, &rows, k),
                None => vec![f64::NAN; k],
            }
        })
        .collect()
}

/// The prompt-ensemble classifier (module doc): `softmax_c(log p(c) + log mean_m exp S(x, y_{c,m}))`.
/// Classes with `p(c) = 0` get probability 0 and no prompts.
pub fn classify_ensemble(
    model: &Jghm,
    score: &dyn Score,
    label: &Label,
    size: usize,
    seed: u64,
    texts: Option<&SideLaw>,
    images: &[Vec<usize>],
) -> Result<Vec<Vec<f64>>, DownstreamError> {
    if size == 0 {
        return Err(DownstreamError::Input("a prompt ensemble needs at least one prompt per class".into()));
    }
    let prior = label.prior(model, texts)?;
    let classes: Vec<usize> = (0..prior.len()).filter(|&c| prior[c] > 0.0).collect();
    let mut prompts = vec![];
    for &c in &classes {
        prompts.extend(label.prompts(model, c, size, &mut rng::stream(seed, c as u64), texts)?);
    }
    let s = score.grid(images, &prompts);
    Ok(s.chunks(prompts.len())
        .map(|row| {
            let mut logits = vec![f64::NEG_INFINITY; prior.len()];
            for (n, &c) in classes.iter().enumerate() {
                // log p(c) + log mean_m exp S(x, y_{c,m})
                logits[c] = prior[c].ln() + log_sum_exp(&row[n * size..(n + 1) * size]) - (size as f64).ln();
            }
            normalise_log(&logits).unwrap_or_else(|| vec![f64::NAN; prior.len()])
        })
        .collect())
}

/// The T8 bounds, evaluated.
#[derive(Clone, Debug, Serialize)]
pub struct Bound {
    /// `ε = E_X KL(P_{Y|X} ‖ Q^S_{Y|X}) = ℓ_∞^{X→Y}(S) - ℓ_∞^{X→Y}(PMI)` (T4).
    pub contrastive_excess: Estimate,
    /// T8: `excess_log_loss ≤ ε`.
    pub log_loss_bound: f64,
    /// T8 with Pinsker: `bayes_accuracy - accuracy ≤ √(2 excess_log_loss)`.
    pub zero_one_bound_from_label: f64,
    /// `≤ √(2ε)`.
    pub zero_one_bound: f64,
    /// Whether T8 applies: a channel label (not the root) and exact prompts.
    pub applies: bool,
    /// Both inequalities hold (with 3 standard errors of slack on Monte Carlo figures); `None`
    /// where T8 does not apply.
    pub holds: Option<bool>,
}

/// Everything `jghm zero-shot` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub label: String,
    pub score: String,
    pub classes: usize,
    pub accuracy: Estimate,
    pub bayes_accuracy: Estimate,
    pub log_loss: Estimate,
    pub bayes_log_loss: Estimate,
    /// `E_X KL(P_{C|X} ‖ P̂_{C|X})`.
    pub excess_log_loss: Estimate,
    /// `E_X [max_c p(c|X) - p(ĉ(X)|X)]`.
    pub zero_one_excess: Estimate,
    pub bound: Bound,
    pub method: String,
}

/// How to run the task.
#[derive(Clone, Debug)]
pub struct Spec {
    pub prompts: Prompts,
    /// `None`: every image weighted by `p(x)` (must be enumerable); `Some((n, seed))`: sampled.
    pub images: Option<(usize, u64)>,
    /// Outer pairs of the Monte Carlo `ε` when the model is not enumerable.
    pub bound_samples: usize,
}

/// Per image `(accuracy, bayes accuracy, log-loss, bayes log-loss, KL, 0-1 excess)` terms.
fn terms(bayes: &[f64], hat: &[f64]) -> [f64; 6] {
    let c = argmax(hat);
    let best = bayes[argmax(bayes)];
    let log_loss: f64 = bayes.iter().zip(hat).filter(|(p, _)| **p > 0.0).map(|(p, q)| -p * q.ln()).sum();
    [bayes[c], best, log_loss, info::entropy(bayes), kl(bayes, hat), best - bayes[c]]
}

/// Runs the zero-shot task for `score` and `label` (module doc).
pub fn evaluate(model: &Jghm, score: &dyn Score, label: &Label, spec: &Spec) -> Result<Report, DownstreamError> {
    label.check(model)?;
    let need_texts = label.needs_texts() || spec.prompts == Prompts::Exact;
    let texts = if need_texts { Some(SideLaw::new(model, Part::Text)?) } else { None };
    let images = match spec.images {
        None => TestImages::enumerated(model)?,
        Some((n, seed)) => TestImages::sampled(model, n, seed)?,
    };
    let bayes: Vec<Vec<f64>> =
        images.tokens.par_iter().map(|x| label.bayes(model, x, texts.as_ref())).collect::<Result<_, _>>()?;
    let hat = match spec.prompts {
        Prompts::Exact => classify_exact(model, score, label, texts.as_ref().expect("enumerated"), &images.tokens),
        Prompts::Ensemble { size, seed } => {
            classify_ensemble(model, score, label, size, seed, texts.as_ref(), &images.tokens)?
        }
    };
    let t: Vec<[f64; 6]> = bayes.iter().zip(&hat).map(|(b, h)| terms(b, h)).collect();
    let col = |k: usize| images.average(&t.iter().map(|r| r[k]).collect::<Vec<_>>());
    let epsilon = contrastive_excess(model, score, spec.bound_samples, spec.images.map_or(0, |i| i.1))?;
    let (excess, zero_one) = (col(4), col(5));
    let slack = |e: &Estimate| 3.0 * e.stderr;
    let bound = Bound {
        log_loss_bound: epsilon.value,
        zero_one_bound_from_label: (2.0 * excess.value.max(0.0)).sqrt(),
        zero_one_bound: (2.0 * epsilon.value.max(0.0)).sqrt(),
        applies: label.is_channel() && spec.prompts == Prompts::Exact,
        holds: (label.is_channel() && spec.prompts == Prompts::Exact).then_some(
            excess.value <= epsilon.value + slack(&excess) + slack(&epsilon) + 1e-12
                && zero_one.value <= (2.0 * (excess.value + slack(&excess)).max(0.0)).sqrt() + slack(&zero_one) + 1e-12,
        ),
        contrastive_excess: epsilon,
    };
    let prompts = match spec.prompts {
        Prompts::Exact => "exact expectation over every text".to_string(),
        Prompts::Ensemble { size, seed } => format!("{size} exact prompts per class from P(y | c), seed {seed}"),
    };
    Ok(Report {
        label: label.to_string(),
        score: score.name(),
        classes: label.classes(model),
        accuracy: col(0),
        bayes_accuracy: col(1),
        log_loss: col(2),
        bayes_log_loss: col(3),
        excess_log_loss: excess,
        zero_one_excess: zero_one,
        method: format!("prompts: {prompts}; images: {}; epsilon: {}", images.method, epsilon_method(model, spec)),
        bound,
    })
}

fn epsilon_method(model: &Jghm, spec: &Spec) -> String {
    if info::exact_work(model).is_ok() {
        "exact enumeration".into()
    } else {
        format!(
            "Monte Carlo, {} outer pairs x {} inner draws, differences to the exact PMI on common draws (jackknifed)",
            spec.bound_samples,
            contrastive::INNER_SAMPLES
        )
    }
}

/// `ε = ℓ_∞^{X→Y}(S) - ℓ_∞^{X→Y}(PMI) = E_X KL(P_{Y|X} ‖ Q^S_{Y|X})` (T4): exact when the model
/// is enumerable, else Monte Carlo with common random numbers against the PMI.
pub fn contrastive_excess(
    model: &Jghm,
    score: &dyn Score,
    samples: usize,
    seed: u64,
) -> Result<Estimate, DownstreamError> {
    if info::exact_work(model).is_ok() {
        let en = Enumeration::new(model)?;
        let ex = Exact::new(&en);
        return Ok(Estimate::exact(ex.view(&ex.scores(score), Direction::ImageToText).excess_kl()));
    }
    let pmi = Pmi { model };
    let mc = contrastive::monte_carlo(model, &[score, &pmi], Batch::Infinite, samples, seed)?;
    let d: Vec<f64> = mc.terms[0].iter().zip(&mc.terms[1]).map(|(a, b)| a[0] - b[0]).collect();
    Ok(Estimate::from_samples(&d))
}
