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

/// Tiny models, with or without a one-child trunk, whose image and text sides both have at most
/// 4 sequences, so that batches up to 64 are exact in both directions. With `near_deterministic`
/// false, only the near-uniform and generic regimes: the expansion in `1/K` needs `K p(c)` large
/// for every candidate, and a near-deterministic model with `p(c) ≈ 10⁻⁶` is still far from its
/// limit at `K = 64` (its gap is `O(1/K²)` there only for `K ≫ 10⁶`).
fn arb_small_sides_model(near_deterministic: bool) -> impl Strategy<Value = jghm::model::Jghm> {
    use common::Regime;
    let regime = if near_deterministic {
        common::arb_regime().boxed()
    } else {
        prop_oneof![Just(Regime::NearUniform), Just(Regime::Generic)].boxed()
    };
    let side = || prop_oneof![Just(vec![(1, 2)]), Just(vec![(2, 2)]), Just(vec![(1, 3)]), Just(vec![(1, 2), (2, 2)])];
    let trunk = prop_oneof![Just(vec![]), Just(vec![(1, 2)]), Just(vec![(1, 3)])];
    (2usize..=3, trunk, side(), side(), regime, any::<u64>()).prop_map(
        |(root_states, shared, image, text, regime, seed)| {
            common::build(&common::Shape { root_states, shared, image, text }, regime, seed)
        },
    )
}

/// The remainder test of T3 (b) on one view: `K² R_K` at `K = 64` is at most 1.5 times its
/// largest value at `K = 8, 16, 32`, with `R_K = ℓ_K − log K − ℓ_∞ − c_1/K`.
fn remainder_is_second_order(v: &jghm::contrastive::View, what: &str) -> Result<(), TestCaseError> {
    let (limit, c1) = (v.loss_infinite(), v.rate_constant());
    let k2r = |k: usize| {
        let kf = k as f64;
        kf * kf * (v.loss_finite(k).unwrap() - kf.ln() - limit - c1 / kf)
    };
    let earlier = [8, 16, 32].map(|k| k2r(k).abs()).into_iter().fold(0.0, f64::max);
    let last = k2r(64).abs();
    let all = [8, 16, 32, 64, 128].map(k2r);
    prop_assert!(
        last <= 1.5 * earlier + 1e-9,
        "{what}: K²·R_K: {last} at K=64, at most {earlier} before (c1 = {c1}); K = 8..128: {all:?}"
    );
    Ok(())
}

/// `c_1(PMI) = E_A χ²(P_{C|A} ‖ P_C) / 2` on one view.
fn rate_constant_is_half_the_chi_square(v: &jghm::contrastive::View) -> Result<(), TestCaseError> {
    let chi2: f64 = (0..v.anchors())
        .map(|a| {
            v.pa[a] * (0..v.candidates()).map(|c| v.cond[a * v.candidates() + c].powi(2) / v.pc[c]).sum::<f64>()
                - v.pa[a]
        })
        .sum();
    prop_assert!((v.rate_constant() - chi2 / 2.0).abs() < 1e-10, "c1 {} vs chi2/2 {}", v.rate_constant(), chi2 / 2.0);
    Ok(())
}

proptest! {
    #![proptest_config(config(16))]

    /// T3 (b) in both directions, with and without a trunk: the remainder after `c_1/K` is second
    /// order for the PMI and a perturbed score, and `c_1(PMI) = E χ²/2`, for `ℓ^{X→Y}` and `ℓ^{Y→X}`.
    #[test]
    fn t3_rate_in_both_directions_with_and_without_trunk(model in arb_small_sides_model(false), seed in any::<u64>()) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let perturbed = ex.scores(&Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed });
        for dir in [Direction::ImageToText, Direction::TextToImage] {
            for (s, name) in [(&ex.pmi, "PMI"), (&perturbed, "perturbed")] {
                remainder_is_second_order(&ex.view(s, dir), &format!("{dir:?} {name}"))?;
            }
            rate_constant_is_half_the_chi_square(&ex.view(&ex.pmi, dir))?;
        }
    }

    /// InfoNCE with the PMI, exactly: `log K − ℓ_K(PMI)` is 0 at `K = 1`, non-decreasing in `K`
    /// (1e-12) for `K = 1..64`, at most `I(X; Y)`, and converges to it: `ℓ_∞(PMI) = −I(X; Y)`
    /// (1e-10) and, where every candidate has `p(c) ≥ 0.05` (so that `K = 64` is in the
    /// asymptotic range, see [`arb_small_sides_model`]), `K (I − (log K − ℓ_K))` at `K = 64` is
    /// within 10% of `c_1` (the gap closes like `c_1/K`); in both directions, with and without a
    /// trunk, in every regime.
    #[test]
    fn t3_infonce_of_the_pmi_rises_monotonically_to_the_information(model in arb_small_sides_model(true)) {
        let en = Enumeration::new(&model).unwrap();
        let ex = Exact::new(&en);
        let mi = en.mutual_information();
        for dir in [Direction::ImageToText, Direction::TextToImage] {
            let v = ex.view(&ex.pmi, dir);
            prop_assert!((v.loss_infinite() + mi).abs() < 1e-10, "{dir:?}: l_inf {} vs -I {}", v.loss_infinite(), -mi);
            let bound = |k: usize| (k as f64).ln() - v.loss_finite(k).unwrap();
            prop_assert!(bound(1).abs() < 1e-12, "{dir:?}: log 1 - l_1 = {}", bound(1));
            let mut previous = bound(1);
            for k in 2..=64usize {
                let b = bound(k);
                prop_assert!(b >= previous - 1e-12, "{dir:?}: K={k}: {b} below {previous} at K-1");
                prop_assert!(b <= mi + 1e-12, "{dir:?}: K={k}: {b} above I = {mi}");
                previous = b;
            }
            let (gap, c1) = (mi - previous, v.rate_constant());
            if v.pc.iter().copied().fold(1.0, f64::min) < 0.05 {
                continue;
            }
            prop_assert!((64.0 * gap - c1).abs() <= 0.1 * c1 + 1e-9, "{dir:?}: 64·gap {} vs c1 {c1}", 64.0 * gap);
        }
    }

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
