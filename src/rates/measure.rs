//! A learned score measured *exactly* against the ground truth on a model small enough to
//! enumerate (the book, T2-T10): no Monte Carlo, so a sweep's noise is the learning's alone.
//!
//! With the enumeration's PMI grid and the learned score's grid `Ŝ(x_i, y_j)`:
//!
//! ```text
//! excess^{X→Y}(Ŝ) = ℓ_∞^{X→Y}(Ŝ) − ℓ_∞^{X→Y}(PMI) = E_X KL(P_{Y|X} ‖ Q^Ŝ_{Y|X})      (T4)
//! Suff_Y(f) ≤ excess^{X→Y}(Ŝ),  Suff_X(g) ≤ excess^{Y→X}(Ŝ)                          (T5)
//! P̂^S(c | x) = Σ_y p(c | y) Q^S(y | x),  p(c | y) = p(z = c | y)                      (T8)
//! zero-shot excess risk = E_X KL(P̂^PMI_{C|X} ‖ P̂^Ŝ_{C|X}) ≤ excess^{X→Y}(Ŝ)         (T8)
//! ```
//!
//! The zero-shot figures are those of the exact zero-shot classifier on the root label
//! ([`crate::downstream::zero_shot::root_figures`]: exact prompt ensembles, `M = ∞`), next to
//! the same protocol with the exact score `S = PMI` and Bayes `argmax_z p(z | x)`.

use serde::Serialize;

use crate::contrastive::{Direction, Exact};
use crate::downstream::zero_shot::root_figures;

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
    let zero_shot = root_figures(exact, &xy);
    Figures {
        excess_image_to_text: ex,
        excess_text_to_image: ey,
        excess_risk: 0.5 * (ex + ey),
        zero_shot_accuracy: zero_shot.accuracy,
        exact_score_accuracy: zero_shot.exact_score_accuracy,
        bayes_accuracy: zero_shot.bayes_accuracy,
        zero_shot_excess_risk: zero_shot.excess_risk,
    }
}
