//! The affine map of every layer, `out = inp W + b`, forward and backward.
//!
//! `inp` is `N × C` (row-major), `W` is `C × OC` (stored input-major, so the product is one
//! row-major gemm), `b ∈ R^OC`. Backward:
//! ```text
//! dinp += dout Wᵀ,   dW += inpᵀ dout,   db += Σ_rows dout
//! ```

use super::real::{gemm, rm, tr, Real};

/// `out = β out + inp W + b` (β = 0: overwrite; β = 1: add to a residual already in `out`).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward<R: Real>(
    out: &mut [R],
    inp: &[R],
    w: &[R],
    b: Option<&[R]>,
    n: usize,
    c: usize,
    oc: usize,
    beta: R,
) {
    gemm(n, c, oc, R::one(), inp, rm(c), w, rm(oc), beta, out, rm(oc));
    if let Some(b) = b {
        for row in out[..n * oc].chunks_exact_mut(oc) {
            for (o, &bi) in row.iter_mut().zip(b) {
                *o += bi;
            }
        }
    }
}

/// Accumulates `dinp` (when asked), `dw`, `db` from `dout`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<R: Real>(
    dinp: Option<&mut [R]>,
    dw: &mut [R],
    db: Option<&mut [R]>,
    dout: &[R],
    inp: &[R],
    w: &[R],
    n: usize,
    c: usize,
    oc: usize,
) {
    // dinp (N × C) += dout (N × OC) · Wᵀ (OC × C)
    if let Some(dinp) = dinp {
        gemm(n, oc, c, R::one(), dout, rm(oc), w, tr(oc), R::one(), dinp, rm(c));
    }
    // dW (C × OC) += inpᵀ (C × N) · dout (N × OC)
    gemm(c, n, oc, R::one(), inp, tr(c), dout, rm(oc), R::one(), dw, rm(oc));
    // db += Σ_rows dout
    if let Some(db) = db {
        for row in dout[..n * oc].chunks_exact(oc) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
}
