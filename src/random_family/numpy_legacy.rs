//! NumPy's legacy random generator (`numpy.random.RandomState`, the generator behind
//! `np.random.seed`, `np.random.permutation` and `np.random.normal`), ported from the published
//! definitions of its algorithms so that a model drawn with it here equals the one NumPy draws.
//!
//! - **Bits**: MT19937 (the `rand_mt` crate). `np.random.seed(s)` for an integer `s ∈ [0, 2³²)`
//!   seeds it with the reference `init_genrand(s)` (`mt[0] = s`,
//!   `mt[i] = 1812433253·(mt[i-1] ⊕ (mt[i-1] >> 30)) + i mod 2³²`), not with `init_by_array`
//!   (which NumPy uses for array seeds only), and clears the cached Gaussian.
//! - **Uniform double** (`random_sample`): from two 32-bit outputs `a, b`,
//!   `((a >> 5)·2²⁶ + (b >> 6)) / 2⁵³`, a multiple of `2⁻⁵³` in `[0, 1)`.
//! - **Bounded integer** (`random_interval(max)`): the smallest all-ones mask `≥ max`, then draws
//!   `next & mask` until the value is `≤ max` (32-bit draws when `max < 2³²`, 64-bit otherwise).
//! - **Permutation** (`permutation(n)`): `arange(n)` shuffled by Fisher-Yates from the end,
//!   `for i in n-1, …, 1: j = random_interval(i); swap(x[i], x[j])`.
//! - **Gaussian** (`legacy_gauss`): Marsaglia's polar method with a cache: draw
//!   `x₁ = 2u₁ - 1, x₂ = 2u₂ - 1` until `0 < r² = x₁² + x₂² < 1`, let `f = √(-2 ln r² / r²)`,
//!   return `f·x₂` and keep `f·x₁` for the next call. `normal(loc, scale, n)` is
//!   `loc + scale·legacy_gauss()` drawn `n` times (row-major for a matrix).

use rand_mt::Mt;

/// NumPy's legacy `RandomState`: MT19937 and the cached second Gaussian of the polar method.
#[derive(Clone)]
pub struct LegacyRandomState {
    bits: Mt,
    cached_gauss: Option<f64>,
}

impl LegacyRandomState {
    /// The state after `np.random.seed(seed)`: MT19937 `init_genrand(seed)`, no cached Gaussian.
    pub fn seed(seed: u32) -> Self {
        LegacyRandomState { bits: Mt::new(seed), cached_gauss: None }
    }

    /// The next 32-bit output of MT19937.
    pub fn next_u32(&mut self) -> u32 {
        self.bits.next_u32()
    }

    /// The next 64-bit output: `(first << 32) | second` of two 32-bit outputs.
    pub fn next_u64(&mut self) -> u64 {
        self.bits.next_u64()
    }

    /// `random_sample()`: `((a >> 5)·2²⁶ + (b >> 6)) / 2⁵³` of the next two outputs `a, b`.
    pub fn random_sample(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) / 9_007_199_254_740_992.0
    }

    /// `random_interval(max)`: a uniform integer of `[0, max]` by masked rejection.
    pub fn random_interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        if max <= u64::from(u32::MAX) {
            loop {
                let value = u64::from(self.next_u32()) & mask;
                if value <= max {
                    return value;
                }
            }
        }
        loop {
            let value = self.next_u64() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `permutation(n)`: `0, …, n-1` shuffled by `for i in n-1 down to 1: swap(x[i], x[random_interval(i)])`.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut x: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.random_interval(i as u64) as usize;
            x.swap(i, j);
        }
        x
    }

    /// `legacy_gauss()`: the cached value if there is one; else the polar method's pair
    /// `(f·x₁, f·x₂)`, returning `f·x₂` and caching `f·x₁`.
    pub fn gauss(&mut self) -> f64 {
        if let Some(cached) = self.cached_gauss.take() {
            return cached;
        }
        loop {
            let x1 = 2.0 * self.random_sample() - 1.0;
            let x2 = 2.0 * self.random_sample() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }

    /// `normal(loc, scale, n)`: `loc + scale·legacy_gauss()`, `n` times in order.
    pub fn normal(&mut self, loc: f64, scale: f64, n: usize) -> Vec<f64> {
        (0..n).map(|_| loc + scale * self.gauss()).collect()
    }
}

/// NumPy's pairwise summation (`pairwise_sum` of its add-reduction), the order in which
/// `x.sum(axis=…)` adds a contiguous run of `n` values to the identity `0`: `n < 8`: left to right; `8 ≤ n ≤ 128`:
/// eight running sums `r[k] = x[k] + x[k+8] + …` over the first `n - n mod 8` values, combined as
/// `((r₀+r₁)+(r₂+r₃)) + ((r₄+r₅)+(r₆+r₇))`, then the last `n mod 8` values left to right;
/// `n > 128`: the sums of the halves split at `m = n/2 - (n/2 mod 8)`.
pub fn pairwise_sum(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 8 {
        return x.iter().fold(0.0, |sum, v| sum + v);
    }
    if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&x[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for k in 0..8 {
                r[k] += x[i + k];
            }
            i += 8;
        }
        let mut sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &x[full..] {
            sum += v;
        }
        return sum;
    }
    let half = n / 2;
    let split = half - half % 8;
    pairwise_sum(&x[..split]) + pairwise_sum(&x[split..])
}
