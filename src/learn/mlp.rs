//! The baseline class: a two-layer perceptron on the bag of (position, token) pairs.
//!
//! ```text
//! e  = Σ_t E[t, x_t] + b₁          (layer 1: linear in the one-hot (position, token) features, width H)
//! h₁ = gelu(e)
//! h₂ = gelu(h₁ W₂ + b₂)            (layer 2, H → H)
//! f  = h₂ W₃ + b₃                  (projection to P)
//! ```
//! Backward: `dh₂ = df W₃ᵀ`, `de₂ = gelu'(·) dh₂`, `dh₁ = de₂ W₂ᵀ`, `de = gelu'(e) dh₁`,
//! `dE[t, x_t] += de`, `db₁ += de` (kernels of [`super::linear`] and [`super::gelu`]).

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::encoder::Encoder;
use super::gelu::{gelu_backward, gelu_forward};
use super::linear::{linear_backward, linear_forward};
use super::real::Real;
use crate::rng::Rng;

/// Sizes of one MLP encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlpShape {
    pub vocab: usize,
    pub len: usize,
    pub hidden: usize,
    pub out: usize,
}

#[derive(Clone, Debug)]
pub struct Mlp {
    pub shape: MlpShape,
    emb: usize,
    b1: usize,
    w2: usize,
    b2: usize,
    w3: usize,
    b3: usize,
    total: usize,
}

impl Mlp {
    pub fn new(shape: MlpShape) -> Self {
        let MlpShape { vocab, len, hidden: h, out: p } = shape;
        let emb = 0;
        let b1 = len * vocab * h;
        let w2 = b1 + h;
        let b2 = w2 + h * h;
        let w3 = b2 + h;
        let b3 = w3 + h * p;
        Mlp { shape, emb, b1, w2, b2, w3, b3, total: b3 + p }
    }
}

pub struct MlpCache<R> {
    e: Vec<R>,
    h1: Vec<R>,
    e2: Vec<R>,
    h2: Vec<R>,
    dh2: Vec<R>,
    de2: Vec<R>,
    dh1: Vec<R>,
    de: Vec<R>,
}

impl<R: Real> Encoder<R> for Mlp {
    type Cache = MlpCache<R>;
    fn num_params(&self) -> usize {
        self.total
    }
    fn seq_len(&self) -> usize {
        self.shape.len
    }
    fn vocab(&self) -> usize {
        self.shape.vocab
    }
    fn out_dim(&self) -> usize {
        self.shape.out
    }
    /// Every weight `U(−1/√fan_in, 1/√fan_in)` (fan-in of layer 1: `T`, the active features).
    fn init(&self, rng: &mut Rng) -> Vec<R> {
        let s = self.shape;
        let mut w = vec![R::zero(); self.total];
        for (lo, hi, fan) in [(self.emb, self.b1, s.len), (self.w2, self.b2, s.hidden), (self.w3, self.b3, s.hidden)] {
            let bound = 1.0 / (fan as f64).sqrt();
            for x in &mut w[lo..hi] {
                *x = R::of(rng.random_range(-bound..bound));
            }
        }
        w
    }
    fn cache_len(&self, batch: usize) -> usize {
        8 * batch * self.shape.hidden
    }
    fn new_cache(&self, batch: usize) -> MlpCache<R> {
        let h = self.shape.hidden;
        let z = || vec![R::zero(); batch * h];
        MlpCache { e: z(), h1: z(), e2: z(), h2: z(), dh2: z(), de2: z(), dh1: z(), de: z() }
    }

    fn forward(&self, w: &[R], tokens: &[u32], b: usize, c: &mut MlpCache<R>, out: &mut [R]) {
        let MlpShape { vocab, len, hidden: h, out: p } = self.shape;
        // e = Σ_t E[t, x_t] + b₁
        for i in 0..b {
            let e = &mut c.e[i * h..(i + 1) * h];
            e.copy_from_slice(&w[self.b1..self.b1 + h]);
            for (t, &tok) in tokens[i * len..(i + 1) * len].iter().enumerate() {
                let at = self.emb + (t * vocab + tok as usize) * h;
                for (ej, &wj) in e.iter_mut().zip(&w[at..at + h]) {
                    *ej += wj;
                }
            }
        }
        gelu_forward(&mut c.h1[..b * h], &c.e[..b * h]);
        linear_forward(&mut c.e2, &c.h1, &w[self.w2..], Some(&w[self.b2..self.b2 + h]), b, h, h, R::zero());
        gelu_forward(&mut c.h2[..b * h], &c.e2[..b * h]);
        linear_forward(out, &c.h2, &w[self.w3..], Some(&w[self.b3..self.b3 + p]), b, h, p, R::zero());
    }

    fn backward(&self, w: &[R], tokens: &[u32], b: usize, c: &mut MlpCache<R>, dout: &[R], dw: &mut [R]) {
        let MlpShape { vocab, len, hidden: h, out: p } = self.shape;
        c.dh2[..b * h].iter_mut().for_each(|x| *x = R::zero());
        {
            let (dw3, db3) = dw[self.w3..].split_at_mut(h * p);
            linear_backward(Some(&mut c.dh2[..b * h]), dw3, Some(&mut db3[..p]), dout, &c.h2, &w[self.w3..], b, h, p);
        }
        gelu_backward(&mut c.de2[..b * h], &c.e2[..b * h], &c.dh2[..b * h]);
        c.dh1[..b * h].iter_mut().for_each(|x| *x = R::zero());
        {
            let (dw2, db2) = dw[self.w2..].split_at_mut(h * h);
            linear_backward(
                Some(&mut c.dh1[..b * h]),
                dw2,
                Some(&mut db2[..h]),
                &c.de2[..b * h],
                &c.h1,
                &w[self.w2..],
                b,
                h,
                h,
            );
        }
        gelu_backward(&mut c.de[..b * h], &c.e[..b * h], &c.dh1[..b * h]);
        // e = Σ_t E[t, x_t] + b₁  ⇒  dE[t, x_t] += de, db₁ += de
        for i in 0..b {
            let de = &c.de[i * h..(i + 1) * h];
            for (j, &g) in de.iter().enumerate() {
                dw[self.b1 + j] += g;
            }
            for (t, &tok) in tokens[i * len..(i + 1) * len].iter().enumerate() {
                let at = self.emb + (t * vocab + tok as usize) * h;
                for (d, &g) in dw[at..at + h].iter_mut().zip(de) {
                    *d += g;
                }
            }
        }
    }
}
