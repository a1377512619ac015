//! T2: for every `K ≥ 2`, `ℓ_K^{X→Y}` is minimised exactly by `S = PMI + c(x)`, and `L_K` by
//! `S = PMI + const`; on a full-support law every other score does strictly worse.
//! Proof: `proofs/T2-optimal-score.md`. Also checks the exact finite-`K` loss (sum over the
//! compositions of the negatives) against the obvious sum over all `|Y|^{K-1}` tuples.

mod common;
mod tiny;

use jghm::contrastive::{Batch, Direction, Exact};
use jghm::info::Enumeration;
use jghm::logspace::log_sum_exp;
use jghm::score::{Perturbed, Pmi, ShiftOf, Shifted};
use proptest::prelude::*;
use tiny::*;

const DIRS: [Direction; 2] = [Direction::ImageToText, Direction::TextToImage];

proptest! {
    #![proptest_config(config(16))]

    /// `ℓ_K(PMI + c(anchor)) = ℓ_K(PMI)` to 1e-10, and a generic perturbation is strictly worse,
    /// for K = 2..5 and both directions.
    #[test]
    fn t2_pmi_plus_anchor_shift_minimises_each_direction(model in arb_any_tiny_model(12.0), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let pmi = Pmi { model: &model };
        for dir in DIRS {
            let of = if dir == Direction::ImageToText { ShiftOf::Image } else { ShiftOf::Text };
            let shifted = ex.scores(&Shifted { base: &pmi, of, amplitude: 2.0, seed });
            let perturbed = ex.scores(&Perturbed { base: &pmi, amplitude: 0.3, seed });
            for k in 2..=5 {
                let best = ex.loss(&ex.pmi, dir, Batch::Finite(k)).unwrap();
                let sh = ex.loss(&shifted, dir, Batch::Finite(k)).unwrap();
                let pe = ex.loss(&perturbed, dir, Batch::Finite(k)).unwrap();
                prop_assert!((sh - best).abs() < 1e-10, "K={k} {dir:?}: PMI+c {sh} vs PMI {best}");
                prop_assert!(pe > best + 1e-13, "K={k} {dir:?}: perturbed {pe} not above PMI {best}");
            }
        }
    }

    /// `L_K(PMI + const) = L_K(PMI)`; `PMI + c(x)` (non-constant) and perturbations are strictly
    /// worse for the symmetric loss.
    #[test]
    fn t2_clip_loss_minimised_by_pmi_plus_constant(model in arb_any_tiny_model(12.0), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let pmi = Pmi { model: &model };
        let constant = ex.scores(&Shifted { base: &pmi, of: ShiftOf::Constant, amplitude: 1.7, seed });
        let image_shift = ex.scores(&Shifted { base: &pmi, of: ShiftOf::Image, amplitude: 1.0, seed });
        let perturbed = ex.scores(&Perturbed { base: &pmi, amplitude: 0.3, seed });
        // A shift c(x) is invisible to Y→X only if it is constant over images.
        let distinct_shift = en.image.len() > 1;
        for k in 2..=4 {
            let best = ex.clip_loss(&ex.pmi, Batch::Finite(k)).unwrap();
            prop_assert!((ex.clip_loss(&constant, Batch::Finite(k)).unwrap() - best).abs() < 1e-10);
            prop_assert!(ex.clip_loss(&perturbed, Batch::Finite(k)).unwrap() > best + 1e-13);
            if distinct_shift {
                prop_assert!(ex.clip_loss(&image_shift, Batch::Finite(k)).unwrap() > best + 1e-13);
            }
        }
    }

    /// The exact loss over compositions equals the loss summed over every tuple of negatives.
    #[test]
    fn contrastive_compositions_match_tuple_enumeration(model in arb_any_tiny_model(6.0), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let s = ex.scores(&Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed });
        for dir in DIRS {
            let v = ex.view(&s, dir);
            for k in 1..=4 {
                let fast = v.loss_finite(k).unwrap();
                let slow = tuple_loss(&v, k);
                prop_assert!((fast - slow).abs() < 1e-10, "K={k}: compositions {fast} vs tuples {slow}");
            }
        }
    }
}

/// `Σ_a p(a) Σ_{c_1} p(c_1|a) Σ_{c_2..c_K} Π p(c_j) [log Σ_j exp S(a, c_j) - S(a, c_1)]`.
fn tuple_loss(v: &jghm::contrastive::View, k: usize) -> f64 {
    let n = v.candidates();
    let mut total = 0.0;
    for a in 0..v.anchors() {
        for tuple in 0..n.pow(k as u32 - 1) {
            let negs = jghm::info::decode_sequence(tuple, k - 1, n);
            let w: f64 = negs.iter().map(|&c| v.pc[c]).product();
            for c1 in 0..n {
                let p = v.cond[a * n + c1];
                if p == 0.0 {
                    continue;
                }
                let mut logits = vec![v.s[a * n + c1]];
                logits.extend(negs.iter().map(|&c| v.s[a * n + c]));
                total += v.pa[a] * p * w * (log_sum_exp(&logits) - v.s[a * n + c1]);
            }
        }
    }
    total
}
