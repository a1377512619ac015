//! The Bayes predictors of the paper's four tasks (the book, Reproducing the paper), each by exact BP on one model:
//!
//! - CLIP: the PMI score ([`crate::score::Pmi`], T2);
//! - zero-shot: `p(y_1 = c | x)`, the marginal of the first text leaf given the image
//!   ([`first_token_law`]);
//! - denoising: the posterior mean `E[v_i | x̃, y]` with soft leaf evidence ([`BayesDenoiser`]);
//! - vision-language: `p(y_t | y_{<t}, x)` for every position at once ([`BayesNextToken`], an
//!   incremental pass: observing one more token changes only the messages on its leaf's path).
//!
//! Built on a model given separately from the data, so the same types serve mis-specified BP
//! (the predictor of the ε = 0.2 model on data of another ε).

use crate::bp::BpError;
use crate::bp::{BatchMarginals, Incremental, MarginalWorkspace, WorkspacePool};
use crate::downstream::noise::ValueNoise;
use crate::evidence::{check_tokens, EvidenceError, SoftImage, Tokens};
use crate::model::{Jghm, Part};

use super::predictors::{Denoiser, NextToken};

/// `(E[v_i | ·], Var[v_i | ·])` of each image leaf from its marginal `p(v_i = · | ·)`:
/// `E[v] = Σ_v v p(v)`, `Var[v] = Σ_v v² p(v) − E[v]²` (clamped at 0 against round-off).
fn moments<'a>(marginals: impl Iterator<Item = &'a [f64]>) -> (Vec<f64>, Vec<f64>) {
    marginals
        .map(|p| {
            let mean: f64 = p.iter().enumerate().map(|(v, p)| v as f64 * p).sum();
            let second: f64 = p.iter().enumerate().map(|(v, p)| (v as f64).powi(2) * p).sum();
            (mean, (second - mean * mean).max(0.0))
        })
        .unzip()
}

/// Posterior moments of the image leaves' values given soft image evidence and the text:
/// `(E[v_i | ·], Var[v_i | ·])` per leaf, by BP (the batched probability-domain marginals, with
/// the log-domain oracle when they underflow), one observation at a time (the oracle of
/// [`value_moments_batch`]). `None` when the evidence has probability zero.
pub fn value_moments(ws: &mut MarginalWorkspace, model: &Jghm, obs: &SoftImage) -> Option<(Vec<f64>, Vec<f64>)> {
    let tree = model.tree();
    let flat = ws.marginals(obs).ok()?;
    Some(moments(tree.image_leaves.iter().map(|&u| &flat[tree.span(u)])))
}

/// [`value_moments`] of many observations at once: [`BatchMarginals::fold_chunks`] streams
/// their marginals in SIMD blocks (lanes never mix, so each observation's numbers are those of
/// the one-at-a-time pass; memory flat in the batch). `None` where the evidence has
/// probability zero.
pub fn value_moments_batch(
    batch: &BatchMarginals,
    model: &Jghm,
    obs: &[SoftImage],
) -> Vec<Option<(Vec<f64>, Vec<f64>)>> {
    let tree = model.tree();
    let n = tree.total_states;
    let chunks = batch.fold_chunks(obs, Vec::new, |mut acc, _, rows, ll| {
        for (row, ll) in rows.chunks_exact(n).zip(ll) {
            let possible = *ll > f64::NEG_INFINITY && row.iter().all(|p| p.is_finite());
            acc.push(possible.then(|| moments(tree.image_leaves.iter().map(|&u| &row[tree.span(u)]))));
        }
        acc
    });
    chunks.into_iter().flatten().collect()
}

/// The Bayes denoiser of one model for noise model (a) (the book, T8-T10): `D(x̃, y)_i = E[v_i | x̃, y]`,
/// exact by BP with soft image evidence `λ_i(v) ∝ exp(-(x̃_i - v)²/2σ²)` ([`ValueNoise::evidence`])
/// and the text observed.
/// It minimises `E Σ_i (D_i - v_i)²` over all functions of `(x̃, y)` (posterior mean).
pub struct BayesDenoiser<'m> {
    pub model: &'m Jghm,
    pub noise: ValueNoise,
    pool: WorkspacePool<MarginalWorkspace<'m>>,
    batch: BatchMarginals<'m>,
}

impl<'m> BayesDenoiser<'m> {
    pub fn new(model: &'m Jghm, noise: ValueNoise) -> Self {
        BayesDenoiser { model, noise, pool: WorkspacePool::new(), batch: BatchMarginals::new(model) }
    }
}

impl Denoiser for BayesDenoiser<'_> {
    fn name(&self) -> String {
        "bayes".into()
    }
    /// NaN per leaf when the noisy image and text have probability zero under the model.
    fn denoise(&self, noisy: &[f64], y: &[usize]) -> Vec<f64> {
        let vocab = self.model.image_vocab();
        let lambda = self.noise.evidence(noisy, vocab);
        let obs = SoftImage { lambda: &lambda, vocab, text: y };
        self.pool.with(
            || MarginalWorkspace::new(self.model),
            |ws| value_moments(ws, self.model, &obs).map_or(vec![f64::NAN; noisy.len()], |m| m.0),
        )
    }
    /// The same posterior means, the batch's marginals in SIMD blocks ([`value_moments_batch`]).
    fn denoise_batch(&self, noisy: &[Vec<f64>], texts: &[&[usize]]) -> Vec<Vec<f64>> {
        let vocab = self.model.image_vocab();
        let lambdas: Vec<Vec<f64>> = noisy.iter().map(|x| self.noise.evidence(x, vocab)).collect();
        let obs: Vec<SoftImage> =
            lambdas.iter().zip(texts).map(|(lambda, text)| SoftImage { lambda, vocab, text }).collect();
        value_moments_batch(&self.batch, self.model, &obs)
            .into_iter()
            .zip(noisy)
            .map(|(m, x)| m.map_or(vec![f64::NAN; x.len()], |m| m.0))
            .collect()
    }
}

/// `p(y_1 = · | x)`: the marginal of the first text leaf given the image (the Bayes zero-shot
/// classifier of the paper's label), by BP. An error when `x` does not fit the model or
/// `p(x) = 0`.
pub fn first_token_law(ws: &mut MarginalWorkspace, model: &Jghm, x: &[usize]) -> Result<Vec<f64>, BpError> {
    check_tokens(model, Part::Image, x)?;
    let tree = model.tree();
    let leaf = tree.text_leaves[0];
    let flat = ws.marginals(&Tokens { image: Some(x), text: None })?;
    Ok(flat[tree.span(leaf)].to_vec())
}

/// The Bayes next-token model of one model: `p(y_t | y_{<t}, x)` by BP, all positions of one
/// text in one incremental pass ([`crate::bp::incremental`]: after the image's upward pass, each position
/// costs one walk down and one walk up its leaf's path), with the log-domain
/// [`crate::bp::next_token_conditional`] as the fallback ([`Incremental::conditionals_or_log_domain`]). Minimises the next-token cross-entropy.
pub struct BayesNextToken<'m> {
    pub model: &'m Jghm,
    pool: WorkspacePool<Incremental<'m>>,
}

impl<'m> BayesNextToken<'m> {
    pub fn new(model: &'m Jghm) -> Self {
        BayesNextToken { model, pool: WorkspacePool::new() }
    }

    /// Row-major `N_Y × V_Y` probabilities `p(y_t = · | y_{<t}, x)`; rows of an impossible
    /// prefix are NaN. An error when `x` or `y` does not fit the model.
    pub fn conditionals(&self, x: &[usize], y: &[usize]) -> Result<Vec<f64>, EvidenceError> {
        check_tokens(self.model, Part::Image, x)?;
        check_tokens(self.model, Part::Text, y)?;
        Ok(self.pool.with(|| Incremental::new(self.model), |inc| inc.conditionals_or_log_domain(x, y)))
    }
}

impl NextToken for BayesNextToken<'_> {
    fn name(&self) -> String {
        "bayes".into()
    }
    fn next_token_log_probs(&self, x: &[usize], y: &[usize]) -> Vec<f64> {
        // Tokens that do not fit the model: every row NaN, as for an impossible prefix.
        match self.conditionals(x, y) {
            Ok(p) => p.into_iter().map(f64::ln).collect(),
            Err(_) => vec![f64::NAN; self.model.text_len() * self.model.text_vocab()],
        }
    }
}
