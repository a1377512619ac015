//! Small random models for property tests, shared by every test file.
//!
//! A model is drawn in two steps: proptest picks the *shape* (trunk, levels, children,
//! alphabets) and a *regime* (near-uniform, generic, near-deterministic transitions), then a
//! seed fixes the numbers. Shrinking therefore simplifies the shape first.
#![allow(dead_code)]

pub mod cli;

use jghm::model::{Jghm, Level};
use jghm::rng;
use nalgebra::DMatrix;
use proptest::prelude::*;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

/// How peaked the transition rows are.
#[derive(Clone, Copy, Debug)]
pub enum Regime {
    /// Logits `N(0, 0.1²)`: rows close to uniform.
    NearUniform,
    /// Logits `N(0, 1)`.
    Generic,
    /// A permutation mixed with `1e-6` of a generic row: rows close to one-hot.
    NearDeterministic,
}

/// The shape of a small model: `(children, states)` per level.
#[derive(Clone, Debug)]
pub struct Shape {
    pub root_states: usize,
    pub shared: Vec<(usize, usize)>,
    pub image: Vec<(usize, usize)>,
    pub text: Vec<(usize, usize)>,
}

fn levels(max_levels: usize) -> impl Strategy<Value = Vec<(usize, usize)>> {
    prop::collection::vec((1usize..=2, 2usize..=3), 1..=max_levels)
}

/// Shapes with or without a trunk, unequal alphabets, towers of depth 1 to 4.
pub fn arb_shape() -> impl Strategy<Value = Shape> {
    (2usize..=3, prop::collection::vec((1usize..=2, 2usize..=3), 0..=1), levels(4), levels(4))
        .prop_map(|(root_states, shared, image, text)| Shape { root_states, shared, image, text })
}

pub fn arb_regime() -> impl Strategy<Value = Regime> {
    prop_oneof![Just(Regime::NearUniform), Just(Regime::Generic), Just(Regime::NearDeterministic)]
}

/// A random model of the given shape and regime, fixed by `seed`.
pub fn build(shape: &Shape, regime: Regime, seed: u64) -> Jghm {
    let mut r = rng::stream(seed, 99);
    let mut prior: Vec<f64> = (0..shape.root_states).map(|_| 0.2 + r.random::<f64>()).collect();
    let total: f64 = prior.iter().sum();
    prior.iter_mut().for_each(|p| *p /= total);
    let mut rows = shape.root_states;
    let part = |spec: &[(usize, usize)], rows_in: usize, r: &mut rng::Rng| {
        let mut rows = rows_in;
        let levels: Vec<Level> = spec
            .iter()
            .map(|&(children, states)| {
                let level = Level { transitions: (0..children).map(|_| matrix(r, rows, states, regime)).collect() };
                rows = states;
                level
            })
            .collect();
        (levels, rows)
    };
    let (shared, trunk_states) = part(&shape.shared, rows, &mut r);
    rows = trunk_states;
    let (image, _) = part(&shape.image, rows, &mut r);
    let (text, _) = part(&shape.text, rows, &mut r);
    Jghm::new(prior, shared, image, text).expect("generated models are valid")
}

fn matrix(r: &mut rng::Rng, rows: usize, cols: usize, regime: Regime) -> DMatrix<f64> {
    let (scale, eps) = match regime {
        Regime::NearUniform => (0.1, 1.0),
        Regime::Generic => (1.0, 1.0),
        Regime::NearDeterministic => (1.0, 1e-6),
    };
    let target: Vec<usize> = (0..rows).map(|_| r.random_range(0..cols)).collect();
    let mut m = DMatrix::from_fn(rows, cols, |_, _| {
        let n: f64 = StandardNormal.sample(r);
        (scale * n).exp()
    });
    for a in 0..rows {
        let s: f64 = m.row(a).sum();
        for b in 0..cols {
            let generic = m[(a, b)] / s;
            m[(a, b)] = (1.0 - eps) * f64::from(u8::from(b == target[a])) + eps * generic;
        }
    }
    m
}

/// A small random model of any shape (strategy).
pub fn arb_model() -> impl Strategy<Value = Jghm> {
    (arb_shape(), arb_regime(), any::<u64>()).prop_map(|(shape, regime, seed)| build(&shape, regime, seed))
}

/// Random tokens of one modality for a model.
pub fn random_tokens(model: &Jghm, part: jghm::Part, seed: u64) -> Vec<usize> {
    let mut r = rng::stream(seed, 7);
    (0..model.len_of(part)).map(|_| r.random_range(0..model.vocab_of(part))).collect()
}
