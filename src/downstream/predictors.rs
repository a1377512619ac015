//! The predictors of the paper's generative tasks (the book, T8-T10, §8), as traits: a learned model and
//! the Bayes predictor of [`super::bayes`] implement the same trait, so one risk estimator
//! measures both.

/// A conditional denoiser for the paper's noise model (the book, T8-T10 (a)): every image leaf's integer
/// value `v_i` is observed as `v_i + σ ε_i`, `ε_i ~ N(0, 1)`, and the denoiser sees the noisy
/// values and the text. The Bayes denoiser is `E[v_i | noisy x, y]`, exact by BP with soft leaf
/// evidence `λ_i(v) ∝ exp(-(x̃_i - v)² / 2σ²)`.
pub trait Denoiser: Sync {
    /// A short name for reports.
    fn name(&self) -> String;
    /// The estimate of each image leaf's value, `D(x̃, y)_i ≈ E[v_i | x̃, y]`, one per image leaf.
    fn denoise(&self, noisy: &[f64], y: &[usize]) -> Vec<f64>;
    /// [`Denoiser::denoise`] of many noisy images and their texts, in order (one call per
    /// image unless a denoiser batches; a batching one must return the same numbers).
    fn denoise_batch(&self, noisy: &[Vec<f64>], texts: &[&[usize]]) -> Vec<Vec<f64>> {
        noisy.iter().zip(texts).map(|(x, y)| self.denoise(x, y)).collect()
    }
}

/// A next-text-token model given the image (the paper's vision-language task).
pub trait NextToken: Sync {
    /// A short name for reports.
    fn name(&self) -> String;
    /// Row-major `len(y) × V_Y`: row `t` (0-based) is `log p̂(y_t = · | y_{<t}, x)`, a
    /// log-probability vector (row 0 conditions on the image alone).
    fn next_token_log_probs(&self, x: &[usize], y: &[usize]) -> Vec<f64>;
}
