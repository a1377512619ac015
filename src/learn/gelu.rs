//! GELU, in the tanh form (as in GPT-2 and llm.c), forward and backward.
//!
//! ```text
//! gelu(x) = ½ x (1 + tanh(u)),   u = √(2/π) (x + 0.044715 x³)
//! gelu'(x) = ½ (1 + tanh u) + ½ x (1 − tanh² u) √(2/π) (1 + 3·0.044715 x²)
//! ```

use super::real::Real;

const GELU_A: f64 = 0.044715;
/// √(2/π)
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// `out_i = gelu(inp_i)`.
pub fn gelu_forward<R: Real>(out: &mut [R], inp: &[R]) {
    let (a, s, half) = (R::of(GELU_A), R::of(SQRT_2_OVER_PI), R::of(0.5));
    for (o, &x) in out.iter_mut().zip(inp) {
        let u = s * (x + a * x * x * x);
        *o = half * x * (R::one() + u.tanh());
    }
}

/// `dinp_i = gelu'(inp_i) dout_i` (overwrites: the input of GELU has no other consumer).
pub fn gelu_backward<R: Real>(dinp: &mut [R], inp: &[R], dout: &[R]) {
    let (a, s, half, three) = (R::of(GELU_A), R::of(SQRT_2_OVER_PI), R::of(0.5), R::of(3.0));
    for ((dx, &x), &d) in dinp.iter_mut().zip(inp).zip(dout) {
        let th = (s * (x + a * x * x * x)).tanh();
        let du = s * (R::one() + three * a * x * x);
        *dx = (half * (R::one() + th) + half * x * (R::one() - th * th) * du) * d;
    }
}
