//! The standard random family of JGHMs (the book, The JGHM), as in the paper's public simulation code.
//!
//! Each transition is `Ψ = (1 - ε) P + ε R`: `P` a random permutation matrix drawn once per
//! level and shared by that level's child positions, `R` a row-wise softmax of i.i.d.
//! `N(0, s²)` entries drawn per level and child position; `ε` is the flip, `s` the scale.
//! The prior is uniform.
//!
//! The draws depend on the seed and the shape only, never on `ε` or `s`: the standard normals
//! are drawn first and scaled afterwards, so models with the same seed and different `ε` share
//! `P` and `R` (the out-of-distribution experiments rely on this). Each part (trunk, image,
//! text) draws from its own stream, so changing the text tower leaves the image tower as it was.
//!
//! When a level's alphabet `S_k` differs from its parent's `S_{k-1}` (a vocabulary `V` unlike
//! the number of states), `P` generalises to the 0/1 matrix `P(a, b) = 1{b = σ(a mod S_k)}` with
//! `σ` a random permutation of `[S_k]`: each parent state still prefers one child state.
//!
//! [`paper`] draws the paper's own model of this family (NumPy's legacy generator, seed 42),
//! entry for entry; [`numpy_legacy`] is that generator.

pub mod numpy_legacy;
pub mod paper;

use nalgebra::DMatrix;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};

use crate::model::{Jghm, Level, ModelError, Part};
use crate::rng::{self, Rng};

/// The shape and noise of a model of the standard random family.
#[derive(Clone, Debug)]
pub struct RandomSpec {
    /// States `S` at the root and every internal level.
    pub states: usize,
    /// Children per node in the image tower (and the trunk).
    pub children: usize,
    /// Levels of the image tower.
    pub depth: usize,
    /// Children per node in the text tower.
    pub text_children: usize,
    /// Levels of the text tower.
    pub text_depth: usize,
    /// Vocabulary of both towers' last level.
    pub vocab: usize,
    /// Levels of the shared trunk (0: none).
    pub shared_depth: usize,
    /// Children per trunk node.
    pub shared_children: usize,
    /// The flip `ε ∈ [0, 1]`.
    pub flip: f64,
    /// The scale `s ≥ 0` of the Gaussian logits of `R`.
    pub scale: f64,
    pub seed: u64,
}

impl RandomSpec {
    /// `S` states, `m` children and `L` levels for both towers, vocabulary `S`, no trunk,
    /// flip 0.3, scale 1.
    pub fn symmetric(states: usize, children: usize, depth: usize, seed: u64) -> Self {
        RandomSpec {
            states,
            children,
            depth,
            text_children: children,
            text_depth: depth,
            vocab: states,
            shared_depth: 0,
            shared_children: children,
            flip: 0.3,
            scale: 1.0,
            seed,
        }
    }

    /// Draws the model.
    pub fn build(&self) -> Result<Jghm, ModelError> {
        self.check()?;
        let s = self.states;
        let prior = vec![1.0 / s as f64; s];
        let shared = self.part(Part::Shared, self.shared_depth, self.shared_children, s, 0);
        let image = self.part(Part::Image, self.depth, self.children, self.vocab, 1);
        let text = self.part(Part::Text, self.text_depth, self.text_children, self.vocab, 2);
        Jghm::new(prior, shared, image, text)
    }

    fn check(&self) -> Result<(), ModelError> {
        let bad = |what: &str| Err(ModelError::Spec(what.to_string()));
        if self.states == 0 || self.vocab == 0 {
            return bad("--states and --vocab must be at least 1");
        }
        if self.children == 0 || self.text_children == 0 || self.shared_children == 0 {
            return bad("children per node must be at least 1");
        }
        if self.depth == 0 || self.text_depth == 0 {
            return bad("tower depths must be at least 1");
        }
        if !(0.0..=1.0).contains(&self.flip) {
            return bad("--flip must lie in [0, 1]");
        }
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            return bad("--scale must be finite and nonnegative");
        }
        let leaves = |m: usize, l: usize| (m as f64).powi(l as i32);
        let trunk = leaves(self.shared_children, self.shared_depth);
        let nodes = trunk * (leaves(self.children, self.depth) + leaves(self.text_children, self.text_depth));
        // Transition entries: S² per child position and level (S·V at the towers' last level).
        let (s, v) = (self.states as f64, self.vocab as f64);
        let entries = |m: usize, l: usize| m as f64 * (l.saturating_sub(1) as f64 * s * s + s * v);
        let total = entries(self.children, self.depth)
            + entries(self.text_children, self.text_depth)
            + self.shared_children as f64 * self.shared_depth as f64 * s * s;
        if total > 1e8 {
            return bad(&format!(
                "the model would have about {total:.1e} transition entries; at most 1e8 are supported"
            ));
        }
        if nodes > 1e7 {
            return bad(&format!("the model would have about {nodes:.1e} leaves; at most 1e7 are supported"));
        }
        Ok(())
    }

    /// The levels of one part; every level has `S` states but the towers' last, which has `vocab`.
    fn part(&self, part: Part, depth: usize, children: usize, vocab: usize, stream: u64) -> Vec<Level> {
        let mut rng = rng::stream(self.seed, stream);
        (0..depth)
            .map(|level| {
                let is_last = level + 1 == depth && part != Part::Shared;
                let cols = if is_last { vocab } else { self.states };
                self.level(&mut rng, self.states, cols, children)
            })
            .collect()
    }

    fn level(&self, rng: &mut Rng, rows: usize, cols: usize, children: usize) -> Level {
        let mut sigma: Vec<usize> = (0..cols).collect();
        sigma.shuffle(rng);
        let transitions = (0..children)
            .map(|_| {
                let normals = DMatrix::<f64>::from_fn(rows, cols, |_, _| StandardNormal.sample(rng));
                DMatrix::from_fn(rows, cols, |a, b| {
                    let permutation = if b == sigma[a % cols] { 1.0 } else { 0.0 };
                    (1.0 - self.flip) * permutation + self.flip * softmax_entry(&normals, self.scale, a, b)
                })
            })
            .collect();
        Level { transitions }
    }
}

/// `exp(s·N(a, b)) / Σ_c exp(s·N(a, c))`.
fn softmax_entry(normals: &DMatrix<f64>, scale: f64, a: usize, b: usize) -> f64 {
    let row = normals.row(a);
    let top = row.max() * scale;
    let denom: f64 = row.iter().map(|n| (scale * n - top).exp()).sum();
    (scale * normals[(a, b)] - top).exp() / denom
}
