//! GELU, in the tanh form (as in GPT-2 and llm.c), forward and backward.
//!
//! ```text
//! gelu(x) = ½ x (1 + tanh(u)),   u = √(2/π) (x + 0.044715 x³)
//! gelu'(x) = ½ (1 + tanh u) + ½ x (1 − tanh² u) √(2/π) (1 + 3·0.044715 x²)
//! ```
//! Computed through the logistic function, `½ (1 + tanh u) = σ(2u) = 1/(1 + e^{−2u})` and
//! `½ (1 − tanh² u) = 2 σ(2u)(1 − σ(2u))`: one `exp` per element instead of libm's `tanh`
//! (which took 40% of a training step).

use super::real::Real;

const GELU_A: f64 = 0.044715;
/// √(2/π)
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// `σ(2u)` with `u = √(2/π)(x + a x³)`; the exponent is clamped so that `e^{−2u}` stays
/// finite (σ is then 0 or 1 to working precision anyway).
#[inline(always)]
fn sigma2u<R: Real>(x: R, a: R, s: R) -> R {
    let u = s * (x + a * x * x * x);
    let t = (-(u + u)).min(R::of(80.0));
    R::one() / (R::one() + t.exp())
}

/// `out_i = gelu(inp_i)`.
pub fn gelu_forward<R: Real>(out: &mut [R], inp: &[R]) {
    let (a, s) = (R::of(GELU_A), R::of(SQRT_2_OVER_PI));
    for (o, &x) in out.iter_mut().zip(inp) {
        // gelu(x) = x σ(2u)
        *o = x * sigma2u(x, a, s);
    }
}

/// `dinp_i = gelu'(inp_i) dout_i` (overwrites: the input of GELU has no other consumer).
pub fn gelu_backward<R: Real>(dinp: &mut [R], inp: &[R], dout: &[R]) {
    let (a, s, two, three) = (R::of(GELU_A), R::of(SQRT_2_OVER_PI), R::of(2.0), R::of(3.0));
    for ((dx, &x), &d) in dinp.iter_mut().zip(inp).zip(dout) {
        let sg = sigma2u(x, a, s);
        let du = s * (R::one() + three * a * x * x);
        // gelu'(x) = σ(2u) + x · 2σ(2u)(1 − σ(2u)) · du
        *dx = (sg + x * two * sg * (R::one() - sg) * du) * d;
    }
}
