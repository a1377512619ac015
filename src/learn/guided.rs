//! The "guided" encoder class of the paper's simulations (the book, Reproducing the paper): the paper's transformer
//! plus a penalty tying the hidden states of block `ℓ` to BP's upward messages at tree level `ℓ`.
//!
//! Level `ℓ` counts from the leaves: the nodes of height `ℓ` (parents of leaves are height 1,
//! the root is height `D`, the tower's depth). For a sample `x` with `T` leaves and the blocks
//! `ℓ = 1..=min(L, D)` (`L` blocks; with 5 blocks and `D = 4` the fifth block is free), let
//! `h^ℓ_t ∈ R^C` be block `ℓ`'s output at position `t` and `a_ℓ(t)` the height-`ℓ` ancestor of
//! leaf `t`. The target is the normalised upward message of that node, exact by BP on `x` alone:
//! ```text
//! m_{ℓ,t}(b) = softmax_b h_{a_ℓ(t)}(b) = p(x below a | z_a = b) / Σ_b' p(x below a | z_a = b')
//! ```
//! (the posterior of `z_a` under a flat prior; at the root, with the uniform prior of the
//! standard family, the root posterior `p(z | x)`). A learned linear read-out `(W_ℓ, c_ℓ)` per
//! level predicts it, and the penalty of one sample is the mean squared error
//! ```text
//! pen(x) = 1/(|ℓ|·T) Σ_ℓ Σ_t ‖ h^ℓ_t W_ℓ + c_ℓ − m_{ℓ,t} ‖²
//! ```
//! The training objective is the CLIP loss plus `λ · mean over the step's encoded samples of
//! pen(x)`, on both towers. The encoder is built with `weight = λ / (samples encoded per step)`
//! and its backward adds `weight · ∂pen/∂θ` for each sample it encodes, so the existing
//! [`super::clip::ClipPair`] and [`super::train`] loop train it unchanged. The gradient reaches
//! the blocks through [`Transformer::backward_hooked`]: `∂pen/∂h^ℓ_t = 2 (h^ℓ_t W_ℓ + c_ℓ −
//! m_{ℓ,t}) W_ℓᵀ / (|ℓ|·T)` is added to the residual stream's gradient before block `ℓ`'s
//! backward. Checked against finite differences in tests/reproduce_learned.rs.
//!
//! Parameters: the transformer's (first, so the trained towers are plain [`Transformer`]s),
//! then `W_ℓ (C × S_ℓ)` and `c_ℓ (S_ℓ)` per tied level.

use std::sync::Arc;

use super::encoder::Encoder;
use super::linear::{linear_backward, linear_forward};
use super::real::Real;
use super::transformer::{Transformer, TransformerCache};
use crate::bp::{Tokens, Workspace};
use crate::model::{Jghm, Part};
use crate::rng::Rng;

/// One tied level: block `block` (1-based) against the nodes of height `block`.
#[derive(Clone, Debug)]
struct Tie {
    block: usize,
    states: usize,
    /// The height-`block` ancestor (node id) of every leaf position.
    ancestor: Vec<usize>,
    /// Offsets of `W_ℓ` and `c_ℓ` in the parameter vector.
    w_at: usize,
    c_at: usize,
}

/// A transformer tower with the BP-message penalty (module formula).
#[derive(Clone, Debug)]
pub struct GuidedTransformer {
    pub inner: Transformer,
    model: Arc<Jghm>,
    part: Part,
    ties: Vec<Tie>,
    /// `λ / (samples encoded per step)`: the weight of one sample's `pen(x)`.
    pub weight: f64,
    total: usize,
}

/// The forward cache: the transformer's, the read-out residuals `r_ℓ = h^ℓ W_ℓ + c_ℓ − m_ℓ`
/// (`N × S_ℓ` per tie), the summed penalty of the last forward, BP scratch.
pub struct GuidedCache<R> {
    pub inner: TransformerCache<R>,
    resid: Vec<Vec<R>>,
    /// `Σ_samples pen(x)` of the last forward pass (unweighted).
    pub penalty: f64,
    dh: Vec<Vec<R>>,
    bp: Workspace,
}

/// The guided class needs a two-tower model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the guided class ties hidden states to one tower's BP messages; this model has a shared trunk")]
pub struct SharedTrunk;

impl GuidedTransformer {
    /// The guided tower for `part` of a two-tower `model` around `inner`, with sample weight
    /// `weight = λ / samples encoded per step`.
    pub fn new(inner: Transformer, model: Arc<Jghm>, part: Part, weight: f64) -> Result<Self, SharedTrunk> {
        if model.has_trunk() {
            return Err(SharedTrunk);
        }
        let depth = model.levels(part).len();
        let (c, mut at) = (inner.shape.width, Encoder::<f64>::num_params(&inner));
        let tree = model.tree();
        let leaves = model.leaves_of(part);
        let mut ties = vec![];
        for block in 1..=inner.shape.layers.min(depth) {
            let ancestor: Vec<usize> = leaves
                .iter()
                .map(|&leaf| (0..block).fold(leaf, |u, _| tree.nodes[u].parent.expect("below the root")))
                .collect();
            let states = tree.nodes[ancestor[0]].states;
            ties.push(Tie { block, states, ancestor, w_at: at, c_at: at + c * states });
            at += c * states + states;
        }
        Ok(GuidedTransformer { inner, model, part, ties, weight, total: at })
    }

    /// The transformer's share of a parameter vector.
    pub fn inner_params<'a, R>(&self, params: &'a [R]) -> &'a [R] {
        &params[..Encoder::<f64>::num_params(&self.inner)]
    }

    /// `m_{ℓ,t}` of every tie for `b` samples, rows of `S_ℓ` (module formula).
    fn targets(&self, tokens: &[u32], b: usize, bp: &mut Workspace) -> Vec<Vec<f64>> {
        let t = self.inner.shape.len;
        let mut out: Vec<Vec<f64>> = self.ties.iter().map(|tie| Vec::with_capacity(b * t * tie.states)).collect();
        let mut seq = vec![0usize; t];
        for sample in tokens[..b * t].chunks_exact(t) {
            seq.iter_mut().zip(sample).for_each(|(s, &x)| *s = x as usize);
            let obs = match self.part {
                Part::Image => Tokens { image: Some(&seq), text: None },
                _ => Tokens { image: None, text: Some(&seq) },
            };
            bp.upward(&self.model, &obs);
            for (tie, dst) in self.ties.iter().zip(out.iter_mut()) {
                for &u in &tie.ancestor {
                    // m(b) = softmax_b h_u(b)
                    let h = bp.h(&self.model, u);
                    let m = h.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = h.iter().map(|x| (x - m).exp()).sum();
                    dst.extend(h.iter().map(|x| (x - m).exp() / z));
                }
            }
        }
        out
    }
}

impl<R: Real> Encoder<R> for GuidedTransformer {
    type Cache = GuidedCache<R>;

    fn num_params(&self) -> usize {
        self.total
    }
    fn seq_len(&self) -> usize {
        self.inner.shape.len
    }
    fn vocab(&self) -> usize {
        self.inner.shape.vocab
    }
    fn out_dim(&self) -> usize {
        self.inner.shape.out
    }

    /// The transformer's initialisation, then read-outs `U(−1/√C, 1/√C)`, offsets 0.
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        use rand::Rng as _;
        let mut w = self.inner.init(rng);
        let bound = 1.0 / (self.inner.shape.width as f64).sqrt();
        w.resize(self.total, R::zero());
        for tie in &self.ties {
            for x in &mut w[tie.w_at..tie.c_at] {
                *x = R::of(rng.random_range(-bound..bound));
            }
        }
        w
    }

    fn cache_len(&self, batch: usize) -> usize {
        let n = batch * self.inner.shape.len;
        let ties: usize = self.ties.iter().map(|tie| n * (tie.states + self.inner.shape.width)).sum();
        // (The BP workspace is the model's size, small beside the activations.)
        <Transformer as Encoder<R>>::cache_len(&self.inner, batch) + ties
    }

    fn new_cache(&self, batch: usize) -> GuidedCache<R> {
        let n = batch * self.inner.shape.len;
        GuidedCache {
            inner: self.inner.new_cache(batch),
            resid: self.ties.iter().map(|tie| vec![R::zero(); n * tie.states]).collect(),
            penalty: 0.0,
            dh: self.ties.iter().map(|_| vec![R::zero(); n * self.inner.shape.width]).collect(),
            bp: Workspace::new(&self.model),
        }
    }

    fn forward(&self, params: &[R], tokens: &[u32], b: usize, cache: &mut GuidedCache<R>, out: &mut [R]) {
        let (t, c) = (self.inner.shape.len, self.inner.shape.width);
        let n = b * t;
        self.inner.forward(self.inner_params(params), tokens, b, &mut cache.inner, out);
        let targets = self.targets(tokens, b, &mut cache.bp);
        let mut total = 0.0;
        for ((tie, target), r) in self.ties.iter().zip(&targets).zip(cache.resid.iter_mut()) {
            // r = h^ℓ W_ℓ + c_ℓ − m_ℓ
            let s = tie.states;
            linear_forward(
                &mut r[..n * s],
                &cache.inner.hidden(tie.block)[..n * c],
                &params[tie.w_at..tie.c_at],
                Some(&params[tie.c_at..tie.c_at + s]),
                n,
                c,
                s,
                R::zero(),
            );
            for (x, &m) in r[..n * s].iter_mut().zip(target) {
                *x -= R::of(m);
                total += x.f64() * x.f64();
            }
        }
        // Σ_samples pen(x) = Σ ‖r‖² / (|ℓ|·T)
        cache.penalty = total / (self.ties.len().max(1) * t) as f64;
    }

    fn backward(
        &self,
        params: &[R],
        tokens: &[u32],
        b: usize,
        cache: &mut GuidedCache<R>,
        dout: &[R],
        dparams: &mut [R],
    ) {
        let (t, c) = (self.inner.shape.len, self.inner.shape.width);
        let n = b * t;
        let np = Encoder::<R>::num_params(&self.inner);
        let (dinner, dreadout) = dparams.split_at_mut(np);
        // ∂(weight · pen)/∂r = 2 weight r / (|ℓ|·T); then dW_ℓ, dc_ℓ and dh^ℓ = dr W_ℓᵀ
        let scale = R::of(2.0 * self.weight / (self.ties.len().max(1) * t) as f64);
        for ((tie, r), dh) in self.ties.iter().zip(&cache.resid).zip(cache.dh.iter_mut()) {
            let s = tie.states;
            let dr: Vec<R> = r[..n * s].iter().map(|&x| x * scale).collect();
            dh[..n * c].iter_mut().for_each(|x| *x = R::zero());
            let (dw, dc) = dreadout[tie.w_at - np..tie.c_at + s - np].split_at_mut(c * s);
            linear_backward(
                Some(&mut dh[..n * c]),
                dw,
                Some(dc),
                &dr,
                &cache.inner.hidden(tie.block)[..n * c],
                &params[tie.w_at..tie.c_at],
                n,
                c,
                s,
            );
        }
        let (ties, dh) = (&self.ties, &cache.dh);
        let mut hook = |l: usize, d: &mut [R]| {
            for (tie, g) in ties.iter().zip(dh) {
                if tie.block == l {
                    d.iter_mut().zip(&g[..n * c]).for_each(|(x, &y)| *x += y);
                }
            }
        };
        self.inner.backward_hooked(&params[..np], tokens, b, &mut cache.inner, dout, &mut hook, dinner);
    }
}
