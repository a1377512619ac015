//! T3: `log K - ℓ_K^{X→Y}(S) ≤ I(X; Y)` for every score and batch size, and
//! `ℓ_K - log K → ℓ_∞` with the first-order rate `c_1 / K` (proof and the constant `c_1`:
//! `proofs/T3-infonce.md`). Also: the Monte Carlo estimators agree with the exact values.

mod common;
mod tiny;

use jghm::contrastive::{monte_carlo, Batch, Direction, Exact};
use jghm::info::Enumeration;
use jghm::score::{Perturbed, Pmi, Score};
use proptest::prelude::*;
use tiny::*;

/// Tiny models whose text side has at most 4 sequences, so that batches up to 64 are exact.
fn arb_small_text_model() -> impl Strategy<Value = jghm::model::Jghm> {
    (
        arb_tiny_shape(false),
        prop_oneof![Just(vec![(1, 2)]), Just(vec![(2, 2)]), Just(vec![(1, 3)])],
        common::arb_regime(),
        any::<u64>(),
    )
        .prop_map(|(mut shape, text, regime, seed)| {
            shape.text = text;
            common::build(&shape, regime, seed)
        })
        .prop_filter("image side enumerable", |m| jghm::info::side_size(m, jghm::Part::Image) <= 27.0)
}

proptest! {
    #![proptest_config(config(16))]

    /// The InfoNCE bound for K = 1..6, both directions, for the PMI and perturbed scores.
    #[test]
    fn t3_infonce_bound_for_every_score_and_batch(model in arb_any_tiny_model(9.0), seed in any::<u64>(), amp in 0.0f64..3.0) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let mi = en.mutual_information();
        let perturbed = ex.scores(&Perturbed { base: Pmi { model: &model }, amplitude: amp, seed });
        for s in [&ex.pmi, &perturbed] {
            for dir in [Direction::ImageToText, Direction::TextToImage] {
                for k in 1..=6usize {
                    let bound = (k as f64).ln() - ex.loss(s, dir, Batch::Finite(k)).unwrap();
                    prop_assert!(bound <= mi + 1e-12, "K={k} {dir:?}: log K - ℓ_K = {bound} > I = {mi}");
                }
            }
        }
    }

    /// `ℓ_K - log K - ℓ_∞ = c_1/K + O(1/K²)`: the remainder `R_K = gap_K - c_1/K` is second
    /// order, so `K² R_K` stays bounded: at K = 64 it is at most 1.5 times its largest value at
    /// K = 8, 16, 32 (a wrong `c_1` leaves `R_K ~ d/K`, and `K² R_K` doubles with each K).
    /// For the PMI, `c_1 = E_X χ²(P_{Y|X} ‖ P_Y) / 2`.
    #[test]
    fn t3_large_batch_limit_with_rate(model in arb_small_text_model(), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let perturbed = ex.scores(&Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed });
        for s in [&ex.pmi, &perturbed] {
            let v = ex.view(s, Direction::ImageToText);
            let (limit, c1) = (v.loss_infinite(), v.rate_constant());
            let k2r = |k: usize| {
                let kf = k as f64;
                kf * kf * (v.loss_finite(k).unwrap() - kf.ln() - limit - c1 / kf)
            };
            let earlier = [8, 16, 32].map(|k| k2r(k).abs()).into_iter().fold(0.0, f64::max);
            let last = k2r(64).abs();
            prop_assert!(last <= 1.5 * earlier + 1e-9, "K²·R_K: {last} at K=64, at most {earlier} before (c1 = {c1})");
        }
        // c_1 of the PMI is half the mean chi-square divergence of P_{Y|X} from P_Y.
        let v = ex.view(&ex.pmi, Direction::ImageToText);
        let chi2: f64 = (0..v.anchors()).map(|a| {
            v.pa[a] * (0..v.candidates()).map(|c| v.cond[a * v.candidates() + c].powi(2) / v.pc[c]).sum::<f64>() - v.pa[a]
        }).sum();
        prop_assert!((v.rate_constant() - chi2 / 2.0).abs() < 1e-10);
    }
}

/// The rate, shown: `ℓ_K - log K - ℓ_∞` and `K·(…)` against `c_1` on one model (run with
/// `--nocapture` to see the table; the assertions are those of the property above).
#[test]
fn t3_rate_table() {
    let shape = common::Shape { root_states: 3, shared: vec![], image: vec![(2, 3)], text: vec![(2, 2)] };
    let model = common::build(&shape, common::Regime::Generic, 7);
    let en = Enumeration::new(&model).unwrap();
    let ex = Exact::new(&en);
    let v = ex.view(&ex.pmi, Direction::ImageToText);
    let (limit, c1) = (v.loss_infinite(), v.rate_constant());
    println!("l_inf = {limit:.12}, -I = {:.12}, c1 = {c1:.12}", -en.mutual_information());
    println!("{:>4} {:>16} {:>16} {:>12}", "K", "l_K - log K", "gap", "K*gap");
    let mut previous = f64::INFINITY;
    for k in [2usize, 4, 8, 16, 32, 64, 128] {
        let gap = v.loss_finite(k).unwrap() - (k as f64).ln() - limit;
        println!("{k:>4} {:>16.12} {gap:>16.3e} {:>12.6}", gap + limit, k as f64 * gap);
        assert!(gap.abs() < previous, "the gap must shrink");
        previous = gap.abs();
    }
}

/// Monte Carlo ℓ_K (K = 4) and the jackknifed nested ℓ_∞ agree with the exact values within
/// four standard errors (seeded, so deterministic).
#[test]
fn contrastive_monte_carlo_matches_exact() {
    let shape = common::Shape { root_states: 3, shared: vec![(2, 2)], image: vec![(1, 3)], text: vec![(2, 2)] };
    let model = common::build(&shape, common::Regime::Generic, 3);
    let en = Enumeration::new(&model).unwrap();
    let ex = Exact::new(&en);
    let pmi = Pmi { model: &model };
    let pert = Perturbed { base: Pmi { model: &model }, amplitude: 0.7, seed: 9 };
    let scores: [&dyn Score; 2] = [&pmi, &pert];
    for batch in [Batch::Finite(4), Batch::Infinite] {
        let mc = monte_carlo(&model, &scores, batch, 2000, 17).unwrap();
        for (score, terms) in scores.iter().zip(&mc.terms) {
            let s = ex.scores(*score);
            for (d, dir) in [Direction::ImageToText, Direction::TextToImage].into_iter().enumerate() {
                let est = jghm::info::Estimate::from_samples(&terms.iter().map(|t| t[d]).collect::<Vec<_>>());
                let exact = ex.loss(&s, dir, batch).unwrap();
                assert!(
                    (est.value - exact).abs() < 4.0 * est.stderr,
                    "{batch:?} {dir:?} {}: MC {} ± {} vs exact {exact}",
                    score.name(),
                    est.value,
                    est.stderr
                );
            }
        }
    }
}
