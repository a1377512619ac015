//! The paper's Joint Training class (the book, Reproducing the paper): each downstream model is
//! one transformer trained end to end on the raw tokens of both modalities, with no CLIP
//! encoder and no frozen feature. It is the baseline the frozen heads of
//! [`super::frozen_heads`] are measured against: what a model of the same kind reaches when it
//! sees the condition itself rather than a contrastive summary of it.
//!
//! Both models implement [`ConditionalHead`] with the condition given as the other modality's
//! tokens (as reals, one per position), so [`super::frozen_heads::HeadRunner`] trains them as it
//! trains the frozen heads. The body reads `N_c + N` positions, the condition's first:
//!
//! **Joint denoiser** (bidirectional; text `y` of `N_Y` tokens, noisy image `x̃` of `N_X`
//! values; `μ = (V−1)/2`, `s = V/2` as in the frozen denoiser):
//! ```text
//! e_t         = wte[y_t] + wpe[t]                                   t < N_Y
//! e_{N_Y + i} = wte[V_Y] + wpe[N_Y + i] + ((x̃_i − μ)/s) a           (V_Y: the image slot)
//! v̂_i = x̃_i + s o_{N_Y + i},   loss(sample) = Σ_i (v̂_i − v_i)²
//! ```
//! **Joint next-token model** (causal over the whole sequence; image `x` of `N_X` tokens):
//! ```text
//! e_t         = wte[x_t] + wpe[t]                                   t < N_X
//! e_{N_X + j} = wte[V_X + y_{j−1}] + wpe[N_X + j]                   (y_{−1}: start token V_X + V_Y)
//! log p̂(y_j | y_{<j}, x) = log_softmax(ℓ_{N_X + j}),   loss(sample) = −Σ_j log p̂(y_j | y_{<j}, x)
//! ```
//! Row `j` sees every image token and `y_{<j}` (tested). The paper's joint models have 9
//! blocks (width 128 for the denoiser, 256 for the next-token model); the sizes are a
//! [`HeadShape`] here as for the frozen heads.

use super::encoder::Encoder;
use super::frozen_heads::{head_cache, uniform_fill, ConditionalHead, HeadCache, HeadShape};
use super::real::Real;
use super::transformer::{Transformer, TransformerShape};
use crate::rng::Rng;

/// The condition's tokens `cond` (reals) of sample `b`, as token ids offset by `offset`.
fn condition_tokens<R: Real>(dst: &mut [u32], cond: &[R], offset: u32) {
    for (d, x) in dst.iter_mut().zip(cond) {
        *d = offset + x.to_u32().expect("a condition token");
    }
}

/// The joint denoiser of the module formula.
#[derive(Clone, Debug)]
pub struct JointDenoiser {
    pub body: Transformer,
    /// Text positions `N_Y` (the condition).
    pub cond_len: usize,
    /// Image positions `N_X` (the target).
    pub len: usize,
    /// The image leaves' alphabet `V` (values `0..V`).
    pub vocab: usize,
    /// Offset of `a`.
    a_at: usize,
    total: usize,
}

impl JointDenoiser {
    /// `len` image values of alphabet `vocab`, conditioned on `cond_len` text tokens of
    /// alphabet `text_vocab`.
    pub fn new(len: usize, vocab: usize, cond_len: usize, text_vocab: usize, shape: HeadShape) -> Self {
        let body = Transformer::new(TransformerShape {
            vocab: text_vocab + 1,
            len: cond_len + len,
            width: shape.width,
            layers: shape.layers,
            heads: shape.heads,
            out: 1,
        });
        let a_at = Encoder::<f64>::num_params(&body);
        JointDenoiser { a_at, total: a_at + shape.width, body, cond_len, len, vocab }
    }

    fn centre(&self) -> (f64, f64) {
        ((self.vocab as f64 - 1.0) / 2.0, self.vocab as f64 / 2.0)
    }
}

impl<R: Real> ConditionalHead<R> for JointDenoiser {
    fn num_params(&self) -> usize {
        self.total
    }
    fn seq_len(&self) -> usize {
        self.len
    }
    fn out_width(&self) -> usize {
        1
    }
    fn cond_dim(&self) -> usize {
        self.cond_len
    }
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        let mut w = self.body.init(rng);
        // The output projection starts at zero: the untrained denoiser is the identity.
        w[self.body.projection_range()].iter_mut().for_each(|x| *x = R::zero());
        w.resize(self.total, R::zero());
        uniform_fill(&mut w[self.a_at..], 1, rng);
        w
    }
    fn new_cache(&self, batch: usize) -> HeadCache<R> {
        let mut cache = head_cache(&self.body, batch);
        cache.picked = vec![R::zero(); batch * self.len];
        cache
    }
    fn outputs<'a>(&self, cache: &'a HeadCache<R>, b: usize) -> &'a [R] {
        &cache.picked[..b * self.len]
    }

    fn forward(&self, params: &[R], inp: &[R], cond: &[R], b: usize, cache: &mut HeadCache<R>) {
        let (nc, t, c) = (self.cond_len, self.len, self.body.shape.width);
        let l = nc + t;
        let (mu, s) = self.centre();
        let a = &params[self.a_at..self.a_at + c];
        let slot = (self.body.shape.vocab - 1) as u32;
        for k in 0..b {
            let tokens = &mut cache.tokens[k * l..(k + 1) * l];
            condition_tokens(&mut tokens[..nc], &cond[k * nc..(k + 1) * nc], 0);
            tokens[nc..].iter_mut().for_each(|x| *x = slot);
            let extra = &mut cache.extra[k * l * c..(k + 1) * l * c];
            extra[..nc * c].iter_mut().for_each(|x| *x = R::zero());
            // e_{N_Y + i} += u_i a
            for (i, e) in extra[nc * c..].chunks_exact_mut(c).enumerate() {
                let u = (inp[k * t + i] - R::of(mu)) / R::of(s);
                cache.inp[k * t + i] = u;
                e.iter_mut().zip(a).for_each(|(e, &ai)| *e = u * ai);
            }
        }
        self.body.forward_positions(
            &params[..self.a_at],
            &cache.tokens[..b * l],
            Some(&cache.extra[..b * l * c]),
            b,
            &mut cache.body,
            false,
            &mut cache.out[..b * l],
        );
        // v̂_i = x̃_i + s o_{N_Y + i}
        for k in 0..b {
            for i in 0..t {
                cache.picked[k * t + i] = inp[k * t + i] + R::of(s) * cache.out[k * l + nc + i];
            }
        }
    }

    fn loss_and_grad(
        &self,
        params: &[R],
        _cond: &[R],
        target: &[R],
        b: usize,
        scale: R,
        cache: &mut HeadCache<R>,
        dparams: &mut [R],
    ) -> f64 {
        let (nc, t, c) = (self.cond_len, self.len, self.body.shape.width);
        let l = nc + t;
        let s = self.centre().1;
        let mut loss = 0.0;
        cache.dout[..b * l].iter_mut().for_each(|d| *d = R::zero());
        for k in 0..b {
            for i in 0..t {
                // loss = Σ (v̂ − v)²,  ∂/∂o_{N_Y + i} = 2 (v̂_i − v_i) s
                let r = cache.picked[k * t + i] - target[k * t + i];
                loss += r.f64() * r.f64();
                cache.dout[k * l + nc + i] = scale * R::of(2.0 * s) * r;
            }
        }
        let (dbody, da) = dparams.split_at_mut(self.a_at);
        self.body.backward_positions(
            &params[..self.a_at],
            &cache.tokens[..b * l],
            b,
            &mut cache.body,
            &cache.dout[..b * l],
            Some(&mut cache.dextra[..b * l * c]),
            dbody,
        );
        // e_{N_Y + i} = u_i a + …  ⇒  da += Σ u_i dextra_{N_Y + i}
        for k in 0..b {
            for i in 0..t {
                let u = cache.inp[k * t + i];
                let d = &cache.dextra[(k * l + nc + i) * c..(k * l + nc + i + 1) * c];
                da[..c].iter_mut().zip(d).for_each(|(g, &x)| *g += u * x);
            }
        }
        loss
    }
}

/// The joint next-token model of the module formula.
#[derive(Clone, Debug)]
pub struct JointNextToken {
    pub body: Transformer,
    /// Image positions `N_X` (the condition).
    pub cond_len: usize,
    /// Image alphabet `V_X`.
    pub cond_vocab: usize,
    /// Text positions `N_Y` (the target).
    pub len: usize,
    /// Text alphabet `V_Y`.
    pub vocab: usize,
}

impl JointNextToken {
    /// `len` text tokens of alphabet `vocab`, conditioned on `cond_len` image tokens of
    /// alphabet `cond_vocab`.
    pub fn new(len: usize, vocab: usize, cond_len: usize, cond_vocab: usize, shape: HeadShape) -> Self {
        let body = Transformer::new(TransformerShape {
            vocab: cond_vocab + vocab + 1,
            len: cond_len + len,
            width: shape.width,
            layers: shape.layers,
            heads: shape.heads,
            out: vocab,
        });
        JointNextToken { body, cond_len, cond_vocab, len, vocab }
    }
}

impl<R: Real> ConditionalHead<R> for JointNextToken {
    fn num_params(&self) -> usize {
        Encoder::<R>::num_params(&self.body)
    }
    fn seq_len(&self) -> usize {
        self.len
    }
    fn out_width(&self) -> usize {
        self.vocab
    }
    fn cond_dim(&self) -> usize {
        self.cond_len
    }
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        let mut w = self.body.init(rng);
        // The output projection starts at zero: the untrained model is uniform.
        w[self.body.projection_range()].iter_mut().for_each(|x| *x = R::zero());
        w
    }
    fn new_cache(&self, batch: usize) -> HeadCache<R> {
        let mut cache = head_cache(&self.body, batch);
        cache.picked = vec![R::zero(); batch * self.len * self.vocab];
        cache
    }
    fn outputs<'a>(&self, cache: &'a HeadCache<R>, b: usize) -> &'a [R] {
        &cache.picked[..b * self.len * self.vocab]
    }

    /// `inp` holds the text tokens (as reals), `cond` the image tokens; the outputs are the rows
    /// `log p̂(· | y_{<j}, x)`.
    fn forward(&self, params: &[R], inp: &[R], cond: &[R], b: usize, cache: &mut HeadCache<R>) {
        let (nc, t, c, v) = (self.cond_len, self.len, self.body.shape.width, self.vocab);
        let l = nc + t;
        let offset = self.cond_vocab as u32;
        for k in 0..b {
            let tokens = &mut cache.tokens[k * l..(k + 1) * l];
            condition_tokens(&mut tokens[..nc], &cond[k * nc..(k + 1) * nc], 0);
            // input at text position j: y_{j−1} (offset by V_X), the start token at j = 0
            tokens[nc] = offset + v as u32;
            condition_tokens(&mut tokens[nc + 1..], &inp[k * t..(k + 1) * t - 1], offset);
        }
        cache.extra[..b * l * c].iter_mut().for_each(|x| *x = R::zero());
        self.body.forward_positions(
            params,
            &cache.tokens[..b * l],
            Some(&cache.extra[..b * l * c]),
            b,
            &mut cache.body,
            true,
            &mut cache.out[..b * l * v],
        );
        // log_softmax of the text positions' rows
        for k in 0..b {
            for j in 0..t {
                let row = &cache.out[(k * l + nc + j) * v..(k * l + nc + j + 1) * v];
                let m = row.iter().copied().fold(R::neg_infinity(), R::max);
                let lse = m + row.iter().map(|&x| (x - m).exp()).sum::<R>().ln();
                let dst = &mut cache.picked[(k * t + j) * v..(k * t + j + 1) * v];
                dst.iter_mut().zip(row).for_each(|(d, &x)| *d = x - lse);
            }
        }
    }

    fn loss_and_grad(
        &self,
        params: &[R],
        _cond: &[R],
        target: &[R],
        b: usize,
        scale: R,
        cache: &mut HeadCache<R>,
        dparams: &mut [R],
    ) -> f64 {
        let (nc, t, c, v) = (self.cond_len, self.len, self.body.shape.width, self.vocab);
        let l = nc + t;
        let mut loss = 0.0;
        cache.dout[..b * l * v].iter_mut().for_each(|d| *d = R::zero());
        for k in 0..b {
            for j in 0..t {
                // loss = −log p̂(y_j),  ∂/∂ℓ = softmax(ℓ) − e_{y_j}
                let y = target[k * t + j].to_usize().expect("a token");
                let row = &cache.picked[(k * t + j) * v..(k * t + j + 1) * v];
                loss -= row[y].f64();
                let drow = &mut cache.dout[(k * l + nc + j) * v..(k * l + nc + j + 1) * v];
                for (i, (d, &lp)) in drow.iter_mut().zip(row).enumerate() {
                    *d = scale * (lp.exp() - if i == y { R::one() } else { R::zero() });
                }
            }
        }
        self.body.backward_positions(
            params,
            &cache.tokens[..b * l],
            b,
            &mut cache.body,
            &cache.dout[..b * l * v],
            Some(&mut cache.dextra[..b * l * c]),
            dparams,
        );
        loss
    }
}
