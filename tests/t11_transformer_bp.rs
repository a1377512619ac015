//! T11: a transformer of depth 2L + 1 with explicit weights approximates the log root posterior,
//! with an error that falls as the MLP width grows; with exact nonlinearities it is BP.
//! See proofs/T11-transformer-bp.md.

use jghm::emulate::{BpTransformer, Nonlinearity};
use jghm::model::Part;
use jghm::sample::sample_pairs;
use jghm::RandomSpec;
use proptest::prelude::*;

fn inputs(model: &jghm::Jghm, part: Part, n: usize, seed: u64) -> Vec<Vec<usize>> {
    sample_pairs(model, n, seed, false)
        .into_iter()
        .map(|p| if part == Part::Image { p.image } else { p.text })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// T11 with exact nonlinearities: the attention part (grouping by ancestor, sums of sibling
    /// messages, the positional gating of child transitions) reproduces BP to round-off.
    #[test]
    fn t11_exact_nonlinearity_reproduces_bp(
        states in 2usize..5, children in 1usize..4, depth in 1usize..4, vocab in 2usize..5,
        flip in 0.05f64..1.0, seed in any::<u64>(), text in any::<bool>(),
    ) {
        let spec = RandomSpec { vocab, flip, ..RandomSpec::symmetric(states, children, depth, seed) };
        let model = spec.build().unwrap();
        let part = if text { Part::Text } else { Part::Image };
        let net = BpTransformer::new(&model, part, Nonlinearity::Exact).unwrap();
        prop_assert_eq!(net.layers(), 4 * depth - 1);
        let err = net.error_against_bp(&model, &inputs(&model, part, 20, seed));
        prop_assert!(err.max_abs_error < 1e-10, "max error {}", err.max_abs_error);
    }
}

/// T11 with ReLU MLPs: the error falls as the width grows and is below 1e-3 at width 1024.
#[test]
fn t11_error_falls_with_width() {
    let model = RandomSpec { text_depth: 2, ..RandomSpec::symmetric(4, 3, 3, 11) }.build().unwrap();
    let xs = inputs(&model, Part::Image, 200, 5);
    let errors: Vec<f64> = [8, 32, 128, 1024]
        .iter()
        .map(|&width| {
            let net = BpTransformer::new(&model, Part::Image, Nonlinearity::Relu { width }).unwrap();
            net.error_against_bp(&model, &xs).max_abs_error
        })
        .collect();
    for pair in errors.windows(2) {
        assert!(pair[1] < pair[0], "errors by width {errors:?} must fall");
    }
    assert!(errors[3] < 1e-3, "error at width 1024 is {}", errors[3]);
}

#[test]
fn t11_refuses_zero_transitions_and_trunks() {
    let zero = RandomSpec { flip: 0.0, ..RandomSpec::symmetric(3, 2, 2, 1) }.build().unwrap();
    assert!(BpTransformer::new(&zero, Part::Image, Nonlinearity::Exact).is_err());
    let trunk = RandomSpec { shared_depth: 1, ..RandomSpec::symmetric(3, 2, 2, 1) }.build().unwrap();
    assert!(BpTransformer::new(&trunk, Part::Image, Nonlinearity::Exact).is_err());
}

/// The bisection evaluation of the MLPs is the same network as the unit-by-unit sum. The
/// prefix sums subtract terms of size up to |t|·Σ|c| ≈ 30 to produce O(1) values (~1e-14 each),
/// compounded over 11 blocks and sums over siblings: 1e-10 allows that round-off, while any
/// real difference between the two would be of the interpolation error's size (≥ 1e-6 here).
#[test]
fn t11_bisection_equals_unit_by_unit_sums() {
    let model = RandomSpec::symmetric(4, 2, 3, 3).build().unwrap();
    let xs = inputs(&model, Part::Image, 30, 1);
    let fast = BpTransformer::new(&model, Part::Image, Nonlinearity::Relu { width: 64 }).unwrap();
    let slow = fast.clone().unit_by_unit();
    for x in &xs {
        for (a, b) in fast.log_root_posterior(x).iter().zip(slow.log_root_posterior(x)) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
    }
}
