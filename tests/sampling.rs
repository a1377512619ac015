//! Sampling: ancestral samples follow p(x, y), conditional samples follow p(y | x), and the
//! output of a seed does not depend on the number of threads.
//!
//! The frequency checks are chi-square goodness-of-fit tests at level 1e-6 with a fixed seed:
//! deterministic (the same draws every run), and a correct sampler would fail one only with
//! probability 1e-6 over seeds, while a wrong one (a transposed matrix, a wrong leaf order, an
//! off-by-one in the categorical draw) fails by hundreds of standard deviations.

use jghm::bp::{self, Tokens};
use jghm::model::{Jghm, Part};
use jghm::rng;
use jghm::sample::{sample_pairs, Sampler};
use jghm::RandomSpec;
use statrs::distribution::{ChiSquared, ContinuousCDF};
use std::collections::HashMap;

const LEVEL: f64 = 1e-6;

/// All token sequences of a given length over `vocab` symbols.
fn all_sequences(len: usize, vocab: usize) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for _ in 0..len {
        out = out.into_iter().flat_map(|s| (0..vocab).map(move |t| [s.clone(), vec![t]].concat())).collect();
    }
    out
}

/// Pearson's statistic over cells with expected count ≥ 5 (the rest pooled into one cell),
/// and the critical value of its chi-square law at `LEVEL`.
fn chi_square(observed: &HashMap<Vec<usize>, usize>, expected: &[(Vec<usize>, f64)], n: usize) -> (f64, f64) {
    let (mut stat, mut cells) = (0.0, 0usize);
    let (mut pooled_o, mut pooled_e) = (0.0, 0.0);
    for (cell, p) in expected {
        let e = p * n as f64;
        let o = *observed.get(cell).unwrap_or(&0) as f64;
        if e >= 5.0 {
            stat += (o - e).powi(2) / e;
            cells += 1;
        } else {
            pooled_o += o;
            pooled_e += e;
        }
    }
    if pooled_e > 0.0 {
        stat += (pooled_o - pooled_e).powi(2) / pooled_e.max(1e-300);
        cells += 1;
    }
    let critical = ChiSquared::new((cells - 1) as f64).unwrap().inverse_cdf(1.0 - LEVEL);
    (stat, critical)
}

fn small_model() -> Jghm {
    let spec = RandomSpec { vocab: 3, text_depth: 1, text_children: 3, ..RandomSpec::symmetric(3, 2, 2, 17) };
    spec.build().unwrap()
}

#[test]
fn ancestral_samples_follow_the_joint() {
    let model = small_model();
    let n = 200_000;
    let mut counts: HashMap<Vec<usize>, usize> = HashMap::new();
    for pair in sample_pairs(&model, n, 42, false) {
        *counts.entry([pair.image, pair.text].concat()).or_default() += 1;
    }
    let mut expected = vec![];
    for x in all_sequences(model.image_len(), model.image_vocab()) {
        for y in all_sequences(model.text_len(), model.text_vocab()) {
            let p = bp::log_pxy(&model, &x, &y).unwrap().exp();
            expected.push(([x.clone(), y].concat(), p));
        }
    }
    let total: f64 = expected.iter().map(|(_, p)| p).sum();
    assert!((total - 1.0).abs() < 1e-12, "exact probabilities sum to {total}");
    let (stat, critical) = chi_square(&counts, &expected, n);
    assert!(stat < critical, "chi-square {stat} exceeds the {LEVEL} critical value {critical}");
}

#[test]
fn conditional_samples_follow_p_y_given_x() {
    let model = small_model();
    let x = vec![0, 1, 1, 2];
    let obs = Tokens { image: Some(&x), text: None };
    let mut r = rng::stream(9, 0);
    let n = 50_000;
    let mut counts: HashMap<Vec<usize>, usize> = HashMap::new();
    for _ in 0..n {
        let states = bp::sample_conditional(&model, &obs, &mut r).unwrap();
        // The observed leaves are reproduced exactly.
        assert!(model.tree().image_leaves.iter().zip(&x).all(|(&u, &t)| states[u] == t));
        let y: Vec<usize> = model.tree().text_leaves.iter().map(|&u| states[u]).collect();
        *counts.entry(y).or_default() += 1;
    }
    let expected: Vec<(Vec<usize>, f64)> = all_sequences(model.text_len(), model.text_vocab())
        .into_iter()
        .map(|y| {
            let p = bp::log_p_y_given_x(&model, &x, &y).unwrap().exp();
            (y, p)
        })
        .collect();
    let (stat, critical) = chi_square(&counts, &expected, n);
    assert!(stat < critical, "chi-square {stat} exceeds the {LEVEL} critical value {critical}");
}

#[test]
fn hidden_states_are_consistent_with_the_leaves() {
    let model = small_model();
    let sampler = Sampler::new(&model);
    let mut r = rng::stream(3, 0);
    let pair = sampler.pair(&mut r, true);
    let hidden = pair.hidden.unwrap();
    let leaves: Vec<usize> = model.tree().image_leaves.iter().map(|&u| hidden[u]).collect();
    assert_eq!(leaves, pair.image);
}

#[test]
fn samples_do_not_depend_on_thread_count() {
    let model = small_model();
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| sample_pairs(&model, 5000, 123, true))
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
    assert_ne!(one, pool_free_other_seed(&model), "a different seed gives different samples");
}

fn pool_free_other_seed(model: &Jghm) -> Vec<jghm::sample::Pair> {
    sample_pairs(model, 5000, 124, true)
}

/// Conditional samples given a long image (1,024 leaves) follow the exact marginals of the
/// nodes near the root. There `h_u(b) = log p(x below u | z_u = b)` is about -500: each child's
/// weights `Ψ_u(a, b) exp(h_u(b) - max h_u)` must be shifted by the maximum, or they underflow
/// to zero and the draw degenerates (cargo-mutants found `h - c -> h + c` alive: equivalent on
/// short towers). Each node's state frequencies over `n` draws are within 5 standard errors
/// (plus one count) of its marginal, computed by the independent downward pass.
#[test]
fn conditional_samples_given_a_long_image_follow_the_exact_marginals() {
    let spec = RandomSpec { text_depth: 1, ..RandomSpec::symmetric(4, 2, 10, 23) };
    let model = spec.build().unwrap();
    assert_eq!(model.image_len(), 1024);
    let tree = model.tree();
    let top: Vec<usize> = std::iter::once(0).chain(tree.nodes[0].children.iter().copied()).collect();
    let n = 400;
    let mut r = rng::stream(5, 0);
    for pair in sample_pairs(&model, 4, 77, false) {
        let obs = Tokens { image: Some(&pair.image), text: None };
        // Unshifted weights exp(h_u(b) + max h_u) <= exp(2 max h_u) underflow to 0 below
        // max h_u = -745.1 / 2: true of the image tower's two top nodes, so the test can see it.
        let mut ws = bp::Workspace::new(&model);
        ws.upward(&model, &obs);
        let image_top: Vec<usize> =
            top.iter().copied().filter(|&u| tree.nodes[u].transition.is_some_and(|t| t.part == Part::Image)).collect();
        assert_eq!(image_top.len(), 2);
        for &u in &image_top {
            let peak = ws.h(&model, u).iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert!(peak < -373.0, "node {u}: max h = {peak}, too short to underflow unshifted weights");
        }
        let marginals = bp::marginals(&model, &obs).unwrap();
        let mut counts = vec![vec![0usize; 4]; top.len()];
        for _ in 0..n {
            let states = bp::sample_conditional(&model, &obs, &mut r).unwrap();
            for (c, &u) in counts.iter_mut().zip(&top) {
                c[states[u]] += 1;
            }
        }
        for (c, &u) in counts.iter().zip(&top) {
            for (b, (&k, &p)) in c.iter().zip(&marginals[u]).enumerate() {
                let freq = k as f64 / n as f64;
                let tolerance = 5.0 * (p * (1.0 - p) / n as f64).sqrt() + 1.0 / n as f64;
                assert!((freq - p).abs() <= tolerance, "node {u}, state {b}: frequency {freq} vs marginal {p}");
            }
        }
    }
}

/// `model` with its root prior replaced by `prior`.
fn with_prior(model: &Jghm, prior: Vec<f64>) -> Jghm {
    Jghm::from_file(jghm::model::ModelFile { prior, ..model.to_file() }).unwrap()
}

/// Draws below a fixed root state follow `p(x, y | z = c)`: the exact law is the joint of the
/// same model with the prior put all on `c`. Checked for a root state of prior 1e-9, which a
/// rejection sampler (keep joint draws whose root is `c`) would need 10^9 draws per sample to
/// reach.
#[test]
fn samples_below_a_fixed_root_follow_the_conditional_joint() {
    let base = small_model();
    let c = 1;
    let model = with_prior(&base, vec![0.5, 1e-9, 0.5 - 1e-9]);
    let given_c = with_prior(&base, vec![0.0, 1.0, 0.0]);
    let sampler = Sampler::new(&model);
    let mut rng = rng::stream(43, 0);
    let n = 100_000;
    let mut counts: HashMap<Vec<usize>, usize> = HashMap::new();
    for _ in 0..n {
        let pair = sampler.pair_given_root(&mut rng, c, true);
        assert_eq!(pair.hidden.as_ref().unwrap()[0], c);
        *counts.entry([pair.image, pair.text].concat()).or_default() += 1;
    }
    let mut expected = vec![];
    for x in all_sequences(model.image_len(), model.image_vocab()) {
        for y in all_sequences(model.text_len(), model.text_vocab()) {
            expected.push(([x.clone(), y.clone()].concat(), bp::log_pxy(&given_c, &x, &y).unwrap().exp()));
        }
    }
    let (stat, critical) = chi_square(&counts, &expected, n);
    assert!(stat < critical, "chi-square {stat} exceeds the {LEVEL} critical value {critical}");
}
