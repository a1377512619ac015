//! Tiny models for the exact information-theory tests (T2-T7): small enough to enumerate
//! both sides, and batches of the CLIP loss, exactly. Built with `common::build`, so every
//! regime of the shared generator is covered, with and without a shared trunk.
#![allow(dead_code)]

use crate::common::{arb_regime, build, Shape};
use jghm::info::{self, side_size};
use jghm::model::{Jghm, Part};
use proptest::prelude::*;

/// Tiny shapes: root 2-3 states, an optional one-level trunk, towers of 1-2 levels.
pub fn arb_tiny_shape(trunk: bool) -> impl Strategy<Value = Shape> {
    let level = (1usize..=2, 2usize..=3);
    let trunk_levels =
        if trunk { prop::collection::vec((1usize..=2, 2usize..=2), 1..=1).boxed() } else { Just(vec![]).boxed() };
    (2usize..=3, trunk_levels, prop::collection::vec(level.clone(), 1..=2), prop::collection::vec(level, 1..=2))
        .prop_map(|(root_states, shared, image, text)| Shape { root_states, shared, image, text })
}

/// A tiny model, with or without a trunk, whose sides have at most `max_side` sequences.
pub fn arb_tiny_model(trunk: bool, max_side: f64) -> impl Strategy<Value = Jghm> {
    (arb_tiny_shape(trunk), arb_regime(), any::<u64>())
        .prop_map(|(shape, regime, seed)| build(&shape, regime, seed))
        .prop_filter("sides small enough to enumerate", move |m| {
            side_size(m, Part::Image) <= max_side && side_size(m, Part::Text) <= max_side
        })
}

/// Either with or without a trunk.
pub fn arb_any_tiny_model(max_side: f64) -> impl Strategy<Value = Jghm> {
    prop_oneof![arb_tiny_model(false, max_side), arb_tiny_model(true, max_side)]
}

/// Tiny models with deep towers: each tower has 3 or 4 levels (1-2 children, 2-3 states a
/// level), with or without a one-level trunk, sides of at most `max_side` sequences (so mostly
/// chains with a split or two, and small vocabularies).
pub fn arb_deep_tiny_model(max_side: f64) -> impl Strategy<Value = Jghm> {
    let level = (1usize..=2, 2usize..=3);
    let tower = prop::collection::vec(level, 3..=4)
        .prop_filter("few leaves", |t| t.iter().map(|l| l.0).product::<usize>() <= 4);
    let trunk = prop_oneof![Just(vec![]), Just(vec![(1usize, 2usize)]), Just(vec![(2, 2)])];
    (2usize..=3, trunk, tower.clone(), tower, arb_regime(), any::<u64>())
        .prop_map(|(root_states, shared, image, text, regime, seed)| {
            build(&Shape { root_states, shared, image, text }, regime, seed)
        })
        .prop_filter("sides small enough to enumerate", move |m| {
            side_size(m, Part::Image) <= max_side && side_size(m, Part::Text) <= max_side
        })
}

/// The tiny models of [`arb_any_tiny_model`] (towers of 1-2 levels) and, one case in four, those
/// of [`arb_deep_tiny_model`] (3-4 levels, sides of at most 16 sequences, which keeps their cases
/// as fast as the shallow ones).
pub fn arb_shallow_or_deep_model(max_side: f64) -> impl Strategy<Value = Jghm> {
    prop_oneof![3 => arb_any_tiny_model(max_side), 1 => arb_deep_tiny_model(max_side.min(16.0))]
}

/// Proptest configuration: few cases (each enumerates a model), no persistence files.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, max_global_rejects: 100_000, ..ProptestConfig::default() }
}

/// The other side.
pub fn other(part: Part) -> Part {
    if part == Part::Image {
        Part::Text
    } else {
        Part::Image
    }
}

/// `|a - b| ≤ tol · max(1, |a|, |b|)`.
pub fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * 1f64.max(a.abs()).max(b.abs())
}

/// The independent oracle: `p(x, y)` for every pair by brute-force enumeration of all hidden
/// states (`bp::brute_force`, no BP involved); rows are all `V_X^{N_X}` images in mixed-radix
/// order, columns all texts. Returns `(xs, ys, p)` with `p` row-major.
pub fn brute_joint(model: &Jghm) -> (Vec<Vec<usize>>, Vec<Vec<usize>>, Vec<f64>) {
    let seqs = |part: Part| -> Vec<Vec<usize>> {
        let n = side_size(model, part) as usize;
        (0..n).map(|i| info::decode_sequence(i, model.len_of(part), model.vocab_of(part))).collect()
    };
    let (xs, ys) = (seqs(Part::Image), seqs(Part::Text));
    let mut p = vec![0.0; xs.len() * ys.len()];
    for (i, x) in xs.iter().enumerate() {
        for (j, y) in ys.iter().enumerate() {
            let obs = jghm::bp::Tokens { image: Some(x), text: Some(y) };
            let e = jghm::bp::brute_force::enumerate(model, &obs).expect("tiny models are enumerable");
            p[i * ys.len() + j] = e.log_likelihood.exp();
        }
    }
    (xs, ys, p)
}

/// Joint configurations [`brute_joint`] visits in all: one enumeration of the hidden states per
/// pair `(x, y)`, so `|X| · |Y| · Π_{hidden u} |Z_u|`. With deep towers the hidden product
/// alone can be close to `bp::brute_force::MAX_CONFIGURATIONS` (3 states on ten hidden nodes a
/// tower), and 256 pairs of that take minutes: filter on this before calling [`brute_joint`].
pub fn brute_joint_work(model: &Jghm) -> f64 {
    let x = vec![0; model.len_of(Part::Image)];
    let y = vec![0; model.len_of(Part::Text)];
    let obs = jghm::bp::Tokens { image: Some(&x), text: Some(&y) };
    jghm::bp::brute_force::configurations(model, &obs) * side_size(model, Part::Image) * side_size(model, Part::Text)
}

/// `I(X; Y) = Σ p(x, y) log p(x, y) / (p(x) p(y))` from a brute-force joint table.
pub fn brute_mutual_information(nx: usize, ny: usize, p: &[f64]) -> f64 {
    let px: Vec<f64> = (0..nx).map(|i| (0..ny).map(|j| p[i * ny + j]).sum()).collect();
    let py: Vec<f64> = (0..ny).map(|j| (0..nx).map(|i| p[i * ny + j]).sum()).collect();
    let mut mi = 0.0;
    for i in 0..nx {
        for j in 0..ny {
            let q = p[i * ny + j];
            if q > 0.0 {
                mi += q * (q / (px[i] * py[j])).ln();
            }
        }
    }
    mi
}

/// Every built-in statistic of one side of a model (all arguments in range).
pub fn all_statistics(model: &Jghm, part: Part) -> Vec<jghm::sufficiency::Statistic> {
    use jghm::sufficiency::Statistic::*;
    let mut out = vec![RootPosterior, SeparatorPosterior, MapRoot];
    for k in 0..=model.len_of(part) {
        out.push(MaskedPosterior(k));
        out.push(FirstTokens(k));
    }
    for d in 0..=info::side_depth(model, part) {
        out.push(LayerPosterior(d));
    }
    out
}
