//! Numerical extremes: towers of depth 20, alphabets of 64 states,
//! near-deterministic transitions with entries down to 1e-300 and exact zeros, peaked priors.
//!
//! Where the probability is positive, log-likelihoods are finite, root posteriors sum to 1
//! within 1e-12, the PMI is finite; where it is zero, BP says `-inf` (Workspace) or NaN rows
//! (fast path) and never a wrong finite number. Both `bp::Workspace` and the batched fast path
//! (`bp::root_posteriors`, `FastBp::pmi_into`) are checked, against each other and, on chains,
//! against an independent log-domain matrix product. Monte Carlo estimators stay finite.

use jghm::bp::{self, fast::FastBp, PmiParts, Tokens, Workspace};
use jghm::contrastive::{self, Batch};
use jghm::info;
use jghm::model::{Jghm, Level, Part};
use jghm::rng;
use jghm::sample::sample_pairs;
use jghm::score::Pmi;
use jghm::sufficiency::{self, Statistic};
use nalgebra::DMatrix;
use rand::Rng as _;

/// How the rows of a transition matrix are drawn.
#[derive(Clone, Copy, Debug)]
enum Rows {
    /// Softmax of `N(0, 3²)`-ish logits: generic but uneven.
    Generic,
    /// One entry ≈ 1, the others a mix of 1e-300, 1e-200, 1e-30 and exact zeros; the last
    /// symbol is never emitted (an exactly impossible token).
    NearDeterministic,
}

fn matrix(r: &mut rng::Rng, rows: usize, cols: usize, kind: Rows) -> DMatrix<f64> {
    let mut m = DMatrix::zeros(rows, cols);
    for a in 0..rows {
        match kind {
            Rows::Generic => {
                let w: Vec<f64> = (0..cols).map(|_| (6.0 * r.random::<f64>() - 3.0).exp()).collect();
                let total: f64 = w.iter().sum();
                for (b, v) in w.iter().enumerate() {
                    m[(a, b)] = v / total;
                }
            }
            Rows::NearDeterministic => {
                let main = r.random_range(0..cols - 1);
                let mut rest = 0.0;
                for b in (0..cols - 1).filter(|&b| b != main) {
                    let v = [0.0, 1e-300, 1e-200, 1e-30, 0.0][r.random_range(0..5)];
                    m[(a, b)] = v;
                    rest += v;
                }
                m[(a, main)] = 1.0 - rest;
            }
        }
    }
    m
}

/// A tower of `children[d]` children per node at level `d`, `states` symbols everywhere.
fn tower(r: &mut rng::Rng, root_states: usize, children: &[usize], states: usize, kind: Rows) -> Vec<Level> {
    let mut rows = root_states;
    children
        .iter()
        .map(|&c| {
            let level = Level { transitions: (0..c).map(|_| matrix(r, rows, states, kind)).collect() };
            rows = states;
            level
        })
        .collect()
}

fn peaked_prior(states: usize) -> Vec<f64> {
    // One state takes almost everything; one has 1e-300; one (if any) is exactly impossible.
    let mut p = vec![1e-12; states];
    p[states - 1] = 1e-300;
    if states > 2 {
        p[states - 2] = 0.0;
    }
    let rest: f64 = p[1..].iter().sum();
    p[0] = 1.0 - rest;
    p
}

fn model(prior: Vec<f64>, image: Vec<Level>, text: Vec<Level>) -> Jghm {
    Jghm::new(prior, vec![], image, text).expect("valid extreme model")
}

/// The extreme models: (name, model, whether both towers are chains of single children).
fn extreme_models() -> Vec<(&'static str, Jghm, bool)> {
    let mut r = rng::stream(9, 0);
    let depth20_branch: Vec<usize> = (0..20).map(|d| if d % 5 == 0 { 2 } else { 1 }).collect();
    let chain20 = vec![1; 20];
    let mut out = vec![];
    for kind in [Rows::Generic, Rows::NearDeterministic] {
        let s = 3;
        let prior = peaked_prior(s);
        let m = model(prior, tower(&mut r, s, &chain20, s, kind), tower(&mut r, s, &chain20, 4, kind));
        out.push(("depth-20 chain", m, true));
        let prior = peaked_prior(s);
        let m = model(prior, tower(&mut r, s, &depth20_branch, s, kind), tower(&mut r, s, &chain20, s, kind));
        out.push(("depth-20 tower, 16 leaves", m, false));
        let s = 64;
        let prior = peaked_prior(s);
        let m = model(prior, tower(&mut r, s, &[2, 2, 2], s, kind), tower(&mut r, s, &[2, 1, 2], s, kind));
        out.push(("64 states", m, false));
        let m = model(vec![1.0 / 64.0; 64], tower(&mut r, s, &[1; 20], s, kind), tower(&mut r, s, &[4], s, kind));
        out.push(("64 states, depth-20 chain", m, false));
    }
    out
}

/// Observations to test: sampled (probability > 0) and uniform random tokens (often of
/// probability zero or astronomically small).
fn observations(model: &Jghm, part: Part, seed: u64) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let pairs = sample_pairs(model, 40, seed, false);
    let sampled = pairs.into_iter().map(|p| if part == Part::Image { p.image } else { p.text }).collect();
    let mut r = rng::stream(seed, 1);
    let random =
        (0..40).map(|_| (0..model.len_of(part)).map(|_| r.random_range(0..model.vocab_of(part))).collect()).collect();
    (sampled, random)
}

fn side(part: Part, x: &[usize]) -> Tokens<'_> {
    if part == Part::Image {
        Tokens { image: Some(x), text: None }
    } else {
        Tokens { image: None, text: Some(x) }
    }
}

/// `log p(x)` of a chain tower (one child per level) by a log-domain matrix product, written
/// independently of `bp`: `log α_d(b) = log Σ_a exp(log α_{d-1}(a) + log Ψ_d(a, b))`.
fn chain_log_likelihood(model: &Jghm, part: Part, token: usize) -> f64 {
    let mut alpha: Vec<f64> = model.prior().iter().map(|p| p.ln()).collect();
    for level in model.levels(part) {
        let m = &level.transitions[0];
        alpha = (0..m.ncols())
            .map(|b| {
                let terms: Vec<f64> = (0..m.nrows()).map(|a| alpha[a] + m[(a, b)].ln()).collect();
                let top = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if top == f64::NEG_INFINITY {
                    return top;
                }
                top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln()
            })
            .collect();
    }
    alpha[token]
}

fn assert_posterior(name: &str, row: &[f64]) {
    let total: f64 = row.iter().sum();
    assert!((total - 1.0).abs() <= 1e-12, "{name}: posterior sums to {total}");
    assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0), "{name}: posterior {row:?}");
}

#[test]
fn log_likelihoods_and_posteriors_are_sound_at_the_extremes() {
    let mut positive_tiny = 0;
    let mut zeros = 0;
    for (name, model, chain) in extreme_models() {
        let mut ws = Workspace::new(&model);
        for part in [Part::Image, Part::Text] {
            let (sampled, random) = observations(&model, part, 3);
            let all: Vec<Vec<usize>> = sampled.iter().chain(&random).cloned().collect();
            let fast = bp::root_posteriors(&model, part, &all);
            let mut fast_ll = vec![0.0; all.len()];
            let mut fast_post = vec![0.0; all.len() * model.root_states()];
            FastBp::new(&model).root_posteriors_into(part, &all, &mut fast_post, &mut fast_ll);
            for (i, x) in all.iter().enumerate() {
                let what = format!("{name}, {part} #{i}");
                let ll = ws.upward(&model, &side(part, x));
                if i < sampled.len() {
                    assert!(ll.is_finite(), "{what}: sampled observation has log p = {ll}");
                }
                assert!(ll.is_finite() || ll == f64::NEG_INFINITY, "{what}: log p = {ll}");
                if chain {
                    // The independent chain product: same zero pattern, same finite value.
                    let expected = chain_log_likelihood(&model, part, x[0]);
                    if expected == f64::NEG_INFINITY {
                        assert_eq!(ll, expected, "{what}");
                    } else {
                        assert!((ll - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{what}: {ll} vs {expected}");
                    }
                }
                if ll == f64::NEG_INFINITY {
                    zeros += 1;
                    assert!(fast[i].iter().all(|p| p.is_nan()), "{what}: fast row of an impossible observation");
                    assert_eq!(fast_ll[i], f64::NEG_INFINITY, "{what}");
                    continue;
                }
                if ll < -700.0 {
                    positive_tiny += 1; // p(x) < 1e-304: invisible in the probability domain.
                }
                let mut post = vec![0.0; model.root_states()];
                ws.root_posterior_into(&model, &mut post);
                assert_posterior(&what, &post);
                assert_posterior(&format!("{what} (fast)"), &fast[i]);
                assert!((fast_ll[i] - ll).abs() <= 1e-9 * ll.abs().max(1.0), "{what}: fast {} vs {ll}", fast_ll[i]);
                for (p, q) in post.iter().zip(&fast[i]) {
                    assert!((p - q).abs() <= 1e-9, "{what}: fast posterior {q} vs {p}");
                }
            }
        }
    }
    // The fixtures do reach the regimes they are meant to test.
    assert!(positive_tiny > 0, "no observation with 0 < p < 1e-304");
    assert!(zeros > 0, "no observation of probability zero");
}

#[test]
fn pmi_is_finite_wherever_the_pair_is_possible() {
    for (name, model, _) in extreme_models() {
        let pairs = sample_pairs(&model, 40, 5, false);
        let (xs, _) = observations(&model, Part::Image, 6);
        let (_, ys) = observations(&model, Part::Text, 7);
        // Sampled pairs (possible) and sampled images with random texts (often impossible).
        let images: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).chain(xs.clone()).collect();
        let texts: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).chain(ys).collect();
        let mut fast = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; images.len()];
        FastBp::new(&model).pmi_into(&images, &texts, &mut fast);
        for (i, (x, y)) in images.iter().zip(&texts).enumerate() {
            let what = format!("{name}, pair #{i}");
            match bp::pmi(&model, x, y) {
                Ok(p) => {
                    for v in [p.pmi, p.log_pxy, p.log_px, p.log_py] {
                        assert!(v.is_finite(), "{what}: {p:?}");
                    }
                    let f = fast[i];
                    assert!((f.pmi - p.pmi).abs() <= 1e-9 * p.log_pxy.abs().max(1.0), "{what}: fast {f:?} vs {p:?}");
                }
                Err(_) => {
                    assert!(i >= pairs.len(), "{what}: a sampled pair was declared impossible");
                    assert_eq!(bp::log_pxy(&model, x, y).unwrap(), f64::NEG_INFINITY, "{what}");
                    assert!(fast[i].pmi.is_nan(), "{what}: fast PMI of an impossible pair {:?}", fast[i]);
                }
            }
        }
    }
}

#[test]
fn next_token_and_marginals_sum_to_one_at_the_extremes() {
    for (name, model, _) in extreme_models() {
        for pair in sample_pairs(&model, 5, 11, false) {
            let dist = bp::next_token_conditional(&model, Some(&pair.image), &pair.text[..model.text_len() - 1])
                .unwrap_or_else(|e| panic!("{name}: a sampled prefix is possible: {e}"));
            assert_posterior(&format!("{name}: next token"), &dist);
            let marg = bp::marginals(&model, &Tokens { image: Some(&pair.image), text: Some(&pair.text) }).unwrap();
            for (u, m) in marg.iter().enumerate() {
                assert_posterior(&format!("{name}: marginal of node {u}"), m);
            }
        }
    }
}

#[test]
fn monte_carlo_estimators_stay_finite_at_the_extremes() {
    for (name, model, _) in extreme_models() {
        let info = info::monte_carlo(&model, 200, 1).unwrap();
        for e in [
            info.mutual_information,
            info.entropy_image,
            info.entropy_text,
            info.entropy_root,
            info.information_root_image,
            info.information_root_text,
        ] {
            assert!(e.value.is_finite() && e.stderr.is_finite(), "{name}: {e:?}");
        }
        assert!(info.mutual_information.value > -1e-9 - 4.0 * info.mutual_information.stderr, "{name}");
        let pmi = Pmi { model: &model };
        for batch in [Batch::Finite(8), Batch::Infinite] {
            let mc = contrastive::monte_carlo(&model, &[&pmi], batch, 64, 2).unwrap();
            for t in &mc.terms[0] {
                assert!(t[0].is_finite() && t[1].is_finite(), "{name} {batch:?}: loss term {t:?}");
            }
        }
        // The separator statistic needs one side small enough to enumerate.
        if model.image_len() <= 4 || model.text_len() <= 4 {
            let side = if model.image_len() <= model.text_len() { Part::Image } else { Part::Text };
            if let Ok(s) = sufficiency::monte_carlo(&model, side, Statistic::MapRoot, 100, 3) {
                assert!(s.sufficiency.value.is_finite() && s.sufficiency.stderr.is_finite(), "{name}: {s:?}");
            }
        }
    }
}

/// The batched probability-domain marginals (`bp::marginals::BatchMarginals`) against the
/// log-domain oracle at the extremes: every node's marginal to 1e-12, `log p` to 1e-12
/// relative, NaN rows exactly where the evidence is impossible (the oracle takes over below the
/// probability domain's floor).
#[test]
fn batched_marginals_equal_the_oracle_at_the_extremes() {
    use jghm::bp::marginals::BatchMarginals;
    for (name, model, _) in extreme_models() {
        let n = model.tree().total_states;
        for part in [Part::Image, Part::Text] {
            let (sampled, random) = observations(&model, part, 13);
            let all: Vec<Vec<usize>> = sampled.into_iter().chain(random).collect();
            let tokens: Vec<Tokens> = all.iter().map(|x| side(part, x)).collect();
            let (mut out, mut ll) = (vec![0.0; all.len() * n], vec![0.0; all.len()]);
            BatchMarginals::new(&model).marginals_into(&tokens, &mut out, &mut ll);
            for (i, t) in tokens.iter().enumerate() {
                let row = &out[i * n..(i + 1) * n];
                match bp::marginals(&model, t) {
                    // The log-domain oracle's downward pass itself underflows on a few random
                    // (astronomically unlikely) texts of the 64-state depth-20 chain: its
                    // `ln Σ_a exp(c_a - c) Ψ(a, b)` reaches `ln 0` for every `b`, giving NaN.
                    // Those rows are the oracle's (the fast path hands them to it): not compared.
                    Ok(m) if m.iter().flatten().any(|v| !v.is_finite()) => {}
                    Ok(m) => {
                        for (a, b) in row.iter().zip(m.concat()) {
                            assert!((a - b).abs() <= 1e-12, "{name}, {part} #{i}: {a} vs {b}");
                        }
                        let expected = bp::log_likelihood(&model, t).unwrap();
                        assert!(
                            (ll[i] - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                            "{name}: {} vs {expected}",
                            ll[i]
                        );
                    }
                    Err(_) => assert!(row.iter().all(|v| v.is_nan()), "{name}, {part} #{i}: impossible but {row:?}"),
                }
            }
        }
    }
}
