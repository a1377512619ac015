//! Layer normalisation over the last axis, forward and backward (dimension letters: see
//! [`crate::learn`]).
//!
//! Forward, per row `x ∈ R^C`:
//! ```text
//! μ = (1/C) Σ_c x_c,   σ² = (1/C) Σ_c (x_c − μ)²,   r = 1/√(σ² + ε)
//! n_c = (x_c − μ) r,   out_c = n_c w_c + b_c
//! ```
//! Backward, with `dn_c = dout_c w_c`:
//! ```text
//! dw_c += dout_c n_c,   db_c += dout_c
//! dx_c += r (dn_c − mean(dn) − n_c mean(dn ⊙ n))
//! ```
//! (the last line: `∂n_c/∂x_j = r(δ_cj − 1/C − n_c n_j / C)`, contracted with `dn`).

use super::real::Real;

/// ε inside the square root, as in PyTorch's `nn.LayerNorm`.
pub const EPS: f64 = 1e-5;

/// `out = LN(inp) w + b` over rows of width `c`; caches each row's mean and `r = 1/σ`.
pub fn layernorm_forward<R: Real>(
    out: &mut [R],
    mean: &mut [R],
    rstd: &mut [R],
    inp: &[R],
    w: &[R],
    b: &[R],
    c: usize,
) {
    let eps = R::of(EPS);
    let cr = R::of(c as f64);
    for (((x, o), m), r) in inp.chunks_exact(c).zip(out.chunks_exact_mut(c)).zip(mean.iter_mut()).zip(rstd.iter_mut()) {
        // μ = (1/C) Σ x
        let mu = x.iter().copied().sum::<R>() / cr;
        // σ² = (1/C) Σ (x − μ)²
        let var = x.iter().map(|&v| (v - mu) * (v - mu)).sum::<R>() / cr;
        let rs = R::one() / (var + eps).sqrt();
        for i in 0..c {
            o[i] = (x[i] - mu) * rs * w[i] + b[i];
        }
        *m = mu;
        *r = rs;
    }
}

/// Accumulates `dinp`, `dw`, `db` from `dout` (see the module formula).
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward<R: Real>(
    dinp: &mut [R],
    dw: &mut [R],
    db: &mut [R],
    dout: &[R],
    inp: &[R],
    w: &[R],
    mean: &[R],
    rstd: &[R],
    c: usize,
) {
    let cr = R::of(c as f64);
    for (((x, d), dx), (&mu, &rs)) in
        inp.chunks_exact(c).zip(dout.chunks_exact(c)).zip(dinp.chunks_exact_mut(c)).zip(mean.iter().zip(rstd))
    {
        // mean(dn) and mean(dn ⊙ n), with dn = dout ⊙ w, n = (x − μ) r
        let (mut dn_mean, mut dnn_mean) = (R::zero(), R::zero());
        for i in 0..c {
            let n = (x[i] - mu) * rs;
            let dn = d[i] * w[i];
            dn_mean += dn;
            dnn_mean += dn * n;
        }
        dn_mean /= cr;
        dnn_mean /= cr;
        for i in 0..c {
            let n = (x[i] - mu) * rs;
            let dn = d[i] * w[i];
            dw[i] += d[i] * n;
            db[i] += d[i];
            // dx = r (dn − mean(dn) − n mean(dn ⊙ n))
            dx[i] += rs * (dn - dn_mean - n * dnn_mean);
        }
    }
}
