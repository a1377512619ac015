//! The affine map of every layer, `out = inp W + b`, forward and backward.
//!
//! `inp` is `N × C` (row-major), `W` is `C × OC` (stored input-major, so the product is one
//! row-major gemm), `b ∈ R^OC`. Backward:
//! ```text
//! dinp += dout Wᵀ,   dW += inpᵀ dout,   db += Σ_rows dout
//! ```

use super::bf16::Products;
use super::real::{gemm, rm, tr, Real, Strides};

/// `C ← α A B + β C` (row-major `C`) with the products `products` asks for.
#[allow(clippy::too_many_arguments)]
fn product<R: Real>(
    products: Products,
    m: usize,
    k: usize,
    n: usize,
    a: &[R],
    sa: Strides,
    b: &[R],
    sb: Strides,
    beta: R,
    c: &mut [R],
) {
    match products {
        Products::Exact => gemm(m, k, n, R::one(), a, sa, b, sb, beta, c, rm(n)),
        Products::Bf16 => R::gemm_bf16(m, k, n, R::one(), a, sa, b, sb, beta, c, n),
    }
}

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
    product(products, n, c, oc, inp, rm(c), w, rm(oc), beta, out);
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
        product(products, n, oc, c, dout, rm(oc), w, tr(oc), R::one(), dinp);
    }
    // dW (C × OC) += inpᵀ (C × N) · dout (N × OC)
    product(products, c, n, oc, inp, tr(c), dout, rm(oc), R::one(), dw);
    // db += Σ_rows dout
    if let Some(db) = db {
        for row in dout[..n * oc].chunks_exact(oc) {
            for (d, &g) in db.iter_mut().zip(row) {
                *d += g;
            }
        }
    }
}
