//! Text from an image: conditional generators of `y` given `x` and their divergence from the
//! truth `P_{Y|X}` (the book, T8-T10, theorem T9).
//!
//! Generators ([`Generator`]):
//! - **exact**: `y ~ p(y | x)` by BP (upward pass with the image observed, then downward sampling);
//! - **induced** `Q^S(y | x) = p(y) exp S(x, y) / E_{Y'} exp S(x, Y')`, sampled by resampling
//!   ([`crate::contrastive::sample_induced`]: a pool of `M` draws from `p(y)`, one kept with
//!   weight `exp S`; exact as `M → ∞`);
//! - **through a statistic** `f(x)`: the best such generator, `P_{Y | f(X) = f(x)}`, sampled
//!   exactly by drawing `x' ~ p(x' | f(x') = f(x))` from the enumerated images, then
//!   `y ~ p(y | x')` (valid because `Y ⟂ f(X) | X`). Its law over texts is
//!   `p(y | t) = p(y) Σ_w p(w | t) p(w | y) / p(w)`, `p(w | t)` the fibre average of `p(w | x')`.
//!
//! Divergence `KL(P_{Y|X=x} ‖ q(· | x))` ([`divergence`]): exact when the texts are enumerable;
//! otherwise Monte Carlo over `n` draws `y ~ p(y | x)` of the exact log-ratio
//! `log p(y|x)/q(y|x)`: `PMI(x, y) - PMI_T(t, y)` through a statistic, and
//! `PMI(x, y) - S(x, y) + log E_{Y'} exp S(x, Y')` for `Q^S`, whose last term is a jackknifed
//! log-mean-exp over `M` draws from `p(y)` (bias `O(M^-2)`, standard error by the delta method).
//!
//! **T9** (`proofs/T9-generation.md`): `E_X KL(P_{Y|X} ‖ Q^S_{Y|X}) = ℓ_∞^{X→Y}(S) - ℓ_∞^{X→Y}(PMI)`
//! exactly, and every generator `q(y | f(x))` has `E_X KL(P_{Y|X} ‖ q) ≥ Suff_Y(f)`, with
//! equality for `P_{Y|f(X)}`.

use rayon::prelude::*;
use serde::Serialize;

use crate::bp::{self, Tokens, Workspace};
use crate::contrastive::{jackknifed_log_mean_exp, sample_induced};
use crate::info::{self, kl, upward_side, weighted_inner, Estimate};
use crate::logspace::normalise_log;
use crate::model::{Jghm, Part};
use crate::rng::{self, Rng};
use crate::sample::Sampler;
use crate::score::Score;
use crate::sufficiency::{Classes, Evaluator, Gap, Statistic};

use super::laws::SideLaw;
use super::DownstreamError;

/// Samples per random stream (fixed, so the output does not depend on the thread count).
pub const CHUNK: usize = 64;

/// The generator `P_{Y | f(X)}` of a statistic of the image, on an enumerable image side.
pub struct ThroughStatistic<'m> {
    pub model: &'m Jghm,
    pub statistic: Statistic,
    pub images: SideLaw,
    pub classes: Classes,
    /// `p(w | t)`, row-major `|T| × |W|`.
    latent: Vec<f64>,
}

impl<'m> ThroughStatistic<'m> {
    /// Enumerates the images and their classes under `statistic`.
    pub fn new(model: &'m Jghm, statistic: Statistic) -> Result<Self, DownstreamError> {
        let images = SideLaw::new(model, Part::Image)?;
        let classes = Evaluator::new(model, Part::Image, statistic)?.classes(&images.table);
        let nw = images.cut.size();
        let mut latent = vec![0.0; classes.count * nw];
        let mut pt = vec![0.0; classes.count];
        // p(w | t) = Σ_{x ∈ t} p(x) p(w | x) / p(t)
        for i in 0..images.table.len() {
            let (t, p) = (classes.of[i], images.table.p(i));
            pt[t] += p;
            for (o, w) in latent[t * nw..(t + 1) * nw].iter_mut().zip(images.table.latent_row(i)) {
                *o += p * w;
            }
        }
        for (t, row) in latent.chunks_mut(nw).enumerate() {
            row.iter_mut().for_each(|v| *v /= pt[t]);
        }
        Ok(ThroughStatistic { model, statistic, images, classes, latent })
    }

    /// The class `t = f(x)`; an error for an image of probability zero.
    pub fn class_of(&self, x: &[usize]) -> Result<usize, DownstreamError> {
        let i = self
            .images
            .index_of(x)
            .ok_or(bp::BpError::ZeroProbability { what: "p(x)", needed: "the statistic's generator" })?;
        Ok(self.classes.of[i])
    }

    /// `p(w | t)`.
    pub fn latent(&self, t: usize) -> &[f64] {
        let nw = self.images.cut.size();
        &self.latent[t * nw..(t + 1) * nw]
    }

    /// `p(y | t)` over the enumerated texts.
    pub fn law(&self, texts: &SideLaw, t: usize) -> Vec<f64> {
        texts.conditional_from_latent(self.latent(t))
    }

    /// One draw: `x' ~ p(x' | t)` among the enumerated images, then `y ~ p(y | x')` by BP.
    fn draw(&self, t: usize, ws: &mut Workspace, rng: &mut Rng, states: &mut [usize]) -> Vec<usize> {
        let w: Vec<f64> = (0..self.images.table.len())
            .map(|i| if self.classes.of[i] == t { self.images.table.p(i) } else { 0.0 })
            .collect();
        let x = &self.images.table.tokens[rng::categorical(rng, &w)];
        ws.upward(self.model, &Tokens { image: Some(x), text: None });
        ws.sample_into(self.model, rng, states);
        self.model.tree().text_leaves.iter().map(|&u| states[u]).collect()
    }
}

/// A conditional generator of text given an image.
pub enum Generator<'a> {
    /// `p(y | x)` by BP.
    Exact,
    /// `Q^S`, sampled by resampling a pool of `pool` draws from `p(y)`.
    Induced { score: &'a dyn Score, pool: usize },
    /// `P_{Y | f(X)}`.
    Statistic(&'a ThroughStatistic<'a>),
}

impl Generator<'_> {
    pub fn name(&self) -> String {
        match self {
            Generator::Exact => "exact".into(),
            Generator::Induced { score, pool } => format!("Q^S of {} (resampling, pool {pool})", score.name()),
            Generator::Statistic(s) => format!("P(y | f(x)) of statistic {}", s.statistic),
        }
    }
}

/// `n` draws from the generator given image `x`; chunk `c` of [`CHUNK`] draws uses stream `c`
/// of `seed`.
pub fn sample(
    model: &Jghm,
    generator: &Generator,
    x: &[usize],
    n: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>, DownstreamError> {
    if bp::log_px(model, x)? == f64::NEG_INFINITY {
        return Err(bp::BpError::ZeroProbability { what: "p(x)", needed: "a text given the image" }.into());
    }
    let class = match generator {
        Generator::Statistic(s) => Some(s.class_of(x)?),
        _ => None,
    };
    let tree = model.tree();
    let chunks: Vec<Vec<Vec<usize>>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = rng::stream(seed, c as u64);
            let mut ws = Workspace::new(model);
            let mut states = vec![0; tree.nodes.len()];
            let len = CHUNK.min(n - c * CHUNK);
            if matches!(generator, Generator::Exact) {
                ws.upward(model, &Tokens { image: Some(x), text: None });
            }
            (0..len)
                .map(|_| match generator {
                    Generator::Exact => {
                        ws.sample_into(model, &mut rng, &mut states);
                        tree.text_leaves.iter().map(|&u| states[u]).collect()
                    }
                    // `x` was checked by `log_px` above: this cannot fail.
                    Generator::Induced { score, pool } => {
                        sample_induced(model, *score, x, *pool, &mut rng).unwrap_or_default()
                    }
                    Generator::Statistic(s) => s.draw(class.expect("set above"), &mut ws, &mut rng, &mut states),
                })
                .collect()
        })
        .collect();
    Ok(chunks.into_iter().flatten().collect())
}

/// The law of the generator over the enumerated texts given `x` (for `Q^S`, the limit of the
/// resampling sampler as its pool grows).
pub fn law(model: &Jghm, generator: &Generator, texts: &SideLaw, x: &[usize]) -> Result<Vec<f64>, DownstreamError> {
    let anchor = if texts.table.part == Part::Image { Part::Text } else { Part::Image };
    crate::evidence::check_tokens(model, anchor, x)?;
    match generator {
        Generator::Exact => texts.conditional(model, x),
        Generator::Induced { score, .. } => Ok(induced_law(*score, texts, x)),
        Generator::Statistic(s) => Ok(s.law(texts, s.class_of(x)?)),
    }
}

/// `Q^S(y | x) = p(y) exp S(x, y) / Σ_{y'} p(y') exp S(x, y')` over the enumerated texts.
pub fn induced_law(score: &dyn Score, texts: &SideLaw, x: &[usize]) -> Vec<f64> {
    let s = score.grid(std::slice::from_ref(&x.to_vec()), &texts.table.tokens);
    induced_from_scores(&texts.table.log_p, &s)
}

/// `Q^S(c | a) = p(c) exp S(a, c) / Σ_{c'} p(c') exp S(a, c')` from `log p(c)` and one anchor's
/// scores `S(a, ·)` over the enumerated candidates (either direction: for `Y→X` the candidates
/// are images and `Q^S(x | y) = P^S(x | y)`, the prior the guided denoiser uses). `NaN` when
/// every weight is zero.
pub fn induced_from_scores(log_p: &[f64], s: &[f64]) -> Vec<f64> {
    let logits: Vec<f64> = log_p.iter().zip(s).map(|(lp, s)| lp + s).collect();
    normalise_log(&logits).unwrap_or_else(|| vec![f64::NAN; logits.len()])
}

/// `KL(P_{Y|X=x} ‖ q(· | x))` with how it was obtained.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    pub kl: Estimate,
    pub method: String,
}

/// Sizes of the Monte Carlo divergence (used only when the texts are not enumerable).
#[derive(Clone, Copy, Debug)]
pub struct KlSpec {
    /// Draws `y ~ p(y | x)`.
    pub samples: usize,
    /// Draws from `p(y)` for `log E exp S(x, Y')`.
    pub pool: usize,
    pub seed: u64,
}

/// `KL(P_{Y|X=x} ‖ q(· | x))` (module doc): exact on enumerable texts, else Monte Carlo.
pub fn divergence(
    model: &Jghm,
    generator: &Generator,
    x: &[usize],
    spec: &KlSpec,
) -> Result<Divergence, DownstreamError> {
    if let Generator::Exact = generator {
        let method = "exact: the generator's law is p(y | x) itself".into();
        return Ok(Divergence { kl: Estimate::exact(0.0), method });
    }
    if info::side_size(model, Part::Text) <= info::SIDE_LIMIT {
        let texts = SideLaw::new(model, Part::Text)?;
        let truth = texts.conditional(model, x)?;
        let q = law(model, generator, &texts, x)?;
        let method = format!("exact over the {} texts of positive probability", texts.table.len());
        return Ok(Divergence { kl: Estimate::exact(kl(&truth, &q)), method });
    }
    monte_carlo_divergence(model, generator, x, spec)
}

/// The Monte Carlo divergence of the module doc (used when the texts are not enumerable;
/// public so tests can check it against the exact value).
pub fn monte_carlo_divergence(
    model: &Jghm,
    generator: &Generator,
    x: &[usize],
    spec: &KlSpec,
) -> Result<Divergence, DownstreamError> {
    if spec.samples < 2 || spec.pool < 2 {
        return Err(info::InfoError::TooFewSamples(spec.samples.min(spec.pool)).into());
    }
    let ys = sample(model, &Generator::Exact, x, spec.samples, spec.seed)?;
    let pmi: Vec<f64> = ys.par_iter().map(|y| bp::pmi(model, x, y).map_or(f64::NEG_INFINITY, |p| p.pmi)).collect();
    match generator {
        Generator::Induced { score, .. } => {
            let x_owned = x.to_vec();
            let xs = std::slice::from_ref(&x_owned);
            let s = score.grid(xs, &ys);
            let d: Vec<f64> = pmi.iter().zip(&s).map(|(p, s)| p - s).collect();
            // log E_{Y'~p(y)} exp S(x, Y') from an independent pool.
            let sampler = Sampler::new(model);
            let mut rng = rng::stream(rng::Purpose::GenerationPool.seed(spec.seed), 0);
            let pool: Vec<Vec<usize>> = (0..spec.pool).map(|_| sampler.pair(&mut rng, false).text).collect();
            let sp = score.grid(xs, &pool);
            let log_z = jackknifed_log_mean_exp(&sp);
            let top = sp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e = Estimate::from_samples(&sp.iter().map(|v| (v - top).exp()).collect::<Vec<_>>());
            let (first, z_se) = (Estimate::from_samples(&d), e.stderr / e.value);
            let (value, stderr) = (first.value + log_z, (first.stderr.powi(2) + z_se.powi(2)).sqrt());
            let kl = Estimate { value, stderr, ci95: [value - 1.96 * stderr, value + 1.96 * stderr] };
            let method = format!(
                "Monte Carlo: mean of PMI - S over {} draws y ~ p(y|x), plus the jackknifed log-mean-exp of S over {} draws from p(y) (bias O(M^-2), stderr by the delta method), seed {}",
                spec.samples, spec.pool, spec.seed
            );
            Ok(Divergence { kl, method })
        }
        Generator::Statistic(st) => {
            let t = st.class_of(x)?;
            let cut = &st.images.cut;
            let d: Vec<f64> = ys
                .par_iter()
                .zip(&pmi)
                .map(|(y, p)| {
                    let mut ws = Workspace::new(model);
                    upward_side(&mut ws, model, Part::Text, y);
                    let mut w = vec![0.0; cut.size()];
                    cut.posterior_into(model, &ws, &mut w);
                    // log p(y|x)/p(y|t) = PMI(x, y) - log Σ_w p(w|t) p(w|y) / p(w)
                    p - weighted_inner(st.latent(t), &w, &cut.prior).ln()
                })
                .collect();
            let method = format!(
                "Monte Carlo: mean of the exact log-ratio PMI(x,y) - PMI_T(t,y) over {} draws y ~ p(y|x), seed {}",
                spec.samples, spec.seed
            );
            Ok(Divergence { kl: Estimate::from_samples(&d), method })
        }
        Generator::Exact => unreachable!("handled by the caller"),
    }
}

/// `E_X KL(P_{Y|X} ‖ q(· | X))` over every image, both sides enumerated: the left side of T9.
pub fn expected_divergence(model: &Jghm, generator: &Generator) -> Result<f64, DownstreamError> {
    let texts = SideLaw::new(model, Part::Text)?;
    let images = SideLaw::new(model, Part::Image)?;
    let terms: Vec<f64> = (0..images.table.len())
        .into_par_iter()
        .map(|i| {
            let x = &images.table.tokens[i];
            let truth = texts.conditional_from_latent(images.table.latent_row(i));
            Ok(images.table.p(i) * kl(&truth, &law(model, generator, &texts, x)?))
        })
        .collect::<Result<_, DownstreamError>>()?;
    Ok(terms.iter().sum())
}

/// T9 on a model small enough to enumerate: the expected divergence `E_X KL(P_{Y|X} ‖ q(· | X))`
/// of a generator ([`expected_divergence`]) next to the closed form the theorem equates it to:
/// `0` for exact BP, the T4 excess risk `ℓ_∞^{X→Y}(S) − ℓ_∞^{X→Y}(PMI)` for the induced `Q^S`,
/// and `Suff_Y(f)` for the generator through a statistic `f` of the image.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct T9Check {
    pub expected_kl: f64,
    pub t9_reference: f64,
}

impl T9Check {
    /// Both sides of T9 for `generator`; `None` when the model is too large to enumerate.
    pub fn of(model: &Jghm, generator: &Generator) -> Result<Option<Self>, DownstreamError> {
        if info::exact_work(model).is_err() {
            return Ok(None);
        }
        let expected_kl = expected_divergence(model, generator)?;
        let t9_reference = match generator {
            Generator::Exact => 0.0,
            Generator::Induced { score, .. } => super::zero_shot::contrastive_excess(model, *score, 2, 0)?.value,
            Generator::Statistic(t) => {
                let en = info::Enumeration::new(model)?;
                let classes = Evaluator::new(model, Part::Image, t.statistic)?.classes(&en.image);
                Gap::new(&en, Part::Image, classes).kl_form()
            }
        };
        Ok(Some(T9Check { expected_kl, t9_reference }))
    }
}

/// The divergence as `jghm generate --kl` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct KlReport {
    pub value: f64,
    pub stderr: f64,
    pub method: String,
}

/// Everything `jghm generate` reports: `n` texts drawn from the generator given the image and,
/// when asked, `KL(p(y|x) ‖ generator)` with both sides of T9 (the latter on enumerable models).
#[derive(Clone, Debug, Serialize)]
pub struct GenerateReport {
    pub generator: String,
    pub samples: Vec<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kl: Option<KlReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_kl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t9_reference: Option<f64>,
}

/// Runs `jghm generate`: [`sample`], then [`divergence`] and [`T9Check`] when `kl` is given.
pub fn generate(
    model: &Jghm,
    generator: &Generator,
    x: &[usize],
    n: usize,
    seed: u64,
    kl: Option<&KlSpec>,
) -> Result<GenerateReport, DownstreamError> {
    let samples = sample(model, generator, x, n, seed)?;
    let mut report =
        GenerateReport { generator: generator.name(), samples, kl: None, expected_kl: None, t9_reference: None };
    if let Some(spec) = kl {
        let d = divergence(model, generator, x, spec)?;
        report.kl = Some(KlReport { value: d.kl.value, stderr: d.kl.stderr, method: d.method });
        if let Some(t9) = T9Check::of(model, generator)? {
            (report.expected_kl, report.t9_reference) = (Some(t9.expected_kl), Some(t9.t9_reference));
        }
    }
    Ok(report)
}
