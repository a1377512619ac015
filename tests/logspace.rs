//! The log-domain arithmetic every exact computation rests on (`jghm::logspace`), against its
//! definitions: `log Σ_i exp(x_i)` computed naively where that is safe, invariance under a
//! common shift where it is not, and the `-inf` conventions.

use jghm::logspace::{argmax, log_sum_exp, log_sum_exp_iter, normalise_log};
use proptest::prelude::*;

/// Naive `ln Σ exp(x_i)`: exact to round-off while every `exp(x_i)` is a normal double.
fn naive(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x.exp()).sum::<f64>().ln()
}

/// Equal to `tol` relative, or both `-inf` (every weight zero).
fn close(a: f64, b: f64, tol: f64) -> bool {
    a == b || (a - b).abs() <= tol * b.abs().max(1.0)
}

/// Log-weights in a range where the naive sum is safe, some of them `-inf` (weight zero).
fn moderate() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop_oneof![4 => -30.0..30.0f64, 1 => Just(f64::NEG_INFINITY)], 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Both forms equal the naive sum, whatever the order of the terms.
    #[test]
    fn log_sum_exp_is_the_log_of_the_sum(xs in moderate()) {
        let want = naive(&xs);
        prop_assert!(close(log_sum_exp(&xs), want, 1e-12), "{} vs {want}", log_sum_exp(&xs));
        prop_assert!(close(log_sum_exp_iter(xs.iter().copied()), want, 1e-12), "iter {} vs {want}", log_sum_exp_iter(xs.iter().copied()));
        let reversed: Vec<f64> = xs.iter().rev().copied().collect();
        prop_assert!(close(log_sum_exp_iter(reversed), want, 1e-12), "reversed");
    }

    /// `log Σ exp(x_i + c) = c + log Σ exp(x_i)`, far outside the range of `exp` (c = ±10^4):
    /// the maximum is factored out, not exponentiated.
    #[test]
    fn log_sum_exp_is_shift_equivariant_far_from_zero(xs in moderate(), up in any::<bool>()) {
        let c = if up { 1e4 } else { -1e4 };
        let shifted: Vec<f64> = xs.iter().map(|x| x + c).collect();
        let want = c + naive(&xs);
        // Relative 1e-15 of |c| = 10^4: the round-off of `x + c` itself.
        prop_assert!(close(log_sum_exp(&shifted), want, 1e-15), "{} vs {want}", log_sum_exp(&shifted));
        prop_assert!(close(log_sum_exp_iter(shifted.iter().copied()), want, 1e-15), "iter");
    }

    /// Probabilities proportional to the weights, summing to 1.
    #[test]
    fn normalise_log_gives_the_normalised_weights(xs in moderate()) {
        prop_assume!(xs.iter().any(|x| x.is_finite()));
        let p = normalise_log(&xs).expect("a finite weight");
        let total: f64 = xs.iter().map(|x| x.exp()).sum();
        for (pi, x) in p.iter().zip(&xs) {
            prop_assert!((pi - x.exp() / total).abs() <= 1e-12, "{pi} vs {}", x.exp() / total);
        }
        prop_assert!((p.iter().sum::<f64>() - 1.0).abs() <= 1e-12);
    }
}

/// No weight at all, or only zero weights: the sum is 0, its log `-inf`, and there is nothing
/// to normalise.
#[test]
fn empty_and_all_zero_weights_have_log_sum_minus_infinity() {
    let none: [f64; 0] = [];
    let zeros = [f64::NEG_INFINITY; 3];
    for xs in [&none[..], &zeros[..]] {
        assert_eq!(log_sum_exp(xs), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp_iter(xs.iter().copied()), f64::NEG_INFINITY);
        assert_eq!(normalise_log(xs), None);
    }
    // One weight: its own log, exactly; one nonzero weight among zeros: probability 1.
    assert_eq!(log_sum_exp(&[-3.5]), -3.5);
    assert_eq!(log_sum_exp_iter([f64::NEG_INFINITY, -3.5]), -3.5);
    assert_eq!(normalise_log(&[f64::NEG_INFINITY, 2.0]), Some(vec![0.0, 1.0]));
}

proptest! {
    /// `argmax` is the first index of the largest entry: every earlier entry is smaller, none
    /// later is larger; the same index for a law and for its logarithms. Few distinct values,
    /// so that ties are common.
    #[test]
    fn argmax_is_the_first_largest_entry(xs in prop::collection::vec(0u8..4, 1..12)) {
        let law: Vec<f64> = xs.iter().map(|&x| f64::from(x) / 4.0).collect();
        let i = argmax(&law);
        prop_assert!(law[..i].iter().all(|&x| x < law[i]), "{law:?}: an earlier entry ties or wins over {i}");
        prop_assert!(law[i..].iter().all(|&x| x <= law[i]), "{law:?}: a later entry beats {i}");
        let logs: Vec<f64> = law.iter().map(|p| p.ln()).collect();
        prop_assert_eq!(argmax(&logs), i);
    }
}
