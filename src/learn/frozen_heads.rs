//! Downstream heads on frozen CLIP features (the book, T8-T10, §8): a conditional denoiser on the text
//! features `g(y)` and a next-token model on the image features `f(x)`. Both are per-position
//! transformers ([`Transformer::forward_positions`]) whose condition enters as an input added
//! at every position; forward and backward are explicit (checked against finite differences in
//! tests/reproduce_learned.rs), and [`HeadRunner`] runs a batch in fixed chunks in parallel,
//! reducing the gradients in chunk order (the same numbers whatever the thread count).
//!
//! **Denoiser** (noise model (a), σ given): the leaves' values `v_t ∈ {0, …, V−1}` are seen as
//! `x̃_t = v_t + σ ε_t`. With `μ = (V−1)/2`, `s = V/2` (a fixed standardisation):
//! ```text
//! e_t   = ((x̃_t − μ)/s) a + g(y) W_g + c_g                  (input at position t; a, c_g ∈ R^C)
//! o_t   = Transformer_positions(e)_t ∈ R                     (bidirectional, output width 1)
//! v̂_t  = x̃_t + s o_t,    loss(sample) = Σ_t (v̂_t − v_t)²   (squared error summed over leaves)
//! ```
//! The output is a correction of the noisy value, and both heads start their output projection
//! at zero: the untrained denoiser is the identity (risk `N σ²`) and the untrained next-token
//! model is uniform (cross-entropy `log V`), so a short training starts from those baselines.
//! **Next-token model**: causal attention, input token at position `t` is `y_{t−1}` (a start
//! token `V` at `t = 0`), and the image's features at every position:
//! ```text
//! e_t = wte[y_{t−1}] + wpe[t] + f(x) W_f + c_f,   ℓ_t = Transformer_causal(e)_t ∈ R^V
//! log p̂(y_t | y_{<t}, x) = log_softmax(ℓ_t),      loss(sample) = −Σ_t log p̂(y_t | y_{<t}, x)
//! ```
//! Row `t` depends on `y_{<t}` and `x` only (causal mask; tested).

use rayon::prelude::*;

use super::encoder::{Encoder, CHUNK};
use super::linear::{linear_backward, linear_forward};
use super::real::Real;
use super::transformer::{Transformer, TransformerCache, TransformerShape};
use crate::rng::Rng;

/// Sizes of a head's transformer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HeadShape {
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
}

/// One chunk's forward cache and scratch.
pub struct HeadCache<R> {
    pub(super) body: TransformerCache<R>,
    pub(super) tokens: Vec<u32>,
    /// The denoiser's standardised inputs `u_t`.
    pub(super) inp: Vec<R>,
    pub(super) extra: Vec<R>,
    pub(super) out: Vec<R>,
    pub(super) dout: Vec<R>,
    pub(super) dextra: Vec<R>,
    /// The outputs at the target's positions when the body also reads the condition's
    /// positions ([`super::joint_heads`]; empty otherwise).
    pub(super) picked: Vec<R>,
}

/// A per-position model with a condition vector: the interface [`HeadRunner`] drives.
pub trait ConditionalHead<R: Real>: Sync {
    fn num_params(&self) -> usize;
    /// Positions `T` per sample.
    fn seq_len(&self) -> usize;
    /// Outputs per position (1 for the denoiser, `V` for the next-token model).
    fn out_width(&self) -> usize;
    /// Condition dimension `P`.
    fn cond_dim(&self) -> usize;
    fn init(&self, rng: &mut Rng) -> Vec<R>;
    fn new_cache(&self, batch: usize) -> HeadCache<R>;
    /// Per-position outputs (`B·T × out_width`) for `b` samples with inputs `inp` (`B × T`:
    /// noisy values, or text tokens as reals) and conditions `cond` (`B × P`), left in the cache.
    fn forward(&self, params: &[R], inp: &[R], cond: &[R], b: usize, cache: &mut HeadCache<R>);
    /// The outputs of the last forward pass.
    fn outputs<'a>(&self, cache: &'a HeadCache<R>, b: usize) -> &'a [R] {
        &cache.out[..b * self.seq_len() * self.out_width()]
    }
    /// After [`ConditionalHead::forward`]: the summed loss of the `b` samples against `target`
    /// (`B × T`), accumulating `scale ×` its gradient into `dparams`.
    #[allow(clippy::too_many_arguments)]
    fn loss_and_grad(
        &self,
        params: &[R],
        cond: &[R],
        target: &[R],
        b: usize,
        scale: R,
        cache: &mut HeadCache<R>,
        dparams: &mut [R],
    ) -> f64;
}

/// The body's cache and the head's buffers for `batch` samples.
pub(super) fn head_cache<R: Real>(body: &Transformer, batch: usize) -> HeadCache<R> {
    let s = body.shape;
    let n = batch * s.len;
    HeadCache {
        body: Encoder::<R>::new_cache(body, batch),
        tokens: vec![0; n],
        inp: vec![R::zero(); n],
        extra: vec![R::zero(); n * s.width],
        out: vec![R::zero(); n * s.out],
        dout: vec![R::zero(); n * s.out],
        dextra: vec![R::zero(); n * s.width],
        picked: vec![],
    }
}

/// `extra_{b,t} += cond_b W + c` for every position (`W` is `P × C` at `w`, `c` at `w + P·C`).
fn add_condition<R: Real>(extra: &mut [R], cond: &[R], params: &[R], w: usize, p: usize, c: usize, t: usize) {
    let mut row = vec![R::zero(); c];
    for (cb, e) in cond.chunks_exact(p).zip(extra.chunks_exact_mut(t * c)) {
        // row = cond_b W + c
        linear_forward(
            &mut row,
            cb,
            &params[w..w + p * c],
            Some(&params[w + p * c..w + p * c + c]),
            1,
            p,
            c,
            R::zero(),
        );
        for et in e.chunks_exact_mut(c) {
            et.iter_mut().zip(&row).for_each(|(x, &y)| *x += y);
        }
    }
}

/// Backward of [`add_condition`]: `dW += cond_bᵀ Σ_t dextra_{b,t}`, `dc += Σ dextra`.
fn add_condition_backward<R: Real>(
    dextra: &[R],
    cond: &[R],
    dparams: &mut [R],
    w: usize,
    p: usize,
    c: usize,
    t: usize,
) {
    let (dw, dc) = dparams[w..w + p * c + c].split_at_mut(p * c);
    for (cb, d) in cond.chunks_exact(p).zip(dextra.chunks_exact(t * c)) {
        let mut summed = vec![R::zero(); c];
        for dt in d.chunks_exact(c) {
            summed.iter_mut().zip(dt).for_each(|(s, &x)| *s += x);
        }
        linear_backward(None, dw, Some(dc), &summed, cb, &[], 1, p, c);
    }
}

pub(super) fn uniform_fill<R: Real>(w: &mut [R], fan_in: usize, rng: &mut Rng) {
    use rand::Rng as _;
    let bound = 1.0 / (fan_in as f64).sqrt();
    w.iter_mut().for_each(|x| *x = R::of(rng.random_range(-bound..bound)));
}

/// The conditional denoiser of the module formula.
#[derive(Clone, Debug)]
pub struct DenoiserHead {
    pub body: Transformer,
    /// Condition dimension `P`.
    pub cond: usize,
    /// The leaves' alphabet `V` (values `0..V`).
    pub vocab: usize,
    /// Offsets of `a`, `W_g`, `c_g`.
    a_at: usize,
    w_at: usize,
    total: usize,
}

impl DenoiserHead {
    pub fn new(len: usize, vocab: usize, cond: usize, shape: HeadShape) -> Self {
        let body = Transformer::new(TransformerShape {
            vocab: 1,
            len,
            width: shape.width,
            layers: shape.layers,
            heads: shape.heads,
            out: 1,
        });
        let a_at = Encoder::<f64>::num_params(&body);
        let w_at = a_at + shape.width;
        let total = w_at + cond * shape.width + shape.width;
        DenoiserHead { body, cond, vocab, a_at, w_at, total }
    }

    /// `(μ, s)` of the standardisation.
    fn centre(&self) -> (f64, f64) {
        ((self.vocab as f64 - 1.0) / 2.0, self.vocab as f64 / 2.0)
    }
}

impl<R: Real> ConditionalHead<R> for DenoiserHead {
    fn num_params(&self) -> usize {
        self.total
    }
    fn seq_len(&self) -> usize {
        self.body.shape.len
    }
    fn out_width(&self) -> usize {
        1
    }
    fn cond_dim(&self) -> usize {
        self.cond
    }
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        let c = self.body.shape.width;
        let mut w = self.body.init(rng);
        w[self.body.projection_range()].iter_mut().for_each(|x| *x = R::zero());
        w.resize(self.total, R::zero());
        uniform_fill(&mut w[self.a_at..self.w_at], 1, rng);
        uniform_fill(&mut w[self.w_at..self.w_at + self.cond * c], self.cond, rng);
        w
    }
    fn new_cache(&self, batch: usize) -> HeadCache<R> {
        head_cache(&self.body, batch)
    }

    fn forward(&self, params: &[R], inp: &[R], cond: &[R], b: usize, cache: &mut HeadCache<R>) {
        let (t, c) = (self.body.shape.len, self.body.shape.width);
        let n = b * t;
        let (mu, s) = self.centre();
        // e_t = ((x̃_t − μ)/s) a + g W_g + c_g
        let a = &params[self.a_at..self.w_at];
        for ((e, &x), u) in cache.extra[..n * c].chunks_exact_mut(c).zip(&inp[..n]).zip(cache.inp.iter_mut()) {
            *u = (x - R::of(mu)) / R::of(s);
            e.iter_mut().zip(a).for_each(|(e, &ai)| *e = *u * ai);
        }
        add_condition(&mut cache.extra[..n * c], &cond[..b * self.cond], params, self.w_at, self.cond, c, t);
        cache.tokens[..n].iter_mut().for_each(|x| *x = 0);
        self.body.forward_positions(
            &params[..self.a_at],
            &cache.tokens[..n],
            Some(&cache.extra[..n * c]),
            b,
            &mut cache.body,
            false,
            &mut cache.out[..n],
        );
        // v̂ = x̃ + s o
        cache.out[..n].iter_mut().zip(&inp[..n]).for_each(|(o, &x)| *o = x + R::of(s) * *o);
    }

    fn loss_and_grad(
        &self,
        params: &[R],
        cond: &[R],
        target: &[R],
        b: usize,
        scale: R,
        cache: &mut HeadCache<R>,
        dparams: &mut [R],
    ) -> f64 {
        let (t, c) = (self.body.shape.len, self.body.shape.width);
        let n = b * t;
        let s = self.centre().1;
        let mut loss = 0.0;
        for ((d, &o), &v) in cache.dout[..n].iter_mut().zip(&cache.out[..n]).zip(&target[..n]) {
            // loss = Σ (v̂ − v)²,  ∂/∂o = 2 (v̂ − v) s
            let r = o - v;
            loss += r.f64() * r.f64();
            *d = scale * R::of(2.0 * s) * r;
        }
        let (dbody, dhead) = dparams.split_at_mut(self.a_at);
        self.body.backward_positions(
            &params[..self.a_at],
            &cache.tokens[..n],
            b,
            &mut cache.body,
            &cache.dout[..n],
            Some(&mut cache.dextra[..n * c]),
            dbody,
        );
        // e_t = u_t a + …  ⇒  da += Σ_t u_t dextra_t
        let da = &mut dhead[..c];
        for (d, &u) in cache.dextra[..n * c].chunks_exact(c).zip(&cache.inp[..n]) {
            da.iter_mut().zip(d).for_each(|(g, &x)| *g += u * x);
        }
        add_condition_backward(&cache.dextra[..n * c], &cond[..b * self.cond], dparams, self.w_at, self.cond, c, t);
        loss
    }
}

/// The next-token model of the module formula.
#[derive(Clone, Debug)]
pub struct NextTokenHead {
    pub body: Transformer,
    pub cond: usize,
    /// Text vocabulary `V` (the start token is `V`).
    pub vocab: usize,
    w_at: usize,
    total: usize,
}

impl NextTokenHead {
    pub fn new(len: usize, vocab: usize, cond: usize, shape: HeadShape) -> Self {
        let body = Transformer::new(TransformerShape {
            vocab: vocab + 1,
            len,
            width: shape.width,
            layers: shape.layers,
            heads: shape.heads,
            out: vocab,
        });
        let w_at = Encoder::<f64>::num_params(&body);
        let total = w_at + cond * shape.width + shape.width;
        NextTokenHead { body, cond, vocab, w_at, total }
    }
}

impl<R: Real> ConditionalHead<R> for NextTokenHead {
    fn num_params(&self) -> usize {
        self.total
    }
    fn seq_len(&self) -> usize {
        self.body.shape.len
    }
    fn out_width(&self) -> usize {
        self.vocab
    }
    fn cond_dim(&self) -> usize {
        self.cond
    }
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        let c = self.body.shape.width;
        let mut w = self.body.init(rng);
        w[self.body.projection_range()].iter_mut().for_each(|x| *x = R::zero());
        w.resize(self.total, R::zero());
        uniform_fill(&mut w[self.w_at..self.w_at + self.cond * c], self.cond, rng);
        w
    }
    fn new_cache(&self, batch: usize) -> HeadCache<R> {
        head_cache(&self.body, batch)
    }

    /// `inp` holds the text tokens (as reals); the outputs are the rows `log p̂(· | y_{<t}, x)`.
    fn forward(&self, params: &[R], inp: &[R], cond: &[R], b: usize, cache: &mut HeadCache<R>) {
        let (t, c, v) = (self.body.shape.len, self.body.shape.width, self.vocab);
        let n = b * t;
        // input token at t: y_{t−1}, the start token V at t = 0
        for (dst, src) in cache.tokens[..n].chunks_exact_mut(t).zip(inp[..n].chunks_exact(t)) {
            dst[0] = v as u32;
            for (d, x) in dst[1..].iter_mut().zip(src) {
                *d = x.to_u32().expect("a token");
            }
        }
        cache.extra[..n * c].iter_mut().for_each(|x| *x = R::zero());
        add_condition(&mut cache.extra[..n * c], &cond[..b * self.cond], params, self.w_at, self.cond, c, t);
        self.body.forward_positions(
            &params[..self.w_at],
            &cache.tokens[..n],
            Some(&cache.extra[..n * c]),
            b,
            &mut cache.body,
            true,
            &mut cache.out[..n * v],
        );
        // log_softmax per row
        for row in cache.out[..n * v].chunks_exact_mut(v) {
            let m = row.iter().copied().fold(R::neg_infinity(), R::max);
            let lse = m + row.iter().map(|&x| (x - m).exp()).sum::<R>().ln();
            row.iter_mut().for_each(|x| *x -= lse);
        }
    }

    fn loss_and_grad(
        &self,
        params: &[R],
        cond: &[R],
        target: &[R],
        b: usize,
        scale: R,
        cache: &mut HeadCache<R>,
        dparams: &mut [R],
    ) -> f64 {
        let (t, c, v) = (self.body.shape.len, self.body.shape.width, self.vocab);
        let n = b * t;
        let mut loss = 0.0;
        for ((row, drow), &y) in
            cache.out[..n * v].chunks_exact(v).zip(cache.dout[..n * v].chunks_exact_mut(v)).zip(target)
        {
            // loss = −log p̂(y_t),  ∂/∂ℓ_t = softmax(ℓ_t) − e_{y_t}
            let y = y.to_usize().expect("a token");
            loss -= row[y].f64();
            for (k, (d, &lp)) in drow.iter_mut().zip(row).enumerate() {
                *d = scale * (lp.exp() - if k == y { R::one() } else { R::zero() });
            }
        }
        let (dbody, _) = dparams.split_at_mut(self.w_at);
        self.body.backward_positions(
            &params[..self.w_at],
            &cache.tokens[..n],
            b,
            &mut cache.body,
            &cache.dout[..n * v],
            Some(&mut cache.dextra[..n * c]),
            dbody,
        );
        add_condition_backward(&cache.dextra[..n * c], &cond[..b * self.cond], dparams, self.w_at, self.cond, c, t);
        loss
    }
}

/// Runs a [`ConditionalHead`] over a batch in chunks of [`CHUNK`] samples, in parallel, with a
/// cache and a gradient buffer per chunk; the chunk gradients are summed in chunk order.
pub struct HeadRunner<R: Real> {
    chunks: Vec<(HeadCache<R>, Vec<R>)>,
}

impl<R: Real> Default for HeadRunner<R> {
    fn default() -> Self {
        HeadRunner { chunks: vec![] }
    }
}

impl<R: Real> HeadRunner<R> {
    /// The mean loss per sample of a batch (`inp`, `target`: `B × T`; `cond`: `B × P`) and its
    /// gradient (overwritten into `grad`).
    pub fn loss_and_grad<H: ConditionalHead<R>>(
        &mut self,
        head: &H,
        params: &[R],
        inp: &[R],
        cond: &[R],
        target: &[R],
        grad: &mut [R],
    ) -> f64 {
        let (t, p) = (head.seq_len(), head.cond_dim());
        let b = inp.len() / t;
        let n_chunks = b.div_ceil(CHUNK);
        while self.chunks.len() < n_chunks {
            self.chunks.push((head.new_cache(CHUNK), vec![R::zero(); head.num_params()]));
        }
        let scale = R::of(1.0 / b as f64);
        let losses: Vec<f64> = self.chunks[..n_chunks]
            .par_iter_mut()
            .zip(inp.par_chunks(CHUNK * t))
            .zip(cond.par_chunks(CHUNK * p))
            .zip(target.par_chunks(CHUNK * t))
            .map(|((((cache, g), x), cd), y)| {
                let bc = x.len() / t;
                g.iter_mut().for_each(|v| *v = R::zero());
                head.forward(params, x, cd, bc, cache);
                head.loss_and_grad(params, cd, y, bc, scale, cache, g)
            })
            .collect();
        let chunks = &self.chunks[..n_chunks];
        grad.par_chunks_mut(4096).enumerate().for_each(|(i, dst)| {
            let (lo, len) = (i * 4096, dst.len());
            dst.iter_mut().for_each(|g| *g = R::zero());
            for (_, c) in chunks {
                dst.iter_mut().zip(&c[lo..lo + len]).for_each(|(g, &x)| *g += x);
            }
        });
        losses.iter().sum::<f64>() / b as f64
    }

    /// The outputs (`B·T × out_width`) of a batch, forward only.
    pub fn outputs<H: ConditionalHead<R>>(&mut self, head: &H, params: &[R], inp: &[R], cond: &[R]) -> Vec<R> {
        let (t, p, w) = (head.seq_len(), head.cond_dim(), head.out_width());
        let b = inp.len() / t;
        let n_chunks = b.div_ceil(CHUNK);
        while self.chunks.len() < n_chunks {
            self.chunks.push((head.new_cache(CHUNK), vec![R::zero(); head.num_params()]));
        }
        let mut out = vec![R::zero(); b * t * w];
        self.chunks[..n_chunks]
            .par_iter_mut()
            .zip(inp.par_chunks(CHUNK * t))
            .zip(cond.par_chunks(CHUNK * p))
            .zip(out.par_chunks_mut(CHUNK * t * w))
            .for_each(|((((cache, _), x), cd), o)| {
                let bc = x.len() / t;
                head.forward(params, x, cd, bc, cache);
                o.copy_from_slice(head.outputs(cache, bc));
            });
        out
    }
}
