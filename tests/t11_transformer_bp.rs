//! T11: a transformer of depth 2L + 1 with explicit weights approximates the log root posterior,
//! with an error that falls as the MLP width grows; with exact nonlinearities it is BP.
//! See proofs/T11-transformer-bp.md.

mod common;

use common::{Regime, Shape};
use jghm::emulate::{BpTransformer, Nonlinearity};
use jghm::info::{decode_sequence, side_size};
use jghm::model::{Jghm, Part};
use jghm::sample::sample_pairs;
use jghm::RandomSpec;
use proptest::prelude::*;

fn inputs(model: &jghm::Jghm, part: Part, n: usize, seed: u64) -> Vec<Vec<usize>> {
    sample_pairs(model, n, seed, false)
        .into_iter()
        .map(|p| if part == Part::Image { p.image } else { p.text })
        .collect()
}

/// Every sequence of one tower (the tower must be small enough to enumerate).
fn all_inputs(model: &Jghm, part: Part) -> Vec<Vec<usize>> {
    let n = side_size(model, part) as usize;
    (0..n).map(|i| decode_sequence(i, model.len_of(part), model.vocab_of(part))).collect()
}

/// Worst absolute error of the geometric-knot chord of `log` on a segment of log-length `u`
/// (`r = e^u`): `log((r−1)/log r) − 1 + log r/(r−1)`.
fn log_chord_error(u: f64) -> f64 {
    let r = u.exp();
    ((r - 1.0) / u).ln() - 1.0 + u / (r - 1.0)
}

/// Worst relative error of the chord of `exp` on a segment of length `Δ`: with slope
/// `σ = (e^Δ − 1)/Δ`, `1/σ + log σ − 1`.
fn exp_chord_error(delta: f64) -> f64 {
    let sigma = delta.exp_m1() / delta;
    1.0 / sigma + sigma.ln() - 1.0
}

/// T11's bound on `max_a |ô(x)_a − log p(z = a | x)|` at width `W`, from the model alone
/// (proofs/T11-transformer-bp.md): `2 C (η_log + η_exp) + η_exp + η_lz`, with
/// `C = Σ_k Π_{j≤k} m_j` the tower's non-root nodes, `η_log` the error of a message channel
/// (log-range `R_log = log 1/ψ_min` on `W − 1` segments), `η_exp` and `η_lz` those of the exp
/// and normaliser channels (range `R_exp = max_k m_k log 1/ψ_min + log(S_max/π_min)`).
fn t11_bound(model: &Jghm, part: Part, width: usize) -> f64 {
    let levels = model.levels(part);
    let psi_min = levels.iter().flat_map(|l| l.transitions.iter().flat_map(|m| m.iter().copied())).fold(1.0, f64::min);
    let pi_min = model.prior().iter().copied().fold(1.0, f64::min);
    let s_max = levels.iter().map(|l| l.states()).chain([model.root_states()]).max().unwrap() as f64;
    let m_max = levels.iter().map(|l| l.children()).max().unwrap() as f64;
    let nodes: f64 = (1..=levels.len()).map(|k| levels[..k].iter().map(|l| l.children() as f64).product::<f64>()).sum();
    let r_log = -psi_min.ln();
    let r_exp = m_max * r_log + (s_max / pi_min).ln();
    let segments = (width - 1) as f64;
    let eta_log = log_chord_error(r_log / segments) / 2.0;
    let eta_exp = exp_chord_error(r_exp / segments) / 2.0;
    let eta_lz = log_chord_error(r_exp / segments) / 2.0;
    2.0 * nodes * (eta_log + eta_exp) + eta_exp + eta_lz
}

/// Two towers without a trunk whose levels have their own child counts (1-3) and alphabets
/// (2-4), a non-uniform prior (`common::build` draws it), at most `max_leaves` leaves a tower.
fn arb_varied_towers(max_leaves: usize) -> impl Strategy<Value = Jghm> {
    let tower = prop::collection::vec((1usize..=3, 2usize..=4), 1..=4)
        .prop_filter("few leaves", move |t| t.iter().map(|l| l.0).product::<usize>() <= max_leaves);
    let regime = prop_oneof![Just(Regime::NearUniform), Just(Regime::Generic)];
    (2usize..=4, tower.clone(), tower, regime, any::<u64>()).prop_map(|(root_states, image, text, regime, seed)| {
        common::build(&Shape { root_states, shared: vec![], image, text }, regime, seed)
    })
}

/// Least-squares slope of `log y` on `log x`.
fn log_log_slope(points: &[(f64, f64)]) -> f64 {
    let logs: Vec<(f64, f64)> = points.iter().map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = logs.len() as f64;
    let (mx, my) = (logs.iter().map(|p| p.0).sum::<f64>() / n, logs.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = logs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = logs.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    sxy / sxx
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

    /// T11 with exact nonlinearities on towers whose child counts and alphabets change from
    /// level to level, under a non-uniform prior: BP to round-off on every input of both towers,
    /// `4L − 1` blocks.
    #[test]
    fn t11_exact_nonlinearity_reproduces_bp_on_varied_towers(model in arb_varied_towers(12)) {
        for part in [Part::Image, Part::Text] {
            let net = BpTransformer::new(&model, part, Nonlinearity::Exact).unwrap();
            prop_assert_eq!(net.layers(), 4 * model.levels(part).len() - 1);
            let xs = if side_size(&model, part) <= 4096.0 { all_inputs(&model, part) } else { inputs(&model, part, 200, 1) };
            let err = net.error_against_bp(&model, &xs);
            prop_assert!(err.max_abs_error < 1e-10, "{part}: max error {}", err.max_abs_error);
        }
    }

    /// T11's error bound holds for ReLU networks of widths 4 to 256 on varied towers with a
    /// non-uniform prior.
    #[test]
    fn t11_error_within_the_bound_on_varied_towers(model in arb_varied_towers(9), text in any::<bool>()) {
        let part = if text { Part::Text } else { Part::Image };
        let xs = inputs(&model, part, 60, 3);
        for width in [4, 16, 64, 256] {
            let net = BpTransformer::new(&model, part, Nonlinearity::Relu { width }).unwrap();
            let err = net.error_against_bp(&model, &xs).max_abs_error;
            let bound = t11_bound(&model, part, width);
            prop_assert!(err <= bound, "width {width}: error {err:.3e} above the bound {bound:.3e}");
        }
    }
}

/// The tower of the width sweep below: root 3 states with prior (0.6, 0.3, 0.1); level 1 has 2
/// children over 4 states, level 2 one child over 2 states, level 3 three children over a
/// vocabulary of 3 (6 leaves, 729 images, every one checked).
fn varied_model() -> Jghm {
    let shape =
        Shape { root_states: 3, shared: vec![], image: vec![(2, 4), (1, 2), (3, 3)], text: vec![(3, 2), (2, 3)] };
    let drawn = common::build(&shape, Regime::Generic, 21);
    let (image, text) = (drawn.levels(Part::Image).to_vec(), drawn.levels(Part::Text).to_vec());
    Jghm::new(vec![0.6, 0.3, 0.1], vec![], image, text).unwrap()
}

/// T11's rate: on a tower whose child counts and alphabets change from level to level, under a
/// non-uniform prior, the maximum error over all 729 images is below the proof's bound at every
/// width from 4 to 2048, and falls like `W^{-2}`: the log-log slope of the error (fitted over
/// widths 16-2048) lies in [−2.3, −1.7], that of the bound in [−2.05, −1.95]. Prints the table
/// (`-- --nocapture`).
#[test]
fn t11_error_rate_against_the_bound_on_a_varied_tower() {
    let model = varied_model();
    let xs = all_inputs(&model, Part::Image);
    assert_eq!(xs.len(), 729);
    println!("{:>6} {:>12} {:>12} {:>8}", "width", "max error", "bound", "ratio");
    let mut errors = vec![];
    let mut bounds = vec![];
    for width in [4usize, 8, 16, 32, 64, 128, 256, 512, 1024, 2048] {
        let net = BpTransformer::new(&model, Part::Image, Nonlinearity::Relu { width }).unwrap();
        let err = net.error_against_bp(&model, &xs).max_abs_error;
        let bound = t11_bound(&model, Part::Image, width);
        println!("{width:>6} {err:>12.4e} {bound:>12.4e} {:>8.4}", err / bound);
        assert!(err <= bound, "width {width}: error {err:.4e} above the bound {bound:.4e}");
        if width >= 16 {
            errors.push((width as f64, err));
            bounds.push((width as f64, bound));
        }
    }
    let (slope, bound_slope) = (log_log_slope(&errors), log_log_slope(&bounds));
    println!("log-log slope over widths 16-2048: error {slope:.4}, bound {bound_slope:.4}");
    assert!((-2.3..=-1.7).contains(&slope), "error slope {slope}");
    assert!((-2.05..=-1.95).contains(&bound_slope), "bound slope {bound_slope}");
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
        for (a, b) in fast.log_root_posterior(x).unwrap().iter().zip(slow.log_root_posterior(x).unwrap()) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
    }
}
