//! The affine map of every layer, `out = inp W + b`, forward and backward.
//!
//! `inp` is `N × C` (row-major), `W` is `C × OC` (stored input-major, so the product is one
//! row-major gemm), `b ∈ R^OC`. Backward:
//! ```text
//! dinp += dout Wᵀ,   dW += inpᵀ dout,   db += Σ_rows dout
//! ```

use super::bf16::Products;
use super::real::{gemm_with, rm, tr, Real};

/// `out = β out + inp W + b` (β = 0: overwrite; β = 1: add to a residual already in `out`),
/// the product exact ([`linear_forward_with`] chooses).
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
    linear_forward_with(Products::Exact, out, inp, w, b, n, c, oc, beta)
}

/// [`linear_forward`] with the products `products` asks for ([`super::bf16`]).
#[allow(clippy::too_many_arguments)]
pub fn linear_forward_with<R: Real>(
    products: Products,
    out: &mut [R],
    inp: &[R],
    w: &[R],
    b: Option<&[R]>,
    n: usize,
    c: usize,
    oc: usize,
    beta: R,
) {
    gemm_with(products, n, c, oc, R::one(), inp, rm(c), w, rm(oc), beta, out, oc);
    if let Some(b) = b {
        for row in out[..n * oc].chunks_exact_mut(oc) {
            for (o, &bi) in row.iter_mut().zip(b) {
                *o += bi;
            }
        }
    }
}

/// Accumulates `dinp` (when asked), `dw`, `db` from `dout`, the products exact
/// ([`linear_backward_with`] chooses).
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
    linear_backward_with(Products::Exact, dinp, dw, db, dout, inp, w, n, c, oc)
}

/// [`linear_backward`] with the products `products` asks for ([`super::bf16`]).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_with<R: Real>(
    products: Products,
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
        gemm_with(products, n, oc, c, R::one(), dout, rm(oc), w, tr(oc), R::one(), dinp, c);
    }
    // dW (C × OC) += inpᵀ (C × N) · dout (N × OC)
    gemm_with(products, c, n, oc, R::one(), inp, tr(c), dout, rm(oc), R::one(), dw, oc);
    // db += Σ_rows dout
    if let Some(db) = db {
        for row in dout[..n * oc].chunks_exact(oc) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
}
