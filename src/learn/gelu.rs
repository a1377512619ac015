//! GELU, in the tanh form (as in GPT-2 and llm.c), forward and backward.
//!
//! ```text
//! gelu(x) = ½ x (1 + tanh(u)),   u = √(2/π) (x + 0.044715 x³)
//! gelu'(x) = ½ (1 + tanh u) + ½ x (1 − tanh² u) √(2/π) (1 + 3·0.044715 x²)
//! ```
//! Computed through the logistic function, `½ (1 + tanh u) = σ(2u) = 1/(1 + e^{−2u})` and
//! `½ (1 − tanh² u) = 2 σ(2u)(1 − σ(2u))`: one `exp` per element instead of libm's `tanh`
//! (which took 40% of a training step).

use multiversion::multiversion;

use super::real::Real;

const GELU_A: f64 = 0.044715;
/// √(2/π)
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// `buf_i ← σ(2u_i)` with `u_i = √(2/π)(x_i + a x_i³)`, in three passes so that the `exp`
/// runs over a whole slice ([`Real::exp_in_place`], vectorised in `f32`); the exponent is
/// clamped so that `e^{−2u}` stays finite (σ is then 0 or 1 to working precision anyway).
#[inline(always)]
fn sigma2u_into<R: Real>(buf: &mut [R], inp: &[R]) {
    let (a, s) = (R::of(GELU_A), R::of(SQRT_2_OVER_PI));
    for (t, &x) in buf.iter_mut().zip(inp) {
        let u = s * (x + a * x * x * x);
        *t = (-(u + u)).min(R::of(80.0));
    }
    R::exp_in_place(buf);
    buf.iter_mut().for_each(|t| *t = R::one() / (R::one() + *t));
}

/// `out_i = gelu(inp_i)`. Compiled also for AVX-512 and AVX2 and chosen at run time (an
/// element-wise map: every width gives the same bits).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn gelu_forward<R: Real>(out: &mut [R], inp: &[R]) {
    let out = &mut out[..inp.len()];
    sigma2u_into(out, inp);
    for (o, &x) in out.iter_mut().zip(inp) {
        // gelu(x) = x σ(2u)
        *o *= x;
    }
}

/// `dinp_i = gelu'(inp_i) dout_i` (overwrites: the input of GELU has no other consumer).
/// Multiversioned as [`gelu_forward`].
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512dq+avx512vl", "x86_64+avx2+fma"))]
pub fn gelu_backward<R: Real>(dinp: &mut [R], inp: &[R], dout: &[R]) {
    let (a, s, two, three) = (R::of(GELU_A), R::of(SQRT_2_OVER_PI), R::of(2.0), R::of(3.0));
    let dinp = &mut dinp[..inp.len()];
    sigma2u_into(dinp, inp);
    for ((dx, &x), &d) in dinp.iter_mut().zip(inp).zip(dout) {
        let sg = *dx;
        let du = s * (R::one() + three * a * x * x);
        // gelu'(x) = σ(2u) + x · 2σ(2u)(1 − σ(2u)) · du
        *dx = (sg + x * two * sg * (R::one() - sg) * du) * d;
    }
}
