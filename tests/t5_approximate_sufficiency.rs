//! T5: a score that depends on the anchor only through `T = f(A)` has
//! `Suff(f) ≤ ℓ_∞(S) - ℓ_∞(PMI)`, with equality for `S = PMI_T`. Finite `K` (our statement,
//! `proofs/T5-approximate-sufficiency.md`): with `Δ_K(f) = ℓ_K(PMI_T) - ℓ_K(PMI)`,
//! `ℓ_K(S) - ℓ_K(PMI) ≥ Δ_K(f)` and `0 ≤ Δ_K(f) ≤ Suff(f)`, `Δ_K → Suff`; the infinite-batch
//! inequality itself can fail at finite K (shown below).

mod common;
mod tiny;

use jghm::contrastive::{Batch, Direction, Exact};
use jghm::info::Enumeration;
use jghm::model::Part;
use jghm::score::{hash_unit, Bilinear, Linear, Perturbed, Pmi, PosteriorEncoder};
use jghm::sufficiency::{t5_bound, Evaluator, Gap, Statistic, SufficiencyError};
use proptest::prelude::*;
use tiny::*;

fn direction(side: Part) -> Direction {
    if side == Part::Image {
        Direction::ImageToText
    } else {
        Direction::TextToImage
    }
}

/// `PMI_T(t(a), c) + amp·u(t(a), c)`: a score through `T`, as an `|X| × |Y|` grid.
fn through(g: &Gap, amp: f64, seed: u64) -> Vec<f64> {
    let mut s = g.statistic_pmi_grid();
    let ny = g.en.text.len();
    for (k, v) in s.iter_mut().enumerate() {
        let (i, j) = (k / ny, k % ny);
        let (a, c) = if g.side == Part::Image { (i, j) } else { (j, i) };
        *v += amp * hash_unit(seed, &[g.classes.of[a], c]);
    }
    s
}

proptest! {
    #![proptest_config(config(16))]

    /// Every built-in statistic, both sides: equality at `S = PMI_T`, the inequality for
    /// scores perturbed through `T`, and refusal for a score that is not through `T`.
    #[test]
    fn t5_sufficiency_below_excess_risk(model in arb_shallow_or_deep_model(27.0), seed in any::<u64>(), amp in 0.01f64..2.0) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let generic = ex.scores(&Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed });
        for side in [Part::Image, Part::Text] {
            for st in all_statistics(&model, side) {
                let g = Gap::new(&en, side, Evaluator::new(&model, side, st).unwrap().classes(en.side(side)));
                let (suff, excess) = t5_bound(&ex, &g, &g.statistic_pmi_grid()).unwrap();
                prop_assert!((suff - excess).abs() < 1e-10, "{st} {side}: PMI_T excess {excess} vs Suff {suff}");
                let (suff, excess) = t5_bound(&ex, &g, &through(&g, amp, seed)).unwrap();
                prop_assert!(suff <= excess + 1e-12, "{st} {side}: Suff {suff} > excess {excess}");
                if g.classes.count < en.side(side).len() {
                    let refused = matches!(t5_bound(&ex, &g, &generic), Err(SufficiencyError::NotThroughStatistic { .. }));
                    prop_assert!(refused, "{st} {side}: a generic score was accepted as a function of T");
                }
            }
        }
    }

    /// CLIP-like scores `⟨M f*(x), N g*(y)⟩/τ` depend on `x` only through the separator posterior.
    #[test]
    fn t5_bilinear_scores_of_posteriors(model in arb_shallow_or_deep_model(27.0), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let dim = en.cut.size();
        let random = |s: u64| (0..3 * dim).map(|i| hash_unit(s, &[i]) * 4.0).collect::<Vec<_>>();
        let s = ex.scores(&Bilinear {
            image: Linear { inner: PosteriorEncoder { model: &model, part: Part::Image, cut: en.cut.clone() }, matrix: random(seed), out: 3 },
            text: Linear { inner: PosteriorEncoder { model: &model, part: Part::Text, cut: en.cut.clone() }, matrix: random(!seed), out: 3 },
            temperature: 0.7,
        });
        for side in [Part::Image, Part::Text] {
            let g = Gap::new(&en, side, Evaluator::new(&model, side, Statistic::SeparatorPosterior).unwrap().classes(en.side(side)));
            let (suff, excess) = t5_bound(&ex, &g, &s).unwrap();
            prop_assert!(suff <= excess + 1e-12 && suff.abs() < 1e-10, "{side}: Suff {suff}, excess {excess}");
        }
    }

    /// Finite K: `ℓ_K(S) - ℓ_K(PMI) ≥ Δ_K(f)` for S through T, and `0 ≤ Δ_K(f) ≤ Suff(f)`.
    #[test]
    fn t5_finite_batch_relation(model in arb_shallow_or_deep_model(9.0), seed in any::<u64>(), amp in 0.01f64..2.0) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        for side in [Part::Image, Part::Text] {
            let dir = direction(side);
            for st in all_statistics(&model, side) {
                let g = Gap::new(&en, side, Evaluator::new(&model, side, st).unwrap().classes(en.side(side)));
                let suff = g.kl_form();
                let (pmi_t, s) = (g.statistic_pmi_grid(), through(&g, amp, seed));
                for k in 2..=4 {
                    let best = ex.loss(&ex.pmi, dir, Batch::Finite(k)).unwrap();
                    let delta = ex.loss(&pmi_t, dir, Batch::Finite(k)).unwrap() - best;
                    let excess = ex.loss(&s, dir, Batch::Finite(k)).unwrap() - best;
                    prop_assert!(delta >= -1e-12 && delta <= suff + 1e-12, "{st} {side} K={k}: Δ_K {delta}, Suff {suff}");
                    prop_assert!(excess >= delta - 1e-12, "{st} {side} K={k}: excess {excess} < Δ_K {delta}");
                }
            }
        }
    }
}

/// The infinite-batch inequality `Suff ≤ excess` does not carry over to finite K verbatim:
/// for `S = PMI_T` of `map-root`, the batch-2 excess `Δ_2` is strictly below `Suff`, and
/// `Δ_K` climbs towards `Suff` as K grows.
#[test]
fn t5_finite_batch_excess_can_be_below_sufficiency_gap() {
    let shape = common::Shape { root_states: 3, shared: vec![], image: vec![(2, 3)], text: vec![(2, 2)] };
    let model = common::build(&shape, common::Regime::Generic, 7);
    let en = Enumeration::new(&model).unwrap();
    let ex = Exact::new(&en);
    let g =
        Gap::new(&en, Part::Image, Evaluator::new(&model, Part::Image, Statistic::MapRoot).unwrap().classes(&en.image));
    let (suff, pmi_t) = (g.kl_form(), g.statistic_pmi_grid());
    let delta = |k: usize| {
        ex.loss(&pmi_t, Direction::ImageToText, Batch::Finite(k)).unwrap()
            - ex.loss(&ex.pmi, Direction::ImageToText, Batch::Finite(k)).unwrap()
    };
    let (d2, d16, d64) = (delta(2), delta(16), delta(64));
    println!("Suff(map-root) = {suff:.6e}; Δ_2 = {d2:.6e}, Δ_16 = {d16:.6e}, Δ_64 = {d64:.6e}");
    assert!(suff > 1e-6 && d2 < 0.9 * suff, "Δ_2 = {d2} should be well below Suff = {suff}");
    assert!(d2 < d16 && d16 < d64 && d64 <= suff + 1e-12);
}
