//! T1 for the fast path: the batched probability-domain BP (`bp::fast::FastBp`) returns the
//! same root posteriors, log-likelihoods and PMIs as the simple log-domain `bp::Workspace`
//! (itself checked against brute force in t1_belief_propagation.rs), to `tolerance::FAST`, on
//! random models with and without a trunk, batches of every size around the block width, and
//! whatever the number of threads.

mod common;

use common::{arb_model, build, random_tokens, Regime, Shape};
use jghm::bp::fast::{FastBp, LANES};
use jghm::bp::{self, PmiParts, Tokens, Workspace};
use jghm::model::{Jghm, Level, Part};
use jghm::tolerance::FAST;
use nalgebra::DMatrix;
use proptest::prelude::*;

/// `|a - b| ≤ FAST · max(1, |b|)`, with equal infinities accepted.
fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= FAST * b.abs().max(1.0)
}

fn batch(model: &Jghm, part: Part, n: usize, seed: u64) -> Vec<Vec<usize>> {
    (0..n as u64).map(|i| random_tokens(model, part, seed.wrapping_mul(1000).wrapping_add(i))).collect()
}

/// The reference answer for one observation: `(log p(x), p(z | x))`, NaN row when impossible.
fn reference_posterior(model: &Jghm, part: Part, obs: &[usize]) -> (f64, Vec<f64>) {
    let tokens = if part == Part::Image {
        Tokens { image: Some(obs), text: None }
    } else {
        Tokens { image: None, text: Some(obs) }
    };
    let mut ws = Workspace::new(model);
    let ll = ws.upward(model, &tokens);
    let mut row = vec![f64::NAN; model.root_states()];
    if ll > f64::NEG_INFINITY {
        ws.root_posterior_into(model, &mut row);
    }
    (ll, row)
}

/// Both compilations of a model: with leaf tables where they fit (`new`), and without any
/// (`for_batch(.., 0)`: every message computed node by node).
fn compilations(model: &Jghm) -> [FastBp<'_>; 2] {
    [FastBp::new(model), FastBp::for_batch(model, 0)]
}

fn fast_posteriors(fast: &FastBp, model: &Jghm, part: Part, obs: &[Vec<usize>]) -> (Vec<f64>, Vec<f64>) {
    let mut post = vec![0.0; obs.len() * model.root_states()];
    let mut ll = vec![0.0; obs.len()];
    fast.root_posteriors_into(part, obs, &mut post, &mut ll);
    (post, ll)
}

fn check_posteriors(model: &Jghm, part: Part, obs: &[Vec<usize>]) -> Result<(), TestCaseError> {
    for fast in compilations(model) {
        check_posteriors_with(&fast, model, part, obs)?;
    }
    Ok(())
}

fn check_posteriors_with(fast: &FastBp, model: &Jghm, part: Part, obs: &[Vec<usize>]) -> Result<(), TestCaseError> {
    let s0 = model.root_states();
    let (post, ll) = fast_posteriors(fast, model, part, obs);
    for (i, x) in obs.iter().enumerate() {
        let (ref_ll, ref_row) = reference_posterior(model, part, x);
        prop_assert!(close(ll[i], ref_ll), "{part} {i}: log p = {} fast vs {ref_ll} reference", ll[i]);
        for (a, (f, r)) in post[i * s0..(i + 1) * s0].iter().zip(&ref_row).enumerate() {
            prop_assert!(
                (f.is_nan() && r.is_nan()) || (f - r).abs() <= FAST,
                "{part} {i}: p(z = {a} | x) = {f} fast vs {r} reference"
            );
        }
    }
    Ok(())
}

fn check_pmi(model: &Jghm, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Result<(), TestCaseError> {
    for fast in compilations(model) {
        check_pmi_with(&fast, model, xs, ys)?;
    }
    Ok(())
}

fn check_pmi_with(fast: &FastBp, model: &Jghm, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Result<(), TestCaseError> {
    let mut out = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; xs.len()];
    fast.pmi_into(xs, ys, &mut out);
    // `log_pxy_into` is the same pair pass reading only the joint channel.
    let mut log_pxy = vec![0.0; xs.len()];
    fast.log_pxy_into(xs, ys, &mut log_pxy);
    for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
        let f = out[i];
        match bp::pmi(model, x, y) {
            Ok(r) => {
                prop_assert!(close(f.log_pxy, r.log_pxy), "{i}: log p(x, y) {} vs {}", f.log_pxy, r.log_pxy);
                prop_assert!(close(log_pxy[i], r.log_pxy), "{i}: log_pxy_into {} vs {}", log_pxy[i], r.log_pxy);
                prop_assert!(close(f.log_px, r.log_px), "{i}: log p(x) {} vs {}", f.log_px, r.log_px);
                prop_assert!(close(f.log_py, r.log_py), "{i}: log p(y) {} vs {}", f.log_py, r.log_py);
                prop_assert!(close(f.pmi, r.pmi), "{i}: PMI {} fast vs {} reference", f.pmi, r.pmi);
            }
            Err(_) => prop_assert!(
                f.pmi.is_nan() && f.log_pxy == f64::NEG_INFINITY && log_pxy[i] == f64::NEG_INFINITY,
                "{i}: impossible pair: {f:?}, log_pxy_into {}",
                log_pxy[i]
            ),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// T1 (fast path): root posteriors and log-likelihoods of both modalities equal the
    /// reference, for batch sizes below, at and above one block of lanes.
    #[test]
    fn t1_fast_root_posteriors_equal_reference(model in arb_model(), n in 1usize..=2 * LANES + 3, seed in any::<u64>()) {
        for part in [Part::Image, Part::Text] {
            check_posteriors(&model, part, &batch(&model, part, n, seed))?;
        }
    }

    /// T1 (fast path): log p(x, y), log p(x), log p(y) and the PMI equal the reference.
    #[test]
    fn t1_fast_pmi_equals_reference(model in arb_model(), n in 1usize..=LANES + 3, seed in any::<u64>()) {
        let xs = batch(&model, Part::Image, n, seed);
        let ys = batch(&model, Part::Text, n, seed ^ 0x5555);
        check_pmi(&model, &xs, &ys)?;
    }
}

/// Models of realistic size (S = 10, m = 3, depth 4: 81 tokens, so likelihoods ~ 1e-80 and
/// the rescaling matters), with and without a trunk, on sampled pairs; plus a tower whose leaf
/// table would be too large (m = 6: 10^6 token combinations), which takes the node-by-node
/// path, and a deeper trunk.
#[test]
fn t1_fast_equals_reference_on_standard_models() {
    for (states, children, depth, shared_depth) in [(10, 3, 4, 0), (10, 3, 4, 1), (10, 6, 2, 0), (4, 2, 4, 2)] {
        let mut spec = jghm::RandomSpec::symmetric(states, children, depth, 5);
        spec.shared_depth = shared_depth;
        let model = spec.build().unwrap();
        let pairs = jghm::sample::sample_pairs(&model, 300, 11, false);
        let xs: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).collect();
        let ys: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).collect();
        check_posteriors(&model, Part::Image, &xs).unwrap();
        check_posteriors(&model, Part::Text, &ys).unwrap();
        check_pmi(&model, &xs, &ys).unwrap();
    }
}

/// Near-deterministic transitions with deep towers and a trunk: the regime where rescaling
/// (and, for impossible-looking products, the fallback) is exercised hardest.
#[test]
fn t1_fast_equals_reference_near_deterministic() {
    let shape = Shape { root_states: 3, shared: vec![(2, 3)], image: vec![(2, 3); 4], text: vec![(2, 2); 3] };
    for seed in 0..20 {
        let model = build(&shape, Regime::NearDeterministic, seed);
        let xs = batch(&model, Part::Image, 40, seed);
        let ys = batch(&model, Part::Text, 40, seed + 1);
        check_posteriors(&model, Part::Image, &xs).unwrap();
        check_posteriors(&model, Part::Text, &ys).unwrap();
        check_pmi(&model, &xs, &ys).unwrap();
    }
}

/// Root of 2 states (prior 0.4, 0.6), two binary image leaves that emit token 1 with
/// probability `token_one` from either state (the row `[1, token_one]`: within the validation's
/// tolerance for `token_one ≤ 1e-300`, or exactly 0), two text leaves of a generic matrix.
fn two_leaf_model(token_one: f64) -> Jghm {
    let psi_image = DMatrix::from_row_slice(2, 2, &[1.0, token_one, 1.0, token_one]);
    let psi_text = DMatrix::from_row_slice(2, 2, &[0.6, 0.4, 0.3, 0.7]);
    Jghm::new(
        vec![0.4, 0.6],
        vec![],
        vec![Level { transitions: vec![psi_image.clone(), psi_image] }],
        vec![Level { transitions: vec![psi_text.clone(), psi_text] }],
    )
    .unwrap()
}

/// Impossible observations (a token no state can emit) give a NaN posterior row, `-inf`
/// log-likelihood and a NaN PMI, like the reference, without disturbing their block.
#[test]
fn t1_fast_impossible_observations_match_reference() {
    // Token 1 of the image has probability 0 from every state.
    let model = two_leaf_model(0.0);
    let xs: Vec<Vec<usize>> = (0..LANES + 5).map(|i| if i % 3 == 0 { vec![0, 1] } else { vec![0, 0] }).collect();
    let ys: Vec<Vec<usize>> = (0..LANES + 5).map(|i| vec![i % 2, 1]).collect();
    let (post, ll) = fast_posteriors(&FastBp::new(&model), &model, Part::Image, &xs);
    assert!(ll[0] == f64::NEG_INFINITY && post[0].is_nan() && post[1].is_nan());
    assert!(ll[1].is_finite() && (post[2] + post[3] - 1.0).abs() < FAST);
    check_posteriors(&model, Part::Image, &xs).unwrap();
    check_pmi(&model, &xs, &ys).unwrap();
}

/// Every pass of `fast`: posteriors of `xs` and of `ys`, PMI and `log p(x, y)` of the pairs.
fn run_every_pass(fast: &FastBp, model: &Jghm, xs: &[Vec<usize>], ys: &[Vec<usize>]) {
    fast_posteriors(fast, model, Part::Image, xs);
    fast_posteriors(fast, model, Part::Text, ys);
    let mut parts = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; xs.len()];
    fast.pmi_into(xs, ys, &mut parts);
    fast.log_pxy_into(xs, ys, &mut vec![0.0; xs.len()]);
}

/// T1 (fast path): the reference takes over only outside the probability domain's safe range.
/// On the standard models (with and without a trunk, with leaf tables and without, and one of
/// `3^7 = 2187` tokens a side, whose likelihoods near `4^-2187` underflow unless every node is
/// rescaled) no observation or pair falls back to it in any pass; with impossible image observations,
/// exactly those fall back, once per pass that reads them (the image posteriors, the PMI,
/// `log p(x, y)`). A fast path that fell back everywhere would still pass every accuracy test.
#[test]
fn t1_fast_path_falls_back_to_the_reference_only_outside_the_safe_range() {
    for (states, children, depth, shared_depth) in
        [(10, 3, 4, 0), (10, 3, 4, 1), (10, 6, 2, 0), (4, 2, 4, 2), (4, 3, 7, 0)]
    {
        let mut spec = jghm::RandomSpec::symmetric(states, children, depth, 5);
        spec.shared_depth = shared_depth;
        let model = spec.build().unwrap();
        let pairs = jghm::sample::sample_pairs(&model, 100, 11, false);
        let xs: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).collect();
        let ys: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).collect();
        for fast in compilations(&model) {
            run_every_pass(&fast, &model, &xs, &ys);
            assert_eq!(fast.reference_fallbacks(), 0, "S = {states}, m = {children}, trunk depth {shared_depth}");
        }
    }
    let model = two_leaf_model(0.0);
    // Token 1 of the image is impossible: every third image.
    let xs: Vec<Vec<usize>> = (0..LANES + 5).map(|i| if i % 3 == 0 { vec![0, 1] } else { vec![0, 0] }).collect();
    let ys: Vec<Vec<usize>> = (0..LANES + 5).map(|i| vec![i % 2, 1]).collect();
    let impossible = xs.iter().filter(|x| x[1] == 1).count();
    assert_eq!(impossible, 13);
    for fast in compilations(&model) {
        run_every_pass(&fast, &model, &xs, &ys);
        assert_eq!(fast.reference_fallbacks(), 3 * impossible);
        assert_eq!(fast.clone().reference_fallbacks(), 3 * impossible, "a clone keeps the count");
    }
    // Possible but below the floor: token 1 has probability 1e-300 < 2^-960 from both states,
    // so the root's vector for an image with a 1 has its largest value there (the root sum,
    // after rescaling, is fine): exactly those images fall back, and their answers are right.
    let model = two_leaf_model(1e-300);
    for fast in compilations(&model) {
        let (post, ll) = fast_posteriors(&fast, &model, Part::Image, &xs);
        assert_eq!(fast.reference_fallbacks(), impossible, "the images with a 1 fall back");
        assert!((ll[0] - 1e-300f64.ln()).abs() < 1e-9 && ll[1] == 0.0, "{} {}", ll[0], ll[1]);
        // Every state emits a 1 alike: the posterior is the prior, for the fallen-back image too.
        assert!((post[0] - 0.4).abs() < 1e-12 && (post[1] - 0.6).abs() < 1e-12, "{:?}", &post[..2]);
    }
}

/// The result of an observation does not depend on its batch nor on the number of threads:
/// bit for bit.
#[test]
fn fast_results_do_not_depend_on_threads_or_batch() {
    let model = jghm::RandomSpec::symmetric(5, 2, 3, 9).build().unwrap();
    let xs = batch(&model, Part::Image, 1000, 3);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| fast_posteriors(&FastBp::new(&model), &model, Part::Image, &xs))
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one, two);
    let alone = fast_posteriors(&FastBp::new(&model), &model, Part::Image, &xs[777..778]);
    assert_eq!(alone.0[..], one.0[777 * 5..778 * 5]);
    assert_eq!(alone.1[0], one.1[777]);
}

/// The crate's batched API `bp::root_posteriors` is the fast path.
#[test]
fn root_posteriors_api_uses_fast_path() {
    let model = jghm::RandomSpec::symmetric(4, 2, 3, 2).build().unwrap();
    let ys = batch(&model, Part::Text, 100, 8);
    let rows = bp::root_posteriors(&model, Part::Text, &ys);
    let (post, _) = fast_posteriors(&FastBp::new(&model), &model, Part::Text, &ys);
    assert_eq!(rows.concat(), post);
}
