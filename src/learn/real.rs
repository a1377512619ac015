//! The floating-point type of the learned models: `f32` for training speed, `f64` for the
//! finite-difference checks of every backward pass (tests/learn_gradients.rs). Every kernel of
//! [`crate::learn`] is generic over [`Real`], so the code that is checked is the code that trains.

use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// `f32` or `f64`, with a matrix product from `matrixmultiply` (sgemm / dgemm).
pub trait Real:
    Float
    + FromPrimitive
    + ToPrimitive
    + Default
    + Debug
    + Send
    + Sync
    + Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + 'static
{
    /// The safetensors dtype name of this type.
    const DTYPE: &'static str;

    /// `C ← α A B + β C` on raw strided storage (see [`gemm`], the checked entry point).
    ///
    /// # Safety
    /// Every index `i·rs + j·cs` of each operand must lie inside its allocation.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// [`gemm`] with BF16 inputs and f32 accumulation ([`super::bf16::gemm_bf16`]) for `f32`;
    /// `f64` multiplies exactly, so the finite-difference checks of a BF16 run's code measure
    /// its calculus, not its rounding. `C` has unit column stride.
    #[allow(clippy::too_many_arguments)]
    fn gemm_bf16(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        sa: Strides,
        b: &[Self],
        sb: Strides,
        beta: Self,
        c: &mut [Self],
        rsc: usize,
    );

    /// `x` converted from `f64` (exact for `f64`, rounded for `f32`).
    fn of(x: f64) -> Self {
        Self::from_f64(x).expect("f64 converts to every Real")
    }

    /// `self` as `f64`.
    fn f64(self) -> f64 {
        self.to_f64().expect("every Real converts to f64")
    }

    /// `x ← eˣ` for every element: the `exp` of the two hot loops of a training step (GELU
    /// and the attention softmax). `f64` (the finite-difference checks) uses libm's `exp`;
    /// `f32` uses [`exp_f32_in_place`], a branch-free polynomial the compiler vectorises
    /// (libm's scalar `expf` was 12% of a training step).
    fn exp_in_place(xs: &mut [Self]);

    /// Little-endian bytes of a slice (for checkpoints).
    fn to_le_bytes(xs: &[Self]) -> Vec<u8>;

    /// The inverse of [`Real::to_le_bytes`]; `None` when the length is not a multiple.
    fn from_le_bytes(bytes: &[u8]) -> Option<Vec<Self>>;
}

macro_rules! impl_real {
    ($t:ty, $gemm:path, $gemm_bf16:path, $exp:path, $name:literal) => {
        impl Real for $t {
            const DTYPE: &'static str = $name;
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
            }
            fn gemm_bf16(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                sa: Strides,
                b: &[Self],
                sb: Strides,
                beta: Self,
                c: &mut [Self],
                rsc: usize,
            ) {
                $gemm_bf16(m, k, n, alpha, a, sa, b, sb, beta, c, rsc)
            }
            #[inline(always)]
            fn exp_in_place(xs: &mut [Self]) {
                $exp(xs)
            }
            fn to_le_bytes(xs: &[Self]) -> Vec<u8> {
                xs.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
            fn from_le_bytes(bytes: &[u8]) -> Option<Vec<Self>> {
                const W: usize = std::mem::size_of::<$t>();
                if bytes.len() % W != 0 {
                    return None;
                }
                Some(bytes.chunks_exact(W).map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of W"))).collect())
            }
        }
    };
}

impl_real!(f32, matrixmultiply::sgemm, super::bf16::gemm_bf16, exp_f32_in_place, "F32");
impl_real!(f64, matrixmultiply::dgemm, gemm_f64_row_major_c, exp_f64_in_place, "F64");

/// [`gemm`] (`C` row-major with `rsc` columns apart) with the products `products` asks for:
/// exact in `R`, or BF16 inputs with f32 sums ([`Real::gemm_bf16`]).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with<R: Real>(
    products: super::Products,
    m: usize,
    k: usize,
    n: usize,
    alpha: R,
    a: &[R],
    sa: Strides,
    b: &[R],
    sb: Strides,
    beta: R,
    c: &mut [R],
    rsc: usize,
) {
    match products {
        super::Products::Exact => gemm(m, k, n, alpha, a, sa, b, sb, beta, c, Strides { rs: rsc, cs: 1 }),
        super::Products::Bf16 => R::gemm_bf16(m, k, n, alpha, a, sa, b, sb, beta, c, rsc),
    }
}

/// `f64`'s [`Real::gemm_bf16`]: the exact product.
#[allow(clippy::too_many_arguments)]
fn gemm_f64_row_major_c(
    m: usize,
    k: usize,
    n: usize,
    alpha: f64,
    a: &[f64],
    sa: Strides,
    b: &[f64],
    sb: Strides,
    beta: f64,
    c: &mut [f64],
    rsc: usize,
) {
    gemm(m, k, n, alpha, a, sa, b, sb, beta, c, Strides { rs: rsc, cs: 1 })
}

fn exp_f64_in_place(xs: &mut [f64]) {
    xs.iter_mut().for_each(|x| *x = x.exp());
}

/// `x ← eˣ` in `f32`, within 1 ulp of the exact value (0.68 ulp measured) for `x ∈ [−87, 88]`
/// (`tests/learn_gradients.rs` checks it against `f64::exp` on a dense grid).
///
/// Cody-Waite range reduction and Cephes' `expf` polynomial:
/// ```text
/// eˣ = 2ⁿ eʳ,  n = round(x / ln 2),  r = x − n ln 2 ∈ [−ln2/2, ln2/2]
/// eʳ ≈ 1 + r + r² P(r)   (P of degree 5, Cephes)
/// ```
/// `ln 2` is split in a high part exact in `f32` and a low part, so `r` carries no cancellation
/// error; `2ⁿ` is built from its exponent bits. Inputs are clamped to `[−87, 88]` first (so
/// `2ⁿ` stays a normal number): below, `eˣ < 2·10⁻³⁸` is returned as `e⁻⁸⁷` (both negligible
/// next to the 1 every caller adds or the row maximum's `e⁰ = 1`), above, the callers clamp
/// already. No branch and no float-to-int conversion, so the loop runs in SIMD lanes.
#[inline(always)]
pub fn exp_f32_in_place(xs: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer (ties to even).
    const ROUND: f32 = 12_582_912.0;
    for x in xs.iter_mut() {
        let v = x.clamp(-87.0, 88.0);
        let shifted = v * LOG2E + ROUND;
        let n = shifted - ROUND;
        let r = v - n * LN2_HI - n * LN2_LO;
        let mut p = 1.987_569_1e-4_f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 0.5; // Cephes: 5.0000001201e-1, which rounds to 0.5 in f32
        let er = p * r * r + r + 1.0;
        // `shifted`'s low mantissa bits hold the integer n (offset by ROUND's bits): 2ⁿ's
        // exponent field is n + 127, formed in integers (a float-to-int `as` would saturate
        // lane by lane and keep the loop out of SIMD).
        let two_n = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
        *x = er * two_n;
    }
}

/// A strided matrix operand: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strides {
    pub rs: usize,
    pub cs: usize,
}

/// Row-major with `cols` columns.
pub const fn rm(cols: usize) -> Strides {
    Strides { rs: cols, cs: 1 }
}

/// The transpose of a row-major matrix with `cols` columns.
pub const fn tr(cols: usize) -> Strides {
    Strides { rs: 1, cs: cols }
}

fn fits(len: usize, rows: usize, cols: usize, s: Strides) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * s.rs + (cols - 1) * s.cs < len
}

/// `C ← α A B + β C` with `A` m×k, `B` k×n, `C` m×n, each strided. Panics (never reads out of
/// bounds) when a stride pattern does not fit its slice: a programming error, not bad input.
#[allow(clippy::too_many_arguments)]
pub fn gemm<R: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: R,
    a: &[R],
    sa: Strides,
    b: &[R],
    sb: Strides,
    beta: R,
    c: &mut [R],
    sc: Strides,
) {
    assert!(
        fits(a.len(), m, k, sa) && fits(b.len(), k, n, sb) && fits(c.len(), m, n, sc),
        "gemm operand out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the assertion above keeps every index of every operand inside its slice, and `c`
    // is borrowed mutably so it cannot alias `a` or `b`.
    unsafe {
        R::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            sa.rs as isize,
            sa.cs as isize,
            b.as_ptr(),
            sb.rs as isize,
            sb.cs as isize,
            beta,
            c.as_mut_ptr(),
            sc.rs as isize,
            sc.cs as isize,
        )
    }
}
