//! Zero-shot classification (the book, T8-T10, theorem T8).
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

use crate::contrastive::{self, Batch, Direction, Exact, View};
use crate::info::{self, kl, Enumeration, Estimate};
use crate::logspace::{log_sum_exp, normalise_log};
use crate::model::{Jghm, Part};
use crate::rng;
use crate::sample::sample_pairs;
use crate::score::{Pmi, Score};

use super::labels::{mix, Label, LabelLaw};
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

/// The exact zero-shot classifier `P̂^S(c | x) = Σ_y p(c | y) Q^S(y | x)`, one row per image;
/// the law must have the texts enumerated.
pub fn classify_exact(
    score: &dyn Score,
    law: &LabelLaw,
    images: &[Vec<usize>],
) -> Result<Vec<Vec<f64>>, DownstreamError> {
    let (Some(texts), Some(rows)) = (law.texts(), law.rows()) else {
        return Err(DownstreamError::Label {
            label: law.label().to_string(),
            what: "exact prompts need the texts enumerated (a small text side)".into(),
        });
    };
    let (k, ny) = (law.classes(), texts.table.len());
    let s = score.grid(images, &texts.table.tokens);
    Ok(s.par_chunks(ny)
        .map(|s_x| {
            // log Q^S(y | x) ∝ log p(y) + S(x, y)
            let logits: Vec<f64> = texts.table.log_p.iter().zip(s_x).map(|(lp, s)| lp + s).collect();
            match normalise_log(&logits) {
                Some(q) => mix(&q, rows, k),
                None => vec![f64::NAN; k],
            }
        })
        .collect())
}

/// `P̂^S(c | x_i) = Σ_y p(z = c | y) Q^S(y | x_i)` of the root label for every enumerated image,
/// with `Q^S(· | x_i)` the induced conditional of `view` (direction image → text) and the
/// texts' root posteriors as the rows: [`classify_exact`]'s classifier on the enumeration's
/// own tables, for a score already evaluated on every pair.
pub fn classify_root_exact(exact: &Exact, view: &View) -> Vec<Vec<f64>> {
    let text = &exact.en.text;
    (0..view.anchors())
        .map(|i| {
            let q: Vec<f64> = view.log_induced_conditional(i).iter().map(|lq| lq.exp()).collect();
            mix(&q, &text.root, text.root_size)
        })
        .collect()
}

/// The exact zero-shot figures of one score on the root label `z` of an enumerated model, with
/// exact prompt ensembles (`M = ∞`) and every image weighted by `p(x)` (the sample-complexity
/// sweep's, T8). The protocol with the exact score is not Bayes for the root label
/// (`Σ_y p(z | y) p(y | x) ≠ p(z | x)`); it *is* Bayes for the label read off the text,
/// `C ~ p(z | y)`, which is the task of T8's data-processing bound: `excess_risk` is the
/// cross-entropy excess of `P̂^S` over Bayes on that task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RootFigures {
    /// `Σ_x p(x) p(z = ĉ_S(x) | x)`, `ĉ_S = argmax_c P̂^S(c | x)`.
    pub accuracy: f64,
    /// The same protocol with the exact score `S = PMI`.
    pub exact_score_accuracy: f64,
    /// `Σ_x p(x) max_z p(z | x)`: Bayes on the root label.
    pub bayes_accuracy: f64,
    /// `E_X KL(P̂^PMI_{C|X} ‖ P̂^S_{C|X})`, nats (T8: at most the score's excess `ε^{X→Y}`).
    pub excess_risk: f64,
}

/// [`RootFigures`] of the score whose image → text view is `learned` ([`Exact::view`]).
pub fn root_figures(exact: &Exact, learned: &View) -> RootFigures {
    let learned = classify_root_exact(exact, learned);
    let oracle = classify_root_exact(exact, &exact.view(&exact.pmi, Direction::ImageToText));
    let image = &exact.en.image;
    let weighted = |f: &dyn Fn(usize) -> f64| (0..image.len()).map(|i| image.p(i) * f(i)).sum::<f64>();
    let accuracy = |rows: &[Vec<f64>]| weighted(&|i| image.root_row(i)[argmax(&rows[i])]);
    RootFigures {
        accuracy: accuracy(&learned),
        exact_score_accuracy: accuracy(&oracle),
        bayes_accuracy: weighted(&|i| image.root_row(i).iter().copied().fold(0.0, f64::max)),
        excess_risk: weighted(&|i| kl(&oracle[i], &learned[i])),
    }
}

/// Where the prompts' randomness comes from.
pub enum PromptDraws<'r> {
    /// Class `c` from stream `c` of the seed (independent of the other classes).
    Streams(u64),
    /// One generator for every class, in class order (the paper's risk draws a fresh prompt
    /// set per chunk of images from the chunk's generator).
    Shared(&'r mut rng::Rng),
}

/// How a prompt ensemble turns its per-class mean scores into a classifier.
///
/// With the exact score `S = PMI + const`, `mean_m exp S(x, y_{c,m}) → E[p(x | y) / p(x) | c]
/// = p(c | x) / p(c)` as `M → ∞` (T8): adding `log p(c)` gives `p(c | x)` itself, the Bayes
/// classifier, while the paper's rule (its code adds no prior) gives `p(c | x) / p(c)`
/// normalised, which is Bayes only when the classes are equally likely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ZeroShotRule {
    /// `P̂(c | x) ∝ p(c) · mean_{m ≤ M} exp S(x, y_{c,m})` (ours).
    WithPrior,
    /// `P̂(c | x) ∝ mean_{m ≤ M} exp S(x, y_{c,m})` (the paper's).
    Paper,
}

/// `M` exact prompts per class and the zero-shot classifier they define (the book, T8-T10, the
/// paper's protocol):
///
/// ```text
/// log P̂(c | x) = log softmax_c( log p(c) + log mean_{m ≤ M} exp S(x, y_{c,m}) ),   y_{c,m} ~ P_{Y|C=c}
/// ```
///
/// Classes with `p(c) = 0` get no prompts and probability 0. The sets may be read nested: the
/// classifier with `M` prompts uses the first `M` of each class's set, so one draw serves every
/// `M` up to its size (the prompts figure). This is the one implementation of the ensemble
/// classifier: [`classify_ensemble`], the paper's zero-shot risk
/// ([`crate::reproduce::risks::zero_shot_risks`]) and the zero-shot accuracy of
/// [`crate::eval::evaluate`] all go through it.
#[derive(Clone, Debug)]
pub struct PromptEnsemble {
    /// `log p(c)` for every class.
    log_prior: Vec<f64>,
    /// `sets[c]`: the prompts of class `c` (empty when `p(c) = 0`).
    sets: Vec<Vec<Vec<usize>>>,
    /// Prompts per class with `p(c) > 0`.
    size: usize,
}

impl PromptEnsemble {
    /// `size` prompts of every class of positive prior, drawn by [`LabelLaw::prompts`] with the
    /// generators `draws` names.
    pub fn draw(model: &Jghm, law: &LabelLaw, size: usize, mut draws: PromptDraws) -> Result<Self, DownstreamError> {
        if size == 0 {
            return Err(DownstreamError::Input("a prompt ensemble needs at least one prompt per class".into()));
        }
        let prior = law.prior();
        let mut set_of = |c: usize| match &mut draws {
            PromptDraws::Streams(seed) => law.prompts(model, c, size, &mut rng::stream(*seed, c as u64)),
            PromptDraws::Shared(rng) => law.prompts(model, c, size, rng),
        };
        let sets =
            (0..prior.len()).map(|c| if prior[c] > 0.0 { set_of(c) } else { Ok(vec![]) }).collect::<Result<_, _>>()?;
        Ok(PromptEnsemble { log_prior: prior.iter().map(|p| p.ln()).collect(), sets, size })
    }

    /// The ensemble of given prompts: `sets[c]` for class `c` of prior `prior[c]`; every class of
    /// positive prior needs the same number `M ≥ 1` of prompts, a class of prior 0 none.
    pub fn from_sets(prior: &[f64], sets: Vec<Vec<Vec<usize>>>) -> Result<Self, DownstreamError> {
        let sizes: Vec<usize> = prior.iter().zip(&sets).filter(|(p, _)| **p > 0.0).map(|(_, s)| s.len()).collect();
        let size = sizes.first().copied().unwrap_or(0);
        if prior.len() != sets.len() || size == 0 || sizes.iter().any(|&m| m != size) {
            return Err(DownstreamError::Input(format!(
                "a prompt ensemble needs the same number (at least 1) of prompts for every class of positive prior; got {sizes:?}"
            )));
        }
        let sets = sets.into_iter().zip(prior).map(|(s, &p)| if p > 0.0 { s } else { vec![] }).collect();
        Ok(PromptEnsemble { log_prior: prior.iter().map(|p| p.ln()).collect(), sets, size })
    }

    /// Prompts per class.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Every prompt, class after class (the texts a score is evaluated against).
    pub fn flat(&self) -> Vec<Vec<usize>> {
        self.sets.iter().flatten().cloned().collect()
    }

    /// `log p(c) + log mean_{m ≤ M} exp S(x, y_{c,m})` per class (`-inf` for a class without
    /// prompts), from one image's scores `row` against [`PromptEnsemble::flat`].
    pub fn logits(&self, row: &[f64], m: usize) -> Vec<f64> {
        self.logits_by(row, m, ZeroShotRule::WithPrior)
    }

    /// The logits of `rule` ([`ZeroShotRule`]): [`PromptEnsemble::logits`], or the same without
    /// `log p(c)`.
    pub fn logits_by(&self, row: &[f64], m: usize, rule: ZeroShotRule) -> Vec<f64> {
        assert!((1..=self.size).contains(&m), "1 ≤ M ≤ {} prompts per class", self.size);
        let mut offset = 0;
        self.sets
            .iter()
            .zip(&self.log_prior)
            .map(|(set, lp)| {
                if set.is_empty() {
                    return f64::NEG_INFINITY;
                }
                let s = &row[offset..offset + m];
                offset += self.size;
                let prior = if rule == ZeroShotRule::WithPrior { *lp } else { 0.0 };
                prior + log_sum_exp(s) - (m as f64).ln()
            })
            .collect()
    }

    /// `log P̂(c | x)` with the first `m` prompts of each class (the logits normalised).
    pub fn log_classifier(&self, row: &[f64], m: usize) -> Vec<f64> {
        self.log_classifier_by(row, m, ZeroShotRule::WithPrior)
    }

    /// [`PromptEnsemble::log_classifier`] by `rule`.
    pub fn log_classifier_by(&self, row: &[f64], m: usize, rule: ZeroShotRule) -> Vec<f64> {
        let logits = self.logits_by(row, m, rule);
        let z = log_sum_exp(&logits);
        logits.iter().map(|l| l - z).collect()
    }

    /// `P̂(c | x)` with every prompt (`NaN` when every logit is `-inf`).
    pub fn classify(&self, row: &[f64]) -> Vec<f64> {
        normalise_log(&self.logits(row, self.size)).unwrap_or_else(|| vec![f64::NAN; self.sets.len()])
    }

    /// `argmax_c P̂(c | x)` with every prompt (the first class on ties).
    pub fn predict(&self, row: &[f64]) -> usize {
        argmax(&self.logits(row, self.size))
    }
}

/// The prompt-ensemble classifier (module doc), one row `P̂(· | x)` per image, with class `c`'s
/// prompts drawn from stream `c` of `seed` ([`PromptEnsemble`]).
pub fn classify_ensemble(
    model: &Jghm,
    score: &dyn Score,
    law: &LabelLaw,
    size: usize,
    seed: u64,
    images: &[Vec<usize>],
) -> Result<Vec<Vec<f64>>, DownstreamError> {
    let ensemble = PromptEnsemble::draw(model, law, size, PromptDraws::Streams(seed))?;
    let prompts = ensemble.flat();
    Ok(score.grid(images, &prompts).chunks(prompts.len()).map(|row| ensemble.classify(row)).collect())
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

impl Report {
    /// The flat JSON of `jghm zero-shot --json`: each figure as `name` and `name_stderr`, the
    /// 0-1 excess as `{value, stderr}`, then the bound, label, score, classes and method.
    pub fn flat_json(&self) -> serde_json::Value {
        let mut out = serde_json::json!({
            "zero_one_excess": { "value": self.zero_one_excess.value, "stderr": self.zero_one_excess.stderr },
            "bound": self.bound, "label": self.label, "score": self.score, "classes": self.classes, "method": self.method,
        });
        let figures = [
            ("accuracy", &self.accuracy),
            ("bayes_accuracy", &self.bayes_accuracy),
            ("log_loss", &self.log_loss),
            ("bayes_log_loss", &self.bayes_log_loss),
            ("excess_log_loss", &self.excess_log_loss),
        ];
        for (name, e) in figures {
            out[name] = e.value.into();
            out[format!("{name}_stderr")] = e.stderr.into();
        }
        out
    }
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

impl Spec {
    /// The defaults of `jghm zero-shot` where a size is not given: exact prompts when the texts
    /// are enumerable (else 64 per class), every image weighted by `p(x)` when the images are
    /// enumerable (else 2,000 sampled); `exact` forces exact prompts.
    pub fn with_defaults(
        model: &Jghm,
        exact: bool,
        prompts: Option<usize>,
        images: Option<usize>,
        seed: u64,
        bound_samples: usize,
    ) -> Spec {
        let enumerable = |part| info::side_size(model, part) <= info::SIDE_LIMIT;
        let prompts = match (exact, prompts) {
            (true, _) => Prompts::Exact,
            (false, Some(size)) => Prompts::Ensemble { size, seed },
            (false, None) if enumerable(Part::Text) => Prompts::Exact,
            (false, None) => Prompts::Ensemble { size: 64, seed },
        };
        let images = match images {
            Some(n) => Some((n, seed)),
            None if enumerable(Part::Image) => None,
            None => Some((2000, seed)),
        };
        Spec { prompts, images, bound_samples }
    }
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
    let law = label.law(model, texts.as_ref())?;
    let images = match spec.images {
        None => TestImages::enumerated(model)?,
        Some((n, seed)) => TestImages::sampled(model, n, seed)?,
    };
    let bayes: Vec<Vec<f64>> = images.tokens.par_iter().map(|x| law.bayes(model, x)).collect::<Result<_, _>>()?;
    let hat = match spec.prompts {
        Prompts::Exact => classify_exact(score, &law, &images.tokens)?,
        Prompts::Ensemble { size, seed } => classify_ensemble(model, score, &law, size, seed, &images.tokens)?,
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
        classes: law.classes(),
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
