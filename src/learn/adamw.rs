//! AdamW with linear warm-up and cosine decay, and global gradient-norm clipping.
//!
//! ```text
//! lr(s) = lr_max (s+1)/W                                         s < W   (warm-up)
//! lr(s) = lr_min + ½ (lr_max − lr_min)(1 + cos(π (s−W)/(S−W)))   s ≥ W   (cosine to step S)
//! g ← g · min(1, c/‖g‖₂)                                                 (clipping, all blocks)
//! m ← β₁ m + (1−β₁) g,   v ← β₂ v + (1−β₂) g²
//! θ ← θ − lr(s) ( m/(1−β₁ᵗ) / (√(v/(1−β₂ᵗ)) + ε) + λ θ )               (λ = 0 for the head)
//! ```
//! β₁ = 0.9, β₂ = 0.999, ε = 1e-8 (PyTorch's defaults). The schedule depends on the step only
//! (never on wall time), so a run is reproducible from its seed and step count.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::clip::Params;
use super::real::Real;

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// The optimiser's hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub lr: f64,
    pub lr_min: f64,
    pub warmup: usize,
    /// Horizon `S` of the cosine.
    pub steps: usize,
    pub weight_decay: f64,
    /// Maximum global gradient norm (`0`: no clipping).
    pub clip: f64,
}

impl Schedule {
    /// `lr(s)` of the module formula.
    pub fn lr_at(&self, s: usize) -> f64 {
        if s < self.warmup {
            return self.lr * (s + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup).max(1);
        let progress = ((s - self.warmup) as f64 / span as f64).min(1.0);
        self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// First and second moments, shaped like the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW<R> {
    pub m: Params<R>,
    pub v: Params<R>,
    /// Updates done so far (`t`).
    pub t: usize,
}

impl<R: Real> AdamW<R> {
    pub fn new(like: &Params<R>) -> Self {
        AdamW { m: like.zeros_like(), v: like.zeros_like(), t: 0 }
    }

    /// One update at step `s` (clips `grads` in place); returns the gradient norm before clipping.
    pub fn step(&mut self, sched: &Schedule, s: usize, params: &mut Params<R>, grads: &mut Params<R>) -> f64 {
        // ‖g‖₂ over every block, accumulated in f64 in a fixed order.
        let norm = grads.blocks().iter().map(|b| b.iter().map(|g| g.f64() * g.f64()).sum::<f64>()).sum::<f64>().sqrt();
        let scale = if sched.clip > 0.0 && norm > sched.clip { sched.clip / norm } else { 1.0 };
        self.t += 1;
        let lr = sched.lr_at(s);
        let (c1, c2) = (1.0 - BETA1.powi(self.t as i32), 1.0 - BETA2.powi(self.t as i32));
        let [pi, pt, ph] = params.blocks_mut();
        let [gi, gt, gh] = grads.blocks_mut();
        let [mi, mt, mh] = self.m.blocks_mut();
        let [vi, vt, vh] = self.v.blocks_mut();
        for (p, g, m, v, decay) in
            [(pi, gi, mi, vi, sched.weight_decay), (pt, gt, mt, vt, sched.weight_decay), (ph, gh, mh, vh, 0.0)]
        {
            let (b1, b2, sc, lr, wd, c1, c2, eps) =
                (R::of(BETA1), R::of(BETA2), R::of(scale), R::of(lr), R::of(decay), R::of(c1), R::of(c2), R::of(EPS));
            p.par_iter_mut().zip(g.par_iter_mut()).zip(m.par_iter_mut()).zip(v.par_iter_mut()).for_each(
                |(((p, g), m), v)| {
                    *g *= sc;
                    *m = b1 * *m + (R::one() - b1) * *g;
                    *v = b2 * *v + (R::one() - b2) * *g * *g;
                    *p -= lr * ((*m / c1) / ((*v / c2).sqrt() + eps) + wd * *p);
                },
            );
        }
        norm
    }
}
