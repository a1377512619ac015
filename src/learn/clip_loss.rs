//! The CLIP loss over a batch, in either batch scheme, forward and backward (the book, T2-T4, §8).
//!
//! A batch is a list of scored (image, text) pairs and two lists of *groups* of `K` pair
//! indices, the positive first: one group per anchor image (direction X→Y: the anchor against
//! `K` texts) and one per anchor text (Y→X). The loss is
//! ```text
//! L = ½ ( mean_g CE(g) over X→Y groups + mean_g CE(g) over Y→X groups ),
//! CE(g) = −S_{g_0} + log Σ_{k<K} exp S_{g_k}
//! ```
//! and its gradient `∂CE(g)/∂S_{g_k} = softmax(S_g)_k − [k = 0]`, scaled by `½ / #groups`.
//!
//! * [`Scheme::InBatch`] (open_clip's): all `B²` pairs, `K = B`; group `i` of X→Y is image `i`
//!   against every text, with text `i` the positive (symmetric cross-entropy of the score
//!   matrix).
//! * [`Scheme::KWay`] (the paper's `K`): `B` positive pairs and, per direction, `K − 1`
//!   independent negatives for each: images `B..B + B(K−1)` and texts likewise are extra
//!   independent draws, so each group is a fresh i.i.d. batch of `K` as in the definition of
//!   `ℓ_K`. The two directions share the `B` positives.
//! * [`Scheme::KWay`] with `split` (the paper's layout exactly): each direction has its own `B`
//!   positives, pairs `0..B` for X→Y and `B..2B` for Y→X, then the `B(K−1)` negatives; `B(K+1)`
//!   images and texts in all. Both layouts are unbiased for the same `ℓ_K`; the split one
//!   averages over twice as many positive pairs per step.

use serde::{Deserialize, Serialize};

use super::real::Real;

/// How a batch is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Scheme {
    /// In-batch negatives: `K` = the batch size.
    InBatch,
    /// Each positive with `k − 1` independent negatives per direction; `split`: the two
    /// directions have separate positives (written only when set, so configurations and
    /// settings recorded before it existed read back unchanged).
    KWay {
        k: usize,
        #[serde(default, skip_serializing_if = "is_false")]
        split: bool,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The pairs to score and the groups of the two directions.
#[derive(Clone, Debug, Default)]
pub struct Groups {
    pub k: usize,
    pub pairs: Vec<(u32, u32)>,
    /// `K` pair indices per anchor image, positive first.
    pub x2y: Vec<u32>,
    /// `K` pair indices per anchor text, positive first.
    pub y2x: Vec<u32>,
}

impl Scheme {
    /// The paper's layout: `K = 4` independent negatives, separate positives per direction.
    pub const PAPER: Scheme = Scheme::KWay { k: 4, split: true };

    /// Images (and texts) a batch of `b` positive pairs per direction needs: `b`, `b·K`, or
    /// `b·(K+1)` when split.
    pub fn encoded(&self, b: usize) -> usize {
        match *self {
            Scheme::InBatch => b,
            Scheme::KWay { k, split } => b * (k + usize::from(split)),
        }
    }

    /// The negatives in words, as the run notes and benchmark reports print them.
    pub fn describe(&self) -> String {
        match *self {
            Scheme::InBatch => "in-batch".to_string(),
            Scheme::KWay { k, split: false } => format!("K = {k} independent"),
            Scheme::KWay { k, split: true } => format!("K = {k} independent, separate positives per direction"),
        }
    }

    /// The positive pairs a batch of `b` per direction holds: `2b` when split, else `b`.
    pub fn positives(&self, b: usize) -> usize {
        match *self {
            Scheme::KWay { split: true, .. } => 2 * b,
            _ => b,
        }
    }

    /// The positive pairs per direction `b` of a batch of `n` encoded samples (the inverse of
    /// [`Scheme::encoded`], rounded down).
    pub fn per_direction(&self, n: usize) -> usize {
        match *self {
            Scheme::InBatch => n,
            Scheme::KWay { k, split } => n / (k + usize::from(split)).max(1),
        }
    }

    /// The groups of a batch of `b` positive pairs per direction (for K-way, the `P` =
    /// [`Scheme::positives`] positives come first: X→Y's anchors are `0..b` and Y→X's are
    /// `P − b..P`, the same ones unless split; the negatives of anchor `i` are `P + i(K−1) ..` on
    /// the other side).
    pub fn groups(&self, b: usize) -> Groups {
        match *self {
            Scheme::InBatch => {
                let pairs = (0..b as u32).flat_map(|i| (0..b as u32).map(move |j| (i, j))).collect();
                let at = |i: usize, j: usize| (i * b + j) as u32;
                let mut x2y = Vec::with_capacity(b * b);
                let mut y2x = Vec::with_capacity(b * b);
                for i in 0..b {
                    x2y.push(at(i, i));
                    x2y.extend((0..b).filter(|&j| j != i).map(|j| at(i, j)));
                    y2x.push(at(i, i));
                    y2x.extend((0..b).filter(|&j| j != i).map(|j| at(j, i)));
                }
                Groups { k: b, pairs, x2y, y2x }
            }
            Scheme::KWay { k, .. } => {
                let p = self.positives(b);
                let mut pairs: Vec<(u32, u32)> = (0..p as u32).map(|i| (i, i)).collect();
                let negative = |i: usize, m: usize| (p + i * (k - 1) + m) as u32;
                let (mut x2y, mut y2x) = (vec![], vec![]);
                for i in 0..b {
                    x2y.push(i as u32);
                    for m in 0..k - 1 {
                        x2y.push(pairs.len() as u32);
                        pairs.push((i as u32, negative(i, m)));
                    }
                }
                // Y→X's anchor texts: the same positives, or the second `b` when split.
                let anchor = |i: usize| (p - b + i) as u32;
                for i in 0..b {
                    y2x.push(anchor(i));
                    for m in 0..k - 1 {
                        y2x.push(pairs.len() as u32);
                        pairs.push((negative(i, m), anchor(i)));
                    }
                }
                Groups { k, pairs, x2y, y2x }
            }
        }
    }
}

/// The loss value and its two one-sided parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossParts {
    /// `L = (x2y + y2x)/2`.
    pub loss: f64,
    pub x2y: f64,
    pub y2x: f64,
}

/// `L` of the module formula; writes `dscores = ∂L/∂scores` (overwritten).
pub fn clip_loss<R: Real>(scores: &[R], groups: &Groups, dscores: &mut Vec<R>) -> LossParts {
    dscores.clear();
    dscores.resize(scores.len(), R::zero());
    let mut side = |list: &[u32]| -> f64 {
        let n = list.len() / groups.k;
        let weight = R::of(0.5 / n as f64);
        let mut total = 0.0;
        for g in list.chunks_exact(groups.k) {
            let m = g.iter().map(|&q| scores[q as usize]).fold(R::neg_infinity(), R::max);
            let sum: R = g.iter().map(|&q| (scores[q as usize] - m).exp()).sum();
            let lse = m + sum.ln();
            // CE = −S_{g_0} + log Σ_k exp S_{g_k}
            total += (lse - scores[g[0] as usize]).f64();
            // ∂CE/∂S_{g_k} = softmax_k − [k = 0]
            for (k, &q) in g.iter().enumerate() {
                let soft = (scores[q as usize] - lse).exp();
                dscores[q as usize] += weight * if k == 0 { soft - R::one() } else { soft };
            }
        }
        total / n as f64
    };
    let x2y = side(&groups.x2y);
    let y2x = side(&groups.y2x);
    LossParts { loss: 0.5 * (x2y + y2x), x2y, y2x }
}
