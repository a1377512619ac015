//! T4: `ℓ_∞^{X→Y}(PMI) = -I(X; Y)` and `ℓ_∞(S) - ℓ_∞(PMI) = E_X KL(P_{Y|X} ‖ Q^S_{Y|X}) ≥ 0`,
//! both directions, to 1e-10. Proof: `proofs/T4-excess-risk-kl.md`.

mod common;
mod tiny;

use jghm::contrastive::{Batch, Direction, Exact};
use jghm::info::Enumeration;
use jghm::score::{Bilinear, Linear, LogWeighted, Perturbed, Pmi, PosteriorEncoder};
use proptest::prelude::*;
use tiny::*;

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn t4_large_batch_loss_of_pmi_is_minus_information(model in arb_any_tiny_model(64.0)) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let mi = en.mutual_information();
        for dir in [Direction::ImageToText, Direction::TextToImage] {
            let l = ex.loss(&ex.pmi, dir, Batch::Infinite).unwrap();
            prop_assert!((l + mi).abs() < 1e-10, "{dir:?}: ℓ_∞(PMI) = {l}, -I = {}", -mi);
            prop_assert!(ex.view(&ex.pmi, dir).excess_kl().abs() < 1e-10);
        }
    }

    /// The identity for perturbed PMIs and for bilinear scores of random linear maps of the
    /// posteriors (a CLIP-like score that is not a PMI).
    #[test]
    fn t4_excess_risk_is_expected_kl(model in arb_any_tiny_model(64.0), seed in any::<u64>(), amp in 0.01f64..2.0) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let t7 = LogWeighted::new(&model).unwrap();
        let dim = t7.image.cut.size();
        let random = |s: u64| (0..3 * dim).map(|i| jghm::score::hash_unit(s, &[i]) * 3.0).collect::<Vec<_>>();
        let bilinear = Bilinear {
            image: Linear { inner: PosteriorEncoder { model: &model, part: jghm::Part::Image, cut: en.cut.clone() }, matrix: random(seed), out: 3 },
            text: Linear { inner: PosteriorEncoder { model: &model, part: jghm::Part::Text, cut: en.cut.clone() }, matrix: random(seed ^ 1), out: 3 },
            temperature: 0.5,
        };
        let grids = [ex.scores(&Perturbed { base: Pmi { model: &model }, amplitude: amp, seed }), ex.scores(&bilinear)];
        for s in &grids {
            for dir in [Direction::ImageToText, Direction::TextToImage] {
                let excess = ex.loss(s, dir, Batch::Infinite).unwrap() - ex.loss(&ex.pmi, dir, Batch::Infinite).unwrap();
                let kl = ex.view(s, dir).excess_kl();
                prop_assert!((excess - kl).abs() < 1e-10, "{dir:?}: excess {excess} vs E KL {kl}");
                prop_assert!(kl >= -1e-12);
            }
        }
    }

    /// `Q^S` is a conditional law, and `Q^{PMI} = P_{Y|X}`.
    #[test]
    fn t4_induced_conditional_of_pmi_is_the_truth(model in arb_any_tiny_model(64.0)) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let v = ex.view(&ex.pmi, Direction::ImageToText);
        for a in 0..v.anchors() {
            let q = v.log_induced_conditional(a);
            let total: f64 = q.iter().map(|l| l.exp()).sum();
            prop_assert!((total - 1.0).abs() < 1e-12);
            for (c, lq) in q.iter().enumerate() {
                prop_assert!((lq.exp() - v.cond[a * v.candidates() + c]).abs() < 1e-12);
            }
        }
    }
}

/// The resampling sampler of `Q^S` matches the exact `Q^S` on a tiny model (seeded, so
/// deterministic; the tolerance is five standard errors of a frequency over 4000 draws).
#[test]
fn induced_conditional_by_resampling_matches_exact() {
    let shape = common::Shape { root_states: 2, shared: vec![], image: vec![(2, 2)], text: vec![(2, 2)] };
    let model = common::build(&shape, common::Regime::Generic, 11);
    let en = Enumeration::new(&model).unwrap();
    let ex = Exact::new(&en);
    let score = Perturbed { base: Pmi { model: &model }, amplitude: 0.8, seed: 3 };
    let s = ex.scores(&score);
    let v = ex.view(&s, Direction::ImageToText);
    let (a, draws) = (0, 4000);
    let x = en.image.tokens[a].clone();
    let mut rng = jghm::rng::stream(5, 0);
    let mut counts = vec![0usize; en.text.len()];
    for _ in 0..draws {
        let y = jghm::contrastive::sample_induced(&model, &score, &x, 200, &mut rng).unwrap();
        counts[en.text.tokens.iter().position(|t| *t == y).unwrap()] += 1;
    }
    for (c, lq) in v.log_induced_conditional(a).iter().enumerate() {
        let (q, f) = (lq.exp(), counts[c] as f64 / draws as f64);
        let se = (q * (1.0 - q) / draws as f64).sqrt();
        // Resampling from 200 proposals has its own O(1/200) bias; allow it on top of 5 se.
        assert!((f - q).abs() < 5.0 * se + 0.01, "y#{c}: frequency {f} vs Q^S {q}");
    }
}
