//! A control variate with an exact mean, for Monte Carlo risks whose per-sample value depends
//! strongly on the hidden states (the denoising risk's `Σ_i Var[v_i | x̃, y]`, the book, Reproducing the paper).
//!
//! **Features.** The nodes are grouped by depth and by side (the tower(s) their leaves belong
//! to); `φ_{g,s}(z) = #{u ∈ g : z_u = s}` counts the nodes of group `g` in state `s`. Their
//! expectation is exact by BP (T1, no evidence): `μ_{g,s} = E φ_{g,s}(Z) = Σ_{u ∈ g} p(z_u = s)`.
//!
//! **The local variance.** For image leaf `i` with parent `pa(i)`, noisy value `x̃_i` and noise
//! `σ`, `L_i(z, x̃) = Var[v_i | x̃_i, z_{pa(i)}]`: the posterior variance of the leaf's value
//! given its own noisy value and its parent's *true* state (prior `Ψ_i(z_pa, ·)`), ten numbers
//! per leaf, no BP. Its mean is `E L_i = Σ_a p(z_pa = a) g_i(a)` with
//! `g_i(a) = E_{v ~ Ψ_i(a,·)} v² − ∫ (Σ_v v w_v(t))² / Σ_v w_v(t) dt`,
//! `w_v(t) = Ψ_i(a, v) φ_σ(t − v)` (since `Σ_v w_v` is the density of `x̃_i` given `z_pa = a`).
//! The integral is a trapezoidal rule, exact to round-off
//! ([`ValueNoise::expected_posterior_variance`]). `L = Σ_i L_i` carries most of the noise-driven
//! variation of the Bayes denoising units, which the state counts cannot see.
//!
//! **Estimator.** With `β` fixed *before* the main draws (fitted by least squares on a pilot
//! drawn from other random streams), each unit `f_j` is replaced by
//! `f_j − β·(φ(Z_j) − μ)`. Since `E φ(Z_j) = μ` and `β` is independent of `Z_j`,
//! `E[f_j − β·(φ(Z_j) − μ)] = E f_j` exactly (unbiased for every `β`); the adjusted units are
//! i.i.d., so the standard error over them is the usual one. The variance
//! `Var f − 2β·Cov(φ, f) + βᵀ Cov(φ) β` is smallest at `β* = Cov(φ)^{-1} Cov(φ, f)`, which the
//! pilot approximates; a poor `β` costs variance, never bias. Proof: `proofs/paper-risks.md` §3.

use std::collections::BTreeMap;

use nalgebra::{DMatrix, DVector};

use crate::bp;
use crate::downstream::noise::ValueNoise;
use crate::evidence::Evidence;
use crate::model::{Jghm, Part};

/// `L(z, x̃) = Σ_i Var[v_i | x̃_i, z_{pa(i)}]` over the image leaves, with its mean.
#[derive(Clone, Debug)]
pub struct LocalVariance {
    noise: ValueNoise,
    /// Per image leaf: its node, its parent, and `Ψ_i` row-major.
    leaves: Vec<(usize, usize, Vec<f64>)>,
    vocab: usize,
    mean: f64,
}

impl LocalVariance {
    /// `E L = Σ_i Σ_a p(z_pa(i) = a) g_i(a)`, `p(z_pa)` by BP without evidence, `g_i(a)` by
    /// [`ValueNoise::expected_posterior_variance`].
    pub fn new(model: &Jghm, noise: ValueNoise) -> Self {
        let tree = model.tree();
        let prior = bp::marginals(model, &Evidence::none(model)).expect("empty evidence has probability one");
        let vocab = model.image_vocab();
        let mut mean = 0.0;
        let mut leaves = vec![];
        for &u in &tree.image_leaves {
            let parent = tree.nodes[u].parent.expect("a leaf has a parent");
            let psi = model.transition(tree.nodes[u].transition.expect("non-root"));
            let rows: Vec<f64> = (0..psi.nrows()).flat_map(|a| (0..vocab).map(move |v| psi[(a, v)])).collect();
            for (a, p) in prior[parent].iter().enumerate() {
                // E L_i = Σ_a p(z_pa = a) g_i(a)
                mean += p * noise.expected_posterior_variance(&rows[a * vocab..(a + 1) * vocab]);
            }
            leaves.push((u, parent, rows));
        }
        LocalVariance { noise, leaves, vocab, mean }
    }

    /// `L(z, x̃)` of one draw: every node's state `z` and the noisy image `x̃`.
    pub fn value(&self, states: &[usize], noisy: &[f64]) -> f64 {
        let v = self.vocab;
        self.leaves
            .iter()
            .zip(noisy)
            .map(|((_, parent, rows), x)| {
                let a = states[*parent];
                self.noise.posterior_variance(&rows[a * v..(a + 1) * v], *x)
            })
            .sum()
    }

    /// The mean `E L` (quadrature, module doc).
    pub fn mean(&self) -> f64 {
        self.mean
    }
}

/// State counts per node group, with their exact means.
#[derive(Clone, Debug)]
pub struct StateCounts {
    /// Per node: the offset of its group's block of features.
    offset: Vec<usize>,
    dim: usize,
    mean: Vec<f64>,
}

impl StateCounts {
    /// Groups the nodes by (depth, side) and computes `μ_{g,s} = Σ_{u ∈ g} p(z_u = s)` by BP.
    pub fn new(model: &Jghm) -> Self {
        let tree = model.tree();
        let n = tree.nodes.len();
        // Parents come before children: depths downwards, side masks upwards.
        let mut depth = vec![0usize; n];
        for u in 1..n {
            depth[u] = depth[tree.nodes[u].parent.expect("non-root")] + 1;
        }
        let mut side = vec![0u8; n];
        for u in (0..n).rev() {
            side[u] |= match tree.leaf_slot[u] {
                Some((Part::Image, _)) => 1,
                Some((Part::Text, _)) => 2,
                _ => 0,
            };
            if let Some(p) = tree.nodes[u].parent {
                side[p] |= side[u];
            }
        }
        let mut blocks: BTreeMap<(usize, u8), (usize, usize)> = BTreeMap::new();
        let mut dim = 0;
        let offset = (0..n)
            .map(|u| {
                let states = tree.nodes[u].states;
                let (off, width) = *blocks.entry((depth[u], side[u])).or_insert_with(|| {
                    dim += states;
                    (dim - states, states)
                });
                assert_eq!(width, states, "a group's nodes share their number of states");
                off
            })
            .collect::<Vec<_>>();
        let prior = bp::marginals(model, &Evidence::none(model)).expect("empty evidence has probability one");
        let mut mean = vec![0.0; dim];
        for (u, p) in prior.iter().enumerate() {
            // μ_{g,s} = Σ_{u ∈ g} p(z_u = s)
            mean[offset[u]..offset[u] + p.len()].iter_mut().zip(p).for_each(|(m, p)| *m += p);
        }
        StateCounts { offset, dim, mean }
    }

    /// Number of features.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `φ(z)`: the counts of one joint state `z` (every node's state, by node id).
    pub fn features(&self, states: &[usize]) -> Vec<f64> {
        let mut phi = vec![0.0; self.dim];
        for (&off, &s) in self.offset.iter().zip(states) {
            phi[off + s] += 1.0;
        }
        phi
    }

    /// The feature of "node `u` in state `s`".
    pub fn index(&self, u: usize, s: usize) -> usize {
        self.offset[u] + s
    }

    /// The exact `μ = E φ(Z)`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
}

/// `f − β·(φ(z) − μ)` with `β` fixed by a pilot.
#[derive(Clone, Debug)]
pub struct ControlVariate {
    pub counts: StateCounts,
    pub local: LocalVariance,
    /// Coefficients of the counts, then of `L`.
    pub beta: Vec<f64>,
    /// Pilot samples `β` was fitted on.
    pub pilot: usize,
}

impl ControlVariate {
    /// Least squares `β = argmin Σ_j (f_j − f̄ − β·(φ_j − φ̄))²` on pilot samples (a tiny ridge,
    /// `1e-9 × mean diagonal`, resolves the collinearity of counts that sum to a group's size).
    /// `β = 0` (no adjustment) when the system cannot be solved.
    pub fn fit(
        counts: StateCounts,
        local: LocalVariance,
        pilot_states: &[Vec<usize>],
        pilot_noisy: &[Vec<f64>],
        pilot_values: &[f64],
    ) -> Self {
        let mut cv = ControlVariate { counts, local, beta: vec![], pilot: pilot_values.len() };
        let d = cv.counts.dim() + 1;
        let n = pilot_values.len();
        let mut beta = vec![0.0; d];
        if n >= 2 {
            let phis: Vec<Vec<f64>> = pilot_states.iter().zip(pilot_noisy).map(|(z, x)| cv.features(z, x)).collect();
            let phi_bar: Vec<f64> = (0..d).map(|k| phis.iter().map(|p| p[k]).sum::<f64>() / n as f64).collect();
            let f_bar = pilot_values.iter().sum::<f64>() / n as f64;
            let x = DMatrix::from_fn(n, d, |j, k| phis[j][k] - phi_bar[k]);
            let y = DVector::from_iterator(n, pilot_values.iter().map(|f| f - f_bar));
            let mut gram = x.transpose() * &x;
            let ridge = 1e-9 * (gram.trace() / d as f64).max(1e-300);
            for k in 0..d {
                gram[(k, k)] += ridge;
            }
            if let Some(chol) = gram.cholesky() {
                let b = chol.solve(&(x.transpose() * y));
                if b.iter().all(|v| v.is_finite()) {
                    beta = b.iter().copied().collect();
                }
            }
        }
        cv.beta = beta;
        cv
    }

    /// `φ(z, x̃)`: the state counts, then `L(z, x̃)`.
    pub fn features(&self, states: &[usize], noisy: &[f64]) -> Vec<f64> {
        let mut phi = self.counts.features(states);
        phi.push(self.local.value(states, noisy));
        phi
    }

    /// `μ = E φ`: exact counts' means, then `E L`.
    pub fn mean(&self) -> Vec<f64> {
        let mut mu = self.counts.mean().to_vec();
        mu.push(self.local.mean());
        mu
    }

    /// `β·(φ(z, x̃) − μ)`, subtracted from every unit of the draw `(z, x̃)`.
    pub fn correction(&self, states: &[usize], noisy: &[f64], mean: &[f64]) -> f64 {
        let phi = self.features(states, noisy);
        phi.iter().zip(mean).zip(&self.beta).map(|((p, m), b)| b * (p - m)).sum()
    }
}
