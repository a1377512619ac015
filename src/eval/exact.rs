//! A learned pair evaluated exactly, on a model small enough to enumerate every image and every
//! text (the book, T2-T10, "On learned scores"). Beyond the enumeration limits the request is
//! refused with the size in the message; Monte Carlo ([`super::evaluate`]) is the path there.
//!
//! From the score matrix `S(x, y)` over all pairs and the exact joint law:
//!
//! * per direction ([`DirectionReport`]): `ℓ_∞(S)`, `ℓ_∞(PMI) = −I(X;Y)` and the excess (T4);
//!   `E_A KL(P_{C|A} ‖ Q^S_{C|A})` by a second route (BP's conditionals through the separator
//!   and the induced law [`induced_from_scores`]), the KL of the generator `Q^S` (T9);
//!   `ℓ_K(S)`, `ℓ_K(PMI)` and the excess for the requested finite `K` (T2), with the InfoNCE
//!   bound `log K − ℓ_K(S) ≤ I(X;Y)` (T3);
//! * the learned statistic of the anchor side ([`LearnedStatistic`]): the partition of the
//!   alphabet into the level sets of the embedding (`f` for `X→Y`, `g` for `Y→X`; values equal
//!   after rounding to `2^-40` are one class, [`Classes::of_values`]), its sufficiency gap in
//!   the three forms of T6 (the variational form is the KL of the best generator through the
//!   embedding, T9), and whether the score depends on that side only through it (T5's premise);
//! * zero-shot with exact prompt expectations for each label ([`zero_shot::evaluate`], T8);
//! * denoising at pure noise ([`Denoising`]): `E_Y ‖D − D^S‖²` with `D^S` the denoiser guided
//!   by `P^S(x | y) ∝ p(x) exp S(x, y)`, next to its bound `N_X (ℓ_∞^{Y→X}(S) − ℓ_∞^{Y→X}(PMI))`
//!   (T10 for learned scores; at `α = 0` both denoisers are prior means, so the figure is exact;
//!   other noise levels need an expectation over Gaussian `X_t`, left to the tests).

use serde::Serialize;

use super::{EvalReport, Learned};
use crate::contrastive::{Direction, Exact, View};
use crate::downstream::diffusion::embedding_mean;
use crate::downstream::generation::induced_from_scores;
use crate::downstream::labels::Label;
use crate::downstream::laws::SideLaw;
use crate::downstream::zero_shot::{self, Prompts, Report};
use crate::downstream::DownstreamError;
use crate::info::{kl, Enumeration, Estimate};
use crate::model::{Jghm, Part};
use crate::score::{Pmi, Score};
use crate::sufficiency::{Classes, Gap, Sufficiency};

/// What to evaluate besides the large-batch figures.
#[derive(Clone, Debug)]
pub struct ExactSpec {
    /// Finite batch sizes `K ≥ 1` (each must be within the exact work limit, [`feasible_ks`]).
    pub ks: Vec<usize>,
    /// Zero-shot labels, each with exact prompt expectations.
    pub labels: Vec<Label>,
}

/// The CLIP loss at one finite `K` in one direction.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FiniteLoss {
    pub k: usize,
    /// `ℓ_K(S)`.
    pub loss: f64,
    /// `ℓ_K(PMI) = min_S ℓ_K(S)` (T2).
    pub optimum: f64,
    /// `ℓ_K(S) − ℓ_K(PMI) ≥ 0`.
    pub excess: f64,
    /// `log K − ℓ_K(S) ≤ I(X;Y)` (T3).
    pub infonce_bound: f64,
}

/// The level sets of a learned embedding and their sufficiency gap for the other side.
#[derive(Clone, Debug, Serialize)]
pub struct LearnedStatistic {
    /// Which tower's embedding (`image`: `f`, `text`: `g`).
    pub side: Part,
    /// `Suff` in the three forms of T6, with `I(A;C)`, `I(T;C)` and the number of level sets.
    pub sufficiency: Sufficiency,
    /// Whether `S` depends on this side only through the embedding's level sets (T5's premise;
    /// relative `1e-9`, [`Gap::depends_only_through`]).
    pub score_through_embedding: bool,
}

/// Every exact figure of one direction.
#[derive(Clone, Debug, Serialize)]
pub struct DirectionReport {
    pub direction: Direction,
    /// `ℓ_∞(S)`.
    pub loss: f64,
    /// `ℓ_∞(PMI) = −I(X;Y)`.
    pub optimum: f64,
    /// `ℓ_∞(S) − ℓ_∞(PMI)`, the excess risk of T4.
    pub excess: f64,
    /// `E_A KL(P_{C|A} ‖ Q^S_{C|A})`, the KL of the generator `Q^S` (T4, T9), by BP's conditionals.
    pub generator_kl: f64,
    pub finite: Vec<FiniteLoss>,
    pub statistic: LearnedStatistic,
}

/// T10 for the learned score at pure noise (`α = 0`), where `D = E[e_X | y]` and
/// `D^S = E_{P^S}[e_X | y]` exactly.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Denoising {
    /// `N_X`.
    pub image_leaves: usize,
    /// `E_Y ‖D(Y) − D^S(Y)‖²`.
    pub pure_noise_gap: f64,
    /// `N_X (ℓ_∞^{Y→X}(S) − ℓ_∞^{Y→X}(PMI))`, T10's bound for learned scores.
    pub bound: f64,
}

/// Everything the exact evaluation reports.
#[derive(Clone, Debug, Serialize)]
pub struct ExactReport {
    pub images: usize,
    pub texts: usize,
    /// `I(X;Y)`.
    pub mutual_information: f64,
    pub image_to_text: DirectionReport,
    pub text_to_image: DirectionReport,
    /// The CLIP average of the two excess risks.
    pub excess_risk: f64,
    /// The zero-shot tasks of the labels asked for, learned score, exact prompts.
    pub zero_shot: Vec<Report>,
    /// The same tasks with `S = PMI` (the oracle protocol; Bayes on channel labels, T8).
    pub oracle_zero_shot: Vec<Report>,
    pub denoising: Denoising,
    /// Pearson correlation of `S` and the PMI over every enumerated pair (unweighted).
    pub pmi_correlation: f64,
    pub method: String,
}

/// The learned score matrix of an enumerable model: anyone can recompute every figure from it
/// with the model's joint law.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ScoreMatrix {
    pub images: Vec<Vec<usize>>,
    pub texts: Vec<Vec<usize>>,
    /// `scores[i][j] = S(images[i], texts[j])`.
    pub scores: Vec<Vec<f64>>,
}

/// `S` over every enumerated pair (sequences of positive probability, lexicographic order);
/// refused when the model is too large to enumerate.
pub fn score_matrix(model: &Jghm, score: &dyn Score) -> Result<ScoreMatrix, DownstreamError> {
    let en = Enumeration::new(model)?;
    let (xs, ys) = (en.image.tokens.clone(), en.text.tokens.clone());
    let grid = score.grid(&xs, &ys);
    let scores = grid.chunks(ys.len().max(1)).map(<[f64]>::to_vec).collect();
    Ok(ScoreMatrix { images: xs, texts: ys, scores })
}

/// The batch sizes among `ks` whose exact finite-`K` loss is within the work limit in both
/// directions.
pub fn feasible_ks(en: &Enumeration, ks: &[usize]) -> Vec<usize> {
    let ex = Exact::new(en);
    let views = [ex.view(&ex.pmi, Direction::ImageToText), ex.view(&ex.pmi, Direction::TextToImage)];
    ks.iter().copied().filter(|&k| k >= 1 && views.iter().all(|v| v.finite_work(k).is_ok())).collect()
}

/// The exact evaluation of the module doc.
pub fn evaluate_exact(model: &Jghm, learned: &dyn Learned, spec: &ExactSpec) -> Result<ExactReport, DownstreamError> {
    let en = Enumeration::new(model)?;
    let ex = Exact::new(&en);
    let s = ex.scores(learned);
    let mi = en.mutual_information();
    let sides = [SideLaw::new(model, Part::Image)?, SideLaw::new(model, Part::Text)?];
    let image_to_text = direction(model, &ex, &s, learned, &sides, Direction::ImageToText, &spec.ks)?;
    let text_to_image = direction(model, &ex, &s, learned, &sides, Direction::TextToImage, &spec.ks)?;
    let task = zero_shot::Spec { prompts: Prompts::Exact, images: None, bound_samples: 2 };
    let pmi = Pmi { model };
    let run = |score: &dyn Score| -> Result<Vec<Report>, DownstreamError> {
        spec.labels.iter().map(|label| zero_shot::evaluate(model, score, label, &task)).collect()
    };
    let denoising = denoising(model, &ex, &s, &sides[0], text_to_image.excess);
    Ok(ExactReport {
        images: en.image.len(),
        texts: en.text.len(),
        mutual_information: mi,
        excess_risk: (image_to_text.excess + text_to_image.excess) / 2.0,
        image_to_text,
        text_to_image,
        zero_shot: run(learned)?,
        oracle_zero_shot: run(&pmi)?,
        denoising,
        pmi_correlation: super::pearson(&s, &ex.pmi),
        method: format!(
            "exact enumeration of the {} images and {} texts of positive probability (f64, log domain); finite K by the sum over the compositions of the K-1 negatives; zero-shot with exact prompt expectations over every text, every image weighted by p(x); embeddings' level sets at resolution 2^-40",
            en.image.len(),
            en.text.len()
        ),
    })
}

/// The exact figures of direction `dir` (module doc).
fn direction(
    model: &Jghm,
    ex: &Exact,
    s: &[f64],
    learned: &dyn Learned,
    sides: &[SideLaw; 2],
    dir: Direction,
    ks: &[usize],
) -> Result<DirectionReport, DownstreamError> {
    let (view, best) = (ex.view(s, dir), ex.view(&ex.pmi, dir));
    let (loss, optimum) = (view.loss_infinite(), best.loss_infinite());
    let finite = ks.iter().map(|&k| finite_loss(&view, &best, k)).collect::<Result<_, _>>()?;
    let side = if dir == Direction::ImageToText { Part::Image } else { Part::Text };
    Ok(DirectionReport {
        direction: dir,
        loss,
        optimum,
        excess: loss - optimum,
        generator_kl: generator_kl(model, learned, sides, dir)?,
        finite,
        statistic: learned_statistic(ex.en, learned, side, s),
    })
}

fn finite_loss(view: &View, best: &View, k: usize) -> Result<FiniteLoss, DownstreamError> {
    let (loss, optimum) = (view.loss_finite(k)?, best.loss_finite(k)?);
    Ok(FiniteLoss { k, loss, optimum, excess: loss - optimum, infonce_bound: (k as f64).ln() - loss })
}

/// `E_A KL(P_{C|A} ‖ Q^S_{C|A})` with `P_{C|A}` from BP (an upward pass on the anchor, then the
/// separator) and `Q^S` from `log p(c) + S(a, c)` over the enumerated candidates.
pub fn generator_kl(
    model: &Jghm,
    score: &dyn Score,
    sides: &[SideLaw; 2],
    dir: Direction,
) -> Result<f64, DownstreamError> {
    let (anchors, candidates) = match dir {
        Direction::ImageToText => (&sides[0], &sides[1]),
        Direction::TextToImage => (&sides[1], &sides[0]),
    };
    let grid = score.grid(&sides[0].table.tokens, &sides[1].table.tokens);
    let ny = sides[1].table.len();
    let mut total = 0.0;
    for (a, tokens) in anchors.table.tokens.iter().enumerate() {
        let row: Vec<f64> = match dir {
            Direction::ImageToText => grid[a * ny..(a + 1) * ny].to_vec(),
            Direction::TextToImage => (0..sides[0].table.len()).map(|x| grid[x * ny + a]).collect(),
        };
        let truth = candidates.conditional(model, tokens)?;
        total += anchors.table.p(a) * kl(&truth, &induced_from_scores(&candidates.table.log_p, &row));
    }
    Ok(total)
}

/// The level sets of the `side` tower's embedding over the enumerated sequences, their
/// sufficiency gap and whether `S` factors through them.
pub fn learned_statistic(en: &Enumeration, learned: &dyn Learned, side: Part, s: &[f64]) -> LearnedStatistic {
    let classes = Classes::of_values(&learned.embeddings(side, &en.side(side).tokens));
    let gap = Gap::new(en, side, classes);
    LearnedStatistic { side, sufficiency: gap.all(), score_through_embedding: gap.depends_only_through(s) }
}

/// T10 at pure noise (module doc): `D(y) = E[e_X | y]`, `D^S(y) = E_{P^S}[e_X | y]`.
fn denoising(model: &Jghm, ex: &Exact, s: &[f64], images: &SideLaw, excess_text_to_image: f64) -> Denoising {
    let view = ex.view(s, Direction::TextToImage);
    let truth = ex.view(&ex.pmi, Direction::TextToImage);
    let gap: f64 = (0..view.anchors())
        .map(|y| {
            let d = embedding_mean(model, images, &induced(&truth, y));
            let ds = embedding_mean(model, images, &induced(&view, y));
            view.pa[y] * d.iter().zip(&ds).map(|(a, b)| (a - b).powi(2)).sum::<f64>()
        })
        .sum();
    let leaves = model.image_len();
    Denoising { image_leaves: leaves, pure_noise_gap: gap, bound: leaves as f64 * excess_text_to_image }
}

impl ExactReport {
    /// The figures of `jghm eval --json` from the exact report: standard errors 0, accuracies
    /// `E_X p(z = ĉ(X) | X)` on the root label with exact prompts (the first root task asked for).
    pub fn eval_report(&self) -> EvalReport {
        let root = |reports: &[Report]| reports.iter().find(|r| r.label == Label::Root.to_string()).cloned();
        let (learned, oracle) = (root(&self.zero_shot), root(&self.oracle_zero_shot));
        let value = |r: &Option<Report>, f: fn(&Report) -> f64| r.as_ref().map_or(f64::NAN, f);
        EvalReport {
            excess_risk: self.excess_risk,
            excess_risk_stderr: 0.0,
            excess_risk_image_to_text: Estimate::exact(self.image_to_text.excess),
            excess_risk_text_to_image: Estimate::exact(self.text_to_image.excess),
            sufficiency_bound_image: self.image_to_text.excess,
            sufficiency_bound_text: self.text_to_image.excess,
            zero_shot_accuracy: value(&learned, |r| r.accuracy.value),
            oracle_zero_shot_accuracy: value(&oracle, |r| r.accuracy.value),
            bayes_accuracy: value(&learned, |r| r.bayes_accuracy.value),
            accuracy_stderr: 0.0,
            pmi_correlation: self.pmi_correlation,
            method: self.method.clone(),
        }
    }
}

/// The view's `Q^S(c | a)` as probabilities.
fn induced(view: &View, a: usize) -> Vec<f64> {
    view.log_induced_conditional(a).iter().map(|l| l.exp()).collect()
}

/// The exact evaluation `jghm eval --exact` runs: finite `K = 2, 3, 4` and the training `K`,
/// each where its composition sum is within the work limit, and zero-shot on the root and the
/// first text token.
pub fn checkpoint_spec(en: &Enumeration, training_k: usize) -> ExactSpec {
    let mut ks = feasible_ks(en, &[2, 3, 4, training_k]);
    ks.sort_unstable();
    ks.dedup();
    ExactSpec { ks, labels: vec![Label::Root, Label::TextToken(0)] }
}

/// The JSON object of `jghm eval --exact --json`: the Monte Carlo report's keys with every
/// standard error 0, the excess risk of each direction, the checkpoint's class and step, the
/// finite-`K` loss at the training `K` (CLIP average; omitted, and said so in
/// `finite_k_method`, when beyond the work limit), and the whole exact report under `"exact"`.
pub fn report_json(r: &ExactReport, class: crate::learn::Class, step: usize, training_k: usize) -> serde_json::Value {
    let mut v = report_json_at(r, training_k);
    v["class"] = serde_json::json!(class);
    v["steps"] = serde_json::json!(step);
    v
}

/// [`report_json`] without a checkpoint's class and step (scores imported from elsewhere), the
/// finite-`K` loss at `training_k`.
pub fn report_json_at(r: &ExactReport, training_k: usize) -> serde_json::Value {
    use serde_json::json;
    let mut v = serde_json::to_value(r.eval_report()).expect("report serialises");
    v["excess_risk_image_to_text"] = json!(r.image_to_text.excess);
    v["excess_risk_text_to_image"] = json!(r.text_to_image.excess);
    v["training_k"] = json!(training_k);
    let at_k = |d: &DirectionReport| d.finite.iter().find(|f| f.k == training_k).copied();
    match at_k(&r.image_to_text).zip(at_k(&r.text_to_image)) {
        Some((xy, yx)) => {
            v["finite_k_loss"] = json!((xy.loss + yx.loss) / 2.0);
            v["finite_k_optimum"] = json!((xy.optimum + yx.optimum) / 2.0);
            v["finite_k_excess"] = json!((xy.excess + yx.excess) / 2.0);
            v["finite_k_method"] = json!("exact (sum over the compositions of the K-1 negatives)");
        }
        None => {
            v["finite_k_method"] =
                json!(format!("not computed: the exact batch-{training_k} loss is beyond the work limit"));
        }
    }
    for key in ["finite_k_loss_stderr", "finite_k_optimum_stderr", "finite_k_excess_stderr"] {
        v[key] = json!(0.0);
    }
    v["exact"] = serde_json::to_value(r).expect("report serialises");
    v
}
