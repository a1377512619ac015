//! Multi-head self-attention (no mask: an encoder sees every position), forward and backward.
//!
//! Input `qkv` is `B × T × 3C`: per position the query, key and value, each split into `NH`
//! heads of size `hs = C / NH`. Per sample `b` and head `h`, with `Q, K, V ∈ R^{T × hs}`:
//! ```text
//! A = softmax_rows(Q Kᵀ / √hs)          (T × T, cached)
//! Y = A V                                (written to head h's columns of out, B × T × C)
//! ```
//! Backward, given `dY`:
//! ```text
//! dA = dY Vᵀ,   dV = Aᵀ dY
//! dP_ts = A_ts (dA_ts − Σ_s' A_ts' dA_ts')    (softmax backward; P the pre-softmax scores)
//! dQ = dP K / √hs,   dK = dPᵀ Q / √hs
//! ```

use multiversion::multiversion;

use super::bf16::Products;
use super::real::{gemm_with, rm, tr, Real, Strides};

/// Shape of one attention call, and how its products multiply ([`Products`]).
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub b: usize,
    pub t: usize,
    pub c: usize,
    pub nh: usize,
    pub products: Products,
}

impl AttnShape {
    fn hs(&self) -> usize {
        self.c / self.nh
    }
    /// Offset of head `h`'s query (`part = 0`), key (1) or value (2) of sample `b` in `qkv`.
    fn at(&self, b: usize, part: usize, h: usize) -> usize {
        b * self.t * 3 * self.c + part * self.c + h * self.hs()
    }
    /// Offset of the `(b, h)` attention matrix in the cache.
    fn att_at(&self, b: usize, h: usize) -> usize {
        (b * self.nh + h) * self.t * self.t
    }
}

/// `out = attention(qkv)`; `att` (B × NH × T × T) caches the softmax probabilities.
pub fn attention_forward<R: Real>(out: &mut [R], att: &mut [R], qkv: &[R], s: AttnShape) {
    attention_forward_masked(out, att, qkv, s, false);
}

/// [`attention_forward`], and with `causal` position `t` attends to positions `s ≤ t` only:
/// `A_ts = 0` for `s > t` (the softmax runs over `s ≤ t`). [`attention_backward`] serves both,
/// since its softmax backward `dP_ts = A_ts(..)` vanishes wherever `A_ts = 0`.
pub fn attention_forward_masked<R: Real>(out: &mut [R], att: &mut [R], qkv: &[R], s: AttnShape, causal: bool) {
    let (t, c, hs) = (s.t, s.c, s.hs());
    let scale = R::one() / R::of(hs as f64).sqrt();
    let k_t = Strides { rs: 1, cs: 3 * c };
    for b in 0..s.b {
        for h in 0..s.nh {
            let a = &mut att[s.att_at(b, h)..s.att_at(b, h) + t * t];
            // P = Q Kᵀ / √hs
            gemm_with(
                s.products,
                t,
                hs,
                t,
                scale,
                &qkv[s.at(b, 0, h)..],
                rm(3 * c),
                &qkv[s.at(b, 1, h)..],
                k_t,
                R::zero(),
                a,
                t,
            );
            softmax_rows(a, t, causal);
            // Y = A V
            let o = b * t * c + h * hs;
            gemm_with(
                s.products,
                t,
                t,
                hs,
                R::one(),
                a,
                rm(t),
                &qkv[s.at(b, 2, h)..],
                rm(3 * c),
                R::zero(),
                &mut out[o..],
                c,
            );
        }
    }
}

/// `A = softmax_rows(P)` in place over the `T × T` scores `a` (over `s ≤ t` when `causal`).
/// Compiled also for AVX-512 and AVX2 and chosen at run time; the maximum and the sum are
/// taken in the same order on every path, so every width gives the same bits.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
fn softmax_rows<R: Real>(a: &mut [R], t: usize, causal: bool) {
    for (i, row) in a.chunks_exact_mut(t).enumerate() {
        let seen = if causal { i + 1 } else { t };
        row[seen..].iter_mut().for_each(|v| *v = R::zero());
        let row = &mut row[..seen];
        let max = row.iter().copied().fold(R::neg_infinity(), R::max);
        row.iter_mut().for_each(|v| *v -= max);
        R::exp_in_place(row);
        let sum: R = row.iter().copied().sum();
        let inv = R::one() / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Writes `dqkv` (overwrites every entry) from `dout`; `datt` is a `T × T` scratch.
pub fn attention_backward<R: Real>(dqkv: &mut [R], datt: &mut [R], dout: &[R], qkv: &[R], att: &[R], s: AttnShape) {
    let (t, c, hs) = (s.t, s.c, s.hs());
    let scale = R::one() / R::of(hs as f64).sqrt();
    let v_t = Strides { rs: 1, cs: 3 * c };
    let datt = &mut datt[..t * t];
    for b in 0..s.b {
        for h in 0..s.nh {
            let a = &att[s.att_at(b, h)..s.att_at(b, h) + t * t];
            let dy = &dout[b * t * c + h * hs..];
            // dA = dY Vᵀ
            gemm_with(s.products, t, hs, t, R::one(), dy, rm(c), &qkv[s.at(b, 2, h)..], v_t, R::zero(), datt, t);
            // dV = Aᵀ dY
            gemm_with(
                s.products,
                t,
                t,
                hs,
                R::one(),
                a,
                tr(t),
                dy,
                rm(c),
                R::zero(),
                &mut dqkv[s.at(b, 2, h)..],
                3 * c,
            );
            // dP_ts = A_ts (dA_ts − Σ_s' A_ts' dA_ts')
            for (arow, drow) in a.chunks_exact(t).zip(datt.chunks_exact_mut(t)) {
                let dot: R = arow.iter().zip(drow.iter()).map(|(&x, &y)| x * y).sum();
                for (d, &x) in drow.iter_mut().zip(arow) {
                    *d = x * (*d - dot);
                }
            }
            // dQ = dP K / √hs
            gemm_with(
                s.products,
                t,
                t,
                hs,
                scale,
                datt,
                rm(t),
                &qkv[s.at(b, 1, h)..],
                rm(3 * c),
                R::zero(),
                &mut dqkv[s.at(b, 0, h)..],
                3 * c,
            );
            // dK = dPᵀ Q / √hs
            gemm_with(
                s.products,
                t,
                t,
                hs,
                scale,
                datt,
                tr(t),
                &qkv[s.at(b, 0, h)..],
                rm(3 * c),
                R::zero(),
                &mut dqkv[s.at(b, 1, h)..],
                3 * c,
            );
        }
    }
}
