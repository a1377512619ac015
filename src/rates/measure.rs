//! A learned score measured *exactly* against the ground truth on a model small enough to
//! enumerate (THEORY §3-§5): no Monte Carlo, so a sweep's noise is the learning's alone.
//!
//! With the enumeration's PMI grid and the learned score's grid `Ŝ(x_i, y_j)`:
//!
//! ```text
//! excess^{X→Y}(Ŝ) = ℓ_∞^{X→Y}(Ŝ) − ℓ_∞^{X→Y}(PMI) = E_X KL(P_{Y|X} ‖ Q^Ŝ_{Y|X})      (T4)
//! Suff_Y(f) ≤ excess^{X→Y}(Ŝ),  Suff_X(g) ≤ excess^{Y→X}(Ŝ)                          (T5)
//! P̂^S(c | x) = Σ_y p(c | y) Q^S(y | x),  p(c | y) = p(z = c | y)                      (§5)
//! zero-shot excess risk = E_X KL(P̂^PMI_{C|X} ‖ P̂^Ŝ_{C|X}) ≤ excess^{X→Y}(Ŝ)         (T8)
//! ```
//!
//! The zero-shot classifier uses exact prompt ensembles (`M = ∞`: the expectation over
//! `p(y | z = c)` is a sum). Its label is the root `z`; two reference classifiers sit next to
//! it: the same protocol with the exact score `S = PMI`, and Bayes `argmax_z p(z | x)` (BP).
//! The protocol with the PMI is not Bayes for the root label (`Σ_y p(z|y) p(y|x) ≠ p(z|x)`);
//! it *is* Bayes for the label read off the text, `C ~ p(z | y)`, which is the task T8's data
//! processing bound is about: the zero-shot excess risk above is the cross-entropy excess of
//! `P̂^Ŝ` over Bayes on that task.

use serde::Serialize;

use crate::contrastive::{Direction, Exact};
use crate::info::kl;

/// The exact figures of one learned score.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Figures {
    /// `E_X KL(P_{Y|X} ‖ Q^Ŝ_{Y|X})`, nats (T4); also the T5 bound on `Suff_Y(f)`.
    pub excess_image_to_text: f64,
    /// `E_Y KL(P_{X|Y} ‖ Q^Ŝ_{X|Y})`, nats (T4); also the T5 bound on `Suff_X(g)`.
    pub excess_text_to_image: f64,
    /// The CLIP average `(excess^{X→Y} + excess^{Y→X}) / 2`, nats.
    pub excess_risk: f64,
    /// `Σ_x p(x) p(z = ĉ_Ŝ(x) | x)`: accuracy of the learned zero-shot classifier on the root.
    pub zero_shot_accuracy: f64,
    /// The same protocol with the exact score `S = PMI`.
    pub exact_score_accuracy: f64,
    /// `Σ_x p(x) max_z p(z | x)`: Bayes on the root label.
    pub bayes_accuracy: f64,
    /// `E_X KL(P̂^PMI_{C|X} ‖ P̂^Ŝ_{C|X})`, nats (T8: at most `excess_image_to_text`).
    pub zero_shot_excess_risk: f64,
}

/// Measures the score grid `s` (`|X| × |Y|`, rows = the enumeration's images) exactly.
pub fn figures(exact: &Exact, s: &[f64]) -> Figures {
    let xy = exact.view(s, Direction::ImageToText);
    let yx = exact.view(s, Direction::TextToImage);
    // T4: the excess risk in its KL form (nonnegative term by term, so a log axis is safe).
    let (ex, ey) = (xy.excess_kl(), yx.excess_kl());
    let learned = ZeroShot::new(exact, &xy);
    let oracle = ZeroShot::new(exact, &exact.view(&exact.pmi, Direction::ImageToText));
    let image = &exact.en.image;
    let px = |i: usize| image.p(i);
    let bayes: f64 = (0..image.len()).map(|i| px(i) * image.root_row(i).iter().copied().fold(0.0, f64::max)).sum();
    let zero_shot_kl: f64 = (0..image.len()).map(|i| px(i) * kl(oracle.row(i), learned.row(i))).sum();
    Figures {
        excess_image_to_text: ex,
        excess_text_to_image: ey,
        excess_risk: 0.5 * (ex + ey),
        zero_shot_accuracy: learned.root_accuracy(exact),
        exact_score_accuracy: oracle.root_accuracy(exact),
        bayes_accuracy: bayes,
        zero_shot_excess_risk: zero_shot_kl,
    }
}

/// `P̂^S(c | x_i)` for every enumerated image, row-major `|X| × S₀`.
struct ZeroShot {
    probs: Vec<f64>,
    classes: usize,
}

impl ZeroShot {
    fn new(exact: &Exact, view: &crate::contrastive::View) -> Self {
        let text = &exact.en.text;
        let classes = text.root_size;
        let mut probs = vec![0.0; view.anchors() * classes];
        for (i, row) in probs.chunks_mut(classes).enumerate() {
            let log_q = view.log_induced_conditional(i);
            // P̂^S(c | x) = Σ_y Q^S(y | x) p(z = c | y)
            for (j, lq) in log_q.iter().enumerate() {
                let q = lq.exp();
                for (r, pz) in row.iter_mut().zip(text.root_row(j)) {
                    *r += q * pz;
                }
            }
        }
        ZeroShot { probs, classes }
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.probs[i * self.classes..(i + 1) * self.classes]
    }

    /// `Σ_x p(x) p(z = argmax_c P̂(c | x) | x)` (ties to the smallest class).
    fn root_accuracy(&self, exact: &Exact) -> f64 {
        let image = &exact.en.image;
        (0..image.len())
            .map(|i| {
                let row = self.row(i);
                let c = (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best });
                image.p(i) * image.root_row(i)[c]
            })
            .sum()
    }
}
