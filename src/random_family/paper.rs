//! The paper's own model draw: the two-tower JGHM that the paper's public simulation code builds
//! (its `DoubleSampler` with `GenTransition(translation_invariance=True)`), entry for entry.
//!
//! The draws come from NumPy's legacy generator ([`super::numpy_legacy`]) seeded once by
//! `np.random.seed(seed)` (the paper: 42). The text tower is drawn first, then the image tower,
//! from the same stream. Each tower of `L` levels, `m` children and `S` states draws, level by
//! level from the root:
//!
//! 1. a permutation `π = permutation(S)`, giving the skeleton `P(a, b) = 1{b = π(a)}`
//!    (the rows of the identity taken in the order `π`);
//! 2. for each child position `j = 0, …, m-1`, an `S × S` matrix `N_j = normal(0, s, [S, S])`
//!    (row-major) and `Ψ_j = (1 - ε) P + ε softmax_row(N_j)`, where
//!    `softmax_row(N)(a, b) = exp(N(a, b) - max_c N(a, c)) / Σ_c exp(N(a, c) - max_c N(a, c))`
//!    (the row sum in NumPy's pairwise order, [`super::numpy_legacy::pairwise_sum`]).
//!
//! Every node of a level uses the same `m` matrices (child position `j` uses `Ψ_j`); every level
//! has `S` states, so the vocabulary is `S`; the root prior is uniform. `ε` is the tower's flip
//! and `s` the scale; the draws do not depend on either (the Gaussians are scaled after the
//! draw), so models of one seed at different flips share `P` and `N`.

use nalgebra::DMatrix;

use super::numpy_legacy::{pairwise_sum, LegacyRandomState};
use crate::model::{Jghm, Level, ModelError};

/// The shape, flips and seed of the paper's draw.
#[derive(Clone, Debug, PartialEq)]
pub struct PaperSpec {
    /// States `S` at every level (root, internal levels and leaves).
    pub states: usize,
    /// Children `m` per node, in both towers.
    pub children: usize,
    /// Levels `L` of both towers.
    pub depth: usize,
    /// Flip `ε ∈ [0, 1]` of the image tower.
    pub image_flip: f64,
    /// Flip `ε ∈ [0, 1]` of the text tower.
    pub text_flip: f64,
    /// Standard deviation `s ≥ 0` of the Gaussian logits.
    pub scale: f64,
    /// The argument of `np.random.seed` (an integer of `[0, 2³²)`).
    pub seed: u64,
}

/// The two towers' levels (root first) of the paper's draw.
#[derive(Clone, Debug)]
pub struct PaperTowers {
    pub image: Vec<Level>,
    pub text: Vec<Level>,
}

/// The paper's tree seed, `np.random.seed(42)`.
pub const PAPER_TREE_SEED: u64 = 42;

impl PaperSpec {
    /// The paper's simulation model: 10 states, 3 children, 4 levels, scale 1, seed 42, the
    /// given flips of the image and text towers.
    pub fn paper(image_flip: f64, text_flip: f64) -> Self {
        PaperSpec { states: 10, children: 3, depth: 4, image_flip, text_flip, scale: 1.0, seed: PAPER_TREE_SEED }
    }

    /// Draws the model (the text tower's transitions first, then the image tower's). The model
    /// renormalises every row to sum to 1 (a change of at most an ulp or two per entry).
    pub fn build(&self) -> Result<Jghm, ModelError> {
        let towers = self.draw()?;
        let prior = vec![1.0 / self.states as f64; self.states];
        Jghm::new(prior, vec![], towers.image, towers.text)
    }

    /// The transitions exactly as the generator computes them, before [`Jghm`] renormalises.
    pub fn draw(&self) -> Result<PaperTowers, ModelError> {
        self.check()?;
        let seed = u32::try_from(self.seed).expect("checked");
        let mut numpy = LegacyRandomState::seed(seed);
        let text = self.tower(&mut numpy, self.text_flip);
        let image = self.tower(&mut numpy, self.image_flip);
        Ok(PaperTowers { image, text })
    }

    fn check(&self) -> Result<(), ModelError> {
        let bad = |what: &str| Err(ModelError::Spec(what.to_string()));
        if self.states == 0 || self.children == 0 || self.depth == 0 {
            return bad("--states, --children and --depth must be at least 1");
        }
        for (name, flip) in [("--image-flip", self.image_flip), ("--text-flip", self.text_flip)] {
            if !(0.0..=1.0).contains(&flip) {
                return bad(&format!("{name} must lie in [0, 1] (got {flip})"));
            }
        }
        if !(self.scale.is_finite() && self.scale >= 0.0) {
            return bad("--scale must be finite and nonnegative");
        }
        if u32::try_from(self.seed).is_err() {
            return bad(&format!("--seed must lie in [0, 2^32 - 1], as np.random.seed requires (got {})", self.seed));
        }
        let s = self.states as f64;
        let entries = 2.0 * self.children as f64 * self.depth as f64 * s * s;
        if entries > 1e8 {
            return bad(&format!(
                "the model would have about {entries:.1e} transition entries; at most 1e8 are supported"
            ));
        }
        let leaves = 2.0 * (self.children as f64).powi(self.depth as i32);
        if leaves > 1e7 {
            return bad(&format!("the model would have about {leaves:.1e} leaves; at most 1e7 are supported"));
        }
        Ok(())
    }

    /// One tower's levels, root first (the paper's `GenTransition`).
    fn tower(&self, numpy: &mut LegacyRandomState, flip: f64) -> Vec<Level> {
        let s = self.states;
        (0..self.depth)
            .map(|_| {
                let pi = numpy.permutation(s);
                let transitions = (0..self.children)
                    .map(|_| {
                        let logits = numpy.normal(0.0, self.scale, s * s);
                        let soft = softmax_rows(&logits, s);
                        DMatrix::from_fn(s, s, |a, b| {
                            let skeleton = if b == pi[a] { 1.0 } else { 0.0 };
                            (1.0 - flip) * skeleton + flip * soft[a * s + b]
                        })
                    })
                    .collect();
                Level { transitions }
            })
            .collect()
    }
}

/// The row-wise softmax of a row-major `rows × cols` matrix `x`, as the paper's `_softmax_row`:
/// `e(a, b) = exp(x(a, b) - max_c x(a, c))`, then `e(a, b) / Σ_c e(a, c)` (NumPy's pairwise sum).
pub fn softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - top).exp()).collect();
        let total = pairwise_sum(&e);
        out.extend(e.iter().map(|v| v / total));
    }
    out
}
