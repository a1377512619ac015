//! T1 (BP is exact): on every tree, BP's log-likelihood, root posterior and node marginals
//! equal brute-force enumeration over all hidden states; so do the PMI and the next-token
//! conditionals built from them. See proofs/T1-belief-propagation.md.

mod common;

use common::{arb_model, random_tokens};
use jghm::bp::{self, brute_force, LeafView, Observation, Tokens};
use jghm::evidence::{Evidence, Leaf};
use jghm::model::{Jghm, Part};
use jghm::rng;
use jghm::tolerance::EXACT;
use proptest::prelude::*;
use rand::Rng as _;

/// Evidence of a random kind at every leaf: observed, missing or soft.
fn mixed_evidence(model: &Jghm, seed: u64) -> Evidence {
    let mut r = rng::stream(seed, 3);
    let mut ev = Evidence::none(model);
    for part in [Part::Image, Part::Text] {
        let vocab = model.vocab_of(part);
        for leaf in ev.of_mut(part).iter_mut() {
            *leaf = match r.random_range(0..3) {
                0 => Leaf::Observed(r.random_range(0..vocab)),
                1 => Leaf::Missing,
                _ => Leaf::Soft((0..vocab).map(|_| r.random::<f64>() + 0.01).collect()),
            };
        }
    }
    ev
}

fn assert_close(a: f64, b: f64, what: &str) -> Result<(), TestCaseError> {
    prop_assert!((a - b).abs() <= EXACT, "{what}: BP {a} vs brute force {b} (diff {:e})", (a - b).abs());
    Ok(())
}

/// Two distributions agree entry by entry, and have the same length (a bare `zip` would pass
/// an empty answer: cargo-mutants found `next_token_conditional -> Ok(vec![])` alive).
fn assert_all_close(got: &[f64], want: &[f64], what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: BP has {} entries, brute force {}", what, got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert_close(*a, *b, &format!("{what}[{i}]"))?;
    }
    Ok(())
}

/// Enumeration must be feasible for the oracle; otherwise the case is skipped.
fn oracle(model: &Jghm, obs: &impl Observation) -> Result<brute_force::Enumerated, TestCaseError> {
    // Keep the suite fast: the oracle's cost is its number of configurations.
    if brute_force::configurations(model, obs) > 2e5 {
        return Err(TestCaseError::reject("too large to enumerate quickly"));
    }
    match brute_force::enumerate(model, obs) {
        Some(e) => Ok(e),
        None => Err(TestCaseError::reject("too large to enumerate")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_global_rejects: 4096, ..ProptestConfig::default() })]

    /// T1: log p(evidence), the root posterior and every node's marginal, for evidence mixing
    /// observed, missing and soft leaves on both towers.
    #[test]
    fn t1_bp_equals_brute_force_on_mixed_evidence(model in arb_model(), seed in any::<u64>()) {
        let ev = mixed_evidence(&model, seed);
        let exact = oracle(&model, &ev)?;
        let marginals = bp::marginals(&model, &ev).expect("soft weights are positive, so p(evidence) > 0");
        assert_close(bp::log_likelihood(&model, &ev).unwrap(), exact.log_likelihood, "log p(evidence)")?;
        let post = bp::root_posterior(&model, &ev).unwrap();
        assert_all_close(&post.root, &exact.marginals[0], "p(z | evidence)")?;
        prop_assert_eq!(marginals.len(), exact.marginals.len());
        for (u, (m, q)) in marginals.iter().zip(&exact.marginals).enumerate() {
            assert_all_close(m, q, &format!("marginal of node {u}"))?;
        }
    }

    /// T1 for the quantities BP gives exactly: log p(x), log p(y), log p(x, y) and the PMI.
    #[test]
    fn t1_pmi_equals_brute_force(model in arb_model(), sx in any::<u64>(), sy in any::<u64>()) {
        let x = random_tokens(&model, Part::Image, sx);
        let y = random_tokens(&model, Part::Text, sy);
        let both = Tokens { image: Some(&x), text: Some(&y) };
        let e_xy = oracle(&model, &both)?;
        let e_x = oracle(&model, &Tokens { image: Some(&x), text: None })?;
        let e_y = oracle(&model, &Tokens { image: None, text: Some(&y) })?;
        let p = bp::pmi(&model, &x, &y).unwrap();
        assert_close(p.log_pxy, e_xy.log_likelihood, "log p(x, y)")?;
        assert_close(p.log_px, e_x.log_likelihood, "log p(x)")?;
        assert_close(p.log_py, e_y.log_likelihood, "log p(y)")?;
        assert_close(p.pmi, e_xy.log_likelihood - e_x.log_likelihood - e_y.log_likelihood, "PMI")?;
        let cond = bp::log_p_y_given_x(&model, &x, &y).unwrap();
        assert_close(cond, e_xy.log_likelihood - e_x.log_likelihood, "log p(y | x)")?;
    }

    /// T1 applied to next-token conditionals: p(y_i | y_<i, x) is the marginal of text leaf i.
    #[test]
    fn t1_next_token_equals_brute_force(model in arb_model(), sx in any::<u64>(), sy in any::<u64>(), cut in 0usize..8) {
        let x = random_tokens(&model, Part::Image, sx);
        let y = random_tokens(&model, Part::Text, sy);
        let i = cut % model.text_len();
        let mut ev = Evidence::image(&model, &x).unwrap();
        for (leaf, &t) in ev.text.iter_mut().zip(&y[..i]) {
            *leaf = Leaf::Observed(t);
        }
        let exact = oracle(&model, &ev)?;
        let dist = bp::next_token_conditional(&model, Some(&x), &y[..i]).unwrap();
        let leaf = model.tree().text_leaves[i];
        assert_all_close(&dist, &exact.marginals[leaf], &format!("p(y_{i} | y_<{i}, x)"))?;
    }

    /// T1 on the batched path: the parallel batch of root posteriors equals one-at-a-time BP.
    #[test]
    fn t1_batched_root_posteriors_equal_single(model in arb_model(), seed in any::<u64>()) {
        let xs: Vec<Vec<usize>> = (0..5).map(|i| random_tokens(&model, Part::Image, seed ^ i)).collect();
        let batch = bp::root_posteriors(&model, Part::Image, &xs);
        prop_assert_eq!(batch.len(), xs.len());
        for (x, row) in xs.iter().zip(&batch) {
            let single = bp::root_posterior(&model, &Tokens { image: Some(x), text: None }).unwrap();
            assert_all_close(row, &single.root, "batched root posterior")?;
        }
    }
}

/// Impossible evidence is reported, never turned into NaN: a text leaf whose token has
/// probability zero under every parent state.
#[test]
fn t1_zero_probability_evidence_is_an_error() {
    let json = r#"{"prior":[0.5,0.5],
        "image":[{"transitions":[[[0.5,0.5],[0.5,0.5]]]}],
        "text":[{"transitions":[[[1.0,0.0],[1.0,0.0]]]}]}"#;
    let model = Jghm::from_json(json).unwrap();
    assert_eq!(bp::log_py(&model, &[1]).unwrap(), f64::NEG_INFINITY);
    assert!(matches!(bp::pmi(&model, &[0], &[1]), Err(bp::BpError::Impossible { .. })));
    let ev = Evidence::text(&model, &[1]).unwrap();
    assert!(bp::root_posterior(&model, &ev).is_err());
    assert!(bp::marginals(&model, &ev).is_err());
    // The brute-force oracle agrees that the evidence is impossible.
    assert_eq!(brute_force::enumerate(&model, &ev).unwrap().log_likelihood, f64::NEG_INFINITY);
}

/// A hand-computable model checks the oracle itself: one root with prior (0.25, 0.75), one image
/// leaf and one text leaf with Ψ_X = [[0.9, 0.1], [0.2, 0.8]], Ψ_Y = [[0.6, 0.4], [0.3, 0.7]].
/// p(x=0, y=1) = 0.25·0.9·0.4 + 0.75·0.2·0.7 = 0.09 + 0.105 = 0.195 (by hand).
#[test]
fn t1_oracle_matches_hand_computation() {
    let json = r#"{"prior":[0.25,0.75],
        "image":[{"transitions":[[[0.9,0.1],[0.2,0.8]]]}],
        "text":[{"transitions":[[[0.6,0.4],[0.3,0.7]]]}]}"#;
    let model = Jghm::from_json(json).unwrap();
    let obs = Tokens { image: Some(&[0]), text: Some(&[1]) };
    let e = brute_force::enumerate(&model, &obs).unwrap();
    assert!((e.log_likelihood - 0.195f64.ln()).abs() < 1e-14);
    assert!((e.marginals[0][0] - 0.09 / 0.195).abs() < 1e-14);
    assert!((bp::log_likelihood(&model, &obs).unwrap() - 0.195f64.ln()).abs() < 1e-14);
    // The leaf views the oracle sees are the tokens given.
    assert!(matches!(obs.leaf(Part::Text, 0), LeafView::Observed(1)));
}

/// A depth-16 tower (65,536 leaves) with near-deterministic transitions: the log-likelihood is
/// finite (about -10^4, far below f64's smallest probability) and the posterior is a
/// probability vector, because BP works in the log domain.
#[test]
fn t1_depth_16_tower_is_finite() {
    let spec = jghm::RandomSpec {
        depth: 16,
        children: 2,
        text_depth: 2,
        flip: 0.01,
        ..jghm::RandomSpec::symmetric(4, 2, 16, 5)
    };
    let model = spec.build().unwrap();
    let pair = &jghm::sample::sample_pairs(&model, 1, 11, false)[0];
    let post = bp::root_posterior(&model, &Tokens { image: Some(&pair.image), text: None }).unwrap();
    assert!(post.log_likelihood.is_finite() && post.log_likelihood < -1000.0, "log p(x) = {}", post.log_likelihood);
    assert!(post.root.iter().all(|p| p.is_finite() && *p >= 0.0));
    assert!((post.root.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let p = bp::pmi(&model, &pair.image, &pair.text).unwrap();
    assert!(p.pmi.is_finite());
}
