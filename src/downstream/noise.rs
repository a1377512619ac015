//! The Gaussian noise models of the denoising tasks (the book, T8-T10), shared by every trainer and
//! every evaluator of those tasks.
//!
//! | model | noisy observation of an image | soft leaf evidence `λ_i(v)` | used by |
//! |---|---|---|---|
//! | [`ValueNoise`] (a) | `x̃_i = v_i + σ ε_i` on the integer value | `exp(-(x̃_i - v)² / 2σ²)` | the paper's denoising risk ([`DENOISING`], σ = 1) |
//! | [`NoiseLevel`] (b) | `X_t = α e_X + σ ε` on the one-hot embedding | `exp(α x_{t,i}(v) / σ²)` | conditional diffusion (T10) |
//!
//! `ε ~ N(0, I)` in both. The likelihood of the noisy observation, as a function of the token,
//! is the leaf's soft evidence, so BP gives the exact posterior (T1) and the Bayes denoiser.
//! Each weight vector is divided by its largest entry: a constant per leaf, which BP's
//! conditionals ignore.
//!
//! The models are task semantics (the channel a task defines, with the paper's σ), so they live
//! in `downstream`; below it, BP only sees their soft evidence, through
//! [`crate::evidence::SoftImage`] or [`Evidence`].

use rand_distr::{Distribution, StandardNormal};
use serde::Serialize;

use crate::evidence::{check_tokens, Evidence, EvidenceError, Leaf};
use crate::model::{Jghm, Part};
use crate::rng::Rng;

/// Noise model (a): each image token's integer value `v` is observed as `x̃ = v + σ ε`,
/// `ε ~ N(0, 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ValueNoise {
    /// The standard deviation `σ > 0`.
    pub sigma: f64,
}

/// The noise of the paper's conditional denoising task (the book, Reproducing the paper: σ = 1 on the 81 image
/// leaves), the one the denoisers are trained on and evaluated with.
pub const DENOISING: ValueNoise = ValueNoise { sigma: 1.0 };

impl ValueNoise {
    /// `x̃ = v + σ ε`: one draw of `ε ~ N(0, 1)` from `rng`.
    pub fn observe(&self, value: f64, rng: &mut Rng) -> f64 {
        value + self.sigma * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    }

    /// `x̃_i = v_i + σ ε_i` for every token of `image`, the draws in order.
    pub fn observe_image(&self, image: &[usize], rng: &mut Rng) -> Vec<f64> {
        image.iter().map(|&v| self.observe(v as f64, rng)).collect()
    }

    /// The soft evidence of noisy values: `λ_i(v) = exp(-(x̃_i - v)² / 2σ²)` for
    /// `v = 0..vocab`, divided by its largest entry, row-major `N_X × vocab`.
    pub fn evidence(&self, noisy: &[f64], vocab: usize) -> Vec<f64> {
        let sigma = self.sigma;
        let mut out = Vec::with_capacity(noisy.len() * vocab);
        for &x in noisy {
            let log: Vec<f64> = (0..vocab).map(|v| -(x - v as f64).powi(2) / (2.0 * sigma * sigma)).collect();
            let top = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.extend(log.iter().map(|l| (l - top).exp()));
        }
        out
    }

    /// `Var[v | x̃]` for a value `v ∈ {0, …, V−1}` with prior `prior` (length `V`) observed as
    /// `x̃ = noisy`: with `w_v = prior(v) exp(-(x̃ - v)² / 2σ²)`,
    /// `Σ_v v² w_v / Σ_v w_v − (Σ_v v w_v / Σ_v w_v)²` (0 when every weight vanishes).
    pub fn posterior_variance(&self, prior: &[f64], noisy: f64) -> f64 {
        let sigma = self.sigma;
        let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
        for (v, p) in prior.iter().enumerate() {
            let v = v as f64;
            // w_v = prior(v) exp(-(x̃ - v)² / 2σ²)
            let w = p * (-(noisy - v).powi(2) / (2.0 * sigma * sigma)).exp();
            z += w;
            m1 += v * w;
            m2 += v * v * w;
        }
        if z > 0.0 {
            (m2 / z - (m1 / z).powi(2)).max(0.0)
        } else {
            0.0
        }
    }

    /// `E[Var[v | x̃]]` over `v ~ prior` and its noisy observation:
    /// `E v² − ∫ (Σ_v v w_v(t))² / Σ_v w_v(t) dt`, `w_v(t) = prior(v) φ_σ(t − v)` (since
    /// `Σ_v w_v` is the density of `x̃`), the integral by the trapezoidal rule with step `σ/256`
    /// on `[−12σ, V − 1 + 12σ]`. The integrand is analytic in a strip around the real line and
    /// Gaussian-tailed, so the rule is exact to round-off (error `O(e^{−2πd/h})` for a strip of
    /// half-width `d`, plus tails below `e^{−72}`; Trefethen & Weideman, SIAM Review 2014).
    pub fn expected_posterior_variance(&self, prior: &[f64]) -> f64 {
        let sigma = self.sigma;
        let second: f64 = prior.iter().enumerate().map(|(v, p)| (v as f64).powi(2) * p).sum();
        let h = sigma / 256.0;
        let (lo, hi) = (-12.0 * sigma, (prior.len() - 1) as f64 + 12.0 * sigma);
        let steps = ((hi - lo) / h).ceil() as usize;
        let norm = 1.0 / (sigma * (2.0 * std::f64::consts::PI).sqrt());
        let integral: f64 = (0..=steps)
            .map(|k| {
                let t = lo + k as f64 * h;
                let (mut z, mut m1) = (0.0, 0.0);
                for (v, p) in prior.iter().enumerate() {
                    let w = p * norm * (-(t - v as f64).powi(2) / (2.0 * sigma * sigma)).exp();
                    z += w;
                    m1 += v as f64 * w;
                }
                let f = if z > 0.0 { m1 * m1 / z } else { 0.0 };
                if k == 0 || k == steps {
                    f / 2.0
                } else {
                    f
                }
            })
            .sum::<f64>()
            * h;
        second - integral
    }
}

/// Noise model (b), one level of a diffusion: the one-hot image embedding
/// `e_X ∈ R^{N_X × V}` observed as `X_t = α e_X + σ ε`, `ε ~ N(0, I)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NoiseLevel {
    pub alpha: f64,
    pub sigma: f64,
}

impl NoiseLevel {
    /// `X_t = α e_x + σ ε` (row-major `N_X × vocab`), the draws in order.
    pub fn forward(&self, x: &[usize], vocab: usize, rng: &mut Rng) -> Vec<f64> {
        (0..x.len() * vocab)
            .map(|k| {
                let e: f64 = StandardNormal.sample(rng);
                self.alpha * f64::from(u8::from(x[k / vocab] == k % vocab)) + self.sigma * e
            })
            .collect()
    }

    /// `log λ_i(v) = α x_{t,i}(v) / σ²`: `N(x_{t,i}; α e_v, σ² I) ∝ exp(α x_{t,i}(v) / σ²)` in
    /// `v` (up to a constant per leaf), row-major `N_X × V`.
    pub fn log_evidence(&self, x_t: &[f64]) -> Vec<f64> {
        let c = self.alpha / (self.sigma * self.sigma);
        x_t.iter().map(|v| c * v).collect()
    }

    /// Evidence: soft image leaves `λ_i(v) ∝ exp(α x_{t,i}(v)/σ²)` (scaled so each leaf's
    /// largest weight is 1) and the text `y` observed (or missing). An error when `x_t` is not
    /// `N_X × V` values or `y` does not fit the model.
    pub fn evidence(&self, model: &Jghm, x_t: &[f64], y: Option<&[usize]>) -> Result<Evidence, EvidenceError> {
        let v = model.image_vocab();
        if x_t.len() != model.image_len() * v {
            return Err(EvidenceError::Length {
                part: Part::Image,
                got: x_t.len() / v.max(1),
                expected: model.image_len(),
            });
        }
        if let Some(y) = y {
            check_tokens(model, Part::Text, y)?;
        }
        let mut ev = Evidence::none(model);
        for (leaf, row) in ev.image.iter_mut().zip(self.log_evidence(x_t).chunks(v)) {
            let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            *leaf = Leaf::Soft(row.iter().map(|l| (l - top).exp()).collect());
        }
        if let Some(y) = y {
            ev.text = y.iter().map(|&t| Leaf::Observed(t)).collect();
        }
        Ok(ev)
    }
}
