//! The CLIP losses (the book, T2-T4) for finite and infinite batches, and the induced conditional;
//! theorems T2-T4.
//!
//! A batch is `K` i.i.d. pairs. With anchor `A` and candidates `C` (`A = X, C = Y` for
//! `X→Y`; swapped for `Y→X`):
//!
//! ```text
//! ℓ_K(S) = E[ -S(A_1, C_1) + log Σ_{j≤K} exp S(A_1, C_j) ],   C_1 ~ p(·|A_1), C_{j≥2} ~ p(c) i.i.d.
//! ℓ_∞(S) = lim_K (ℓ_K(S) - log K) = -E[S(A, C)] + E_A log E_{C'~p_C} exp S(A, C')
//! Q^S(c | a) = p(c) exp S(a, c) / E_{C'} exp S(a, C')
//! L_K = (ℓ_K^{X→Y} + ℓ_K^{Y→X}) / 2
//! ```
//!
//! # Exact finite K
//! Only the multiset of the `K-1` negatives matters, so the expectation runs over the
//! compositions `m` of `K-1` into `|C|` parts, with multinomial weight
//! `(K-1)! / Π m_c! · Π p(c)^{m_c}` and negative mass `N = Σ_c m_c exp S(a, c)`:
//! `C(K+|C|-2, |C|-1)` terms instead of `|C|^{K-1}`; the work `|A|·|C|·C(K+|C|-2, |C|-1)` is
//! refused beyond [`crate::info::WORK_LIMIT`].
//!
//! # Monte Carlo
//! Finite `K`: batches of `K` pairs, each batch's loss averaged over its `K` anchors (each anchor
//! is an unbiased draw of `ℓ_K` by exchangeability); batches are i.i.d., so the standard error is
//! that of the batch means. `K = ∞`: the nested estimator `-S(a, c) + log mean_{m≤M} exp S(a, C'_m)`
//! is biased by `-Var/(2 M m²) + O(M^{-2})` (Jensen); we remove the `1/M` term by the
//! half-sample jackknife `2 log mean_M - (log mean_{M/2}' + log mean_{M/2}'')/2`, leaving a bias
//! `O(M^{-2})`, stated in the method.

use rayon::prelude::*;
use serde::Serialize;
use statrs::function::gamma::ln_gamma;

use crate::info::{Enumeration, Estimate, InfoError, WORK_LIMIT};
use crate::logspace::log_sum_exp;
use crate::model::{Jghm, Part};
use crate::rng::{self, Rng};
use crate::sample::Sampler;
use crate::score::{Pmi, Score};

/// Which side is the anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// `ℓ^{X→Y}`: an image picks its text among `K`.
    ImageToText,
    /// `ℓ^{Y→X}`: a text picks its image among `K`.
    TextToImage,
}

/// Batch size: finite `K ≥ 1` or the large-batch limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    Finite(usize),
    Infinite,
}

/// A positive integer `K`, or `inf` for the large-batch limit.
impl std::str::FromStr for Batch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("inf") {
            return Ok(Batch::Infinite);
        }
        match s.parse::<usize>() {
            Ok(k) if k >= 1 => Ok(Batch::Finite(k)),
            _ => Err(format!("must be a positive integer or 'inf', got '{s}'")),
        }
    }
}

impl Serialize for Batch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Batch::Finite(k) => s.serialize_u64(*k as u64),
            Batch::Infinite => s.serialize_str("inf"),
        }
    }
}

/// The exact joint law of (anchor, candidate) seen from one direction, with a score on it.
pub struct View {
    /// `p(a)`.
    pub pa: Vec<f64>,
    /// `p(c)`.
    pub pc: Vec<f64>,
    /// `p(c | a)`, row-major `|A| × |C|`.
    pub cond: Vec<f64>,
    /// `S(a, c)`, row-major `|A| × |C|`.
    pub s: Vec<f64>,
}

/// The enumeration with its PMI grid: the exact ground for every loss.
pub struct Exact<'e, 'm> {
    pub en: &'e Enumeration<'m>,
    /// `PMI(x_i, y_j)`, row-major `|X| × |Y|`.
    pub pmi: Vec<f64>,
}

impl<'e, 'm> Exact<'e, 'm> {
    pub fn new(en: &'e Enumeration<'m>) -> Self {
        Exact { en, pmi: en.pmi_grid() }
    }

    /// `S` on every enumerated pair, row-major `|X| × |Y|`.
    pub fn scores(&self, score: &dyn Score) -> Vec<f64> {
        score.grid(&self.en.image.tokens, &self.en.text.tokens)
    }

    /// The view of direction `dir` for the score grid `s` (`|X| × |Y|`):
    /// `p(c | a) = p(c) exp PMI(a, c)`.
    pub fn view(&self, s: &[f64], dir: Direction) -> View {
        let (nx, ny) = (self.en.image.len(), self.en.text.len());
        let px: Vec<f64> = (0..nx).map(|i| self.en.image.p(i)).collect();
        let py: Vec<f64> = (0..ny).map(|j| self.en.text.p(j)).collect();
        let (pa, pc, na, nc) = match dir {
            Direction::ImageToText => (px, py, nx, ny),
            Direction::TextToImage => (py, px, ny, nx),
        };
        let at = |a: usize, c: usize| match dir {
            Direction::ImageToText => a * ny + c,
            Direction::TextToImage => c * ny + a,
        };
        let mut cond = vec![0.0; na * nc];
        let mut sv = vec![0.0; na * nc];
        for a in 0..na {
            for c in 0..nc {
                cond[a * nc + c] = pc[c] * self.pmi[at(a, c)].exp();
                sv[a * nc + c] = s[at(a, c)];
            }
        }
        View { pa, pc, cond, s: sv }
    }

    /// `ℓ_K^{dir}(S)` (or `ℓ_∞`) exactly.
    pub fn loss(&self, s: &[f64], dir: Direction, batch: Batch) -> Result<f64, InfoError> {
        let v = self.view(s, dir);
        match batch {
            Batch::Infinite => Ok(v.loss_infinite()),
            Batch::Finite(k) => v.loss_finite(k),
        }
    }

    /// `L_K(S) = (ℓ_K^{X→Y}(S) + ℓ_K^{Y→X}(S)) / 2` exactly.
    pub fn clip_loss(&self, s: &[f64], batch: Batch) -> Result<f64, InfoError> {
        Ok((self.loss(s, Direction::ImageToText, batch)? + self.loss(s, Direction::TextToImage, batch)?) / 2.0)
    }
}

/// `log(p)` with `0·log 0 = 0` handled by the callers (they skip `p = 0`).
fn ln(x: f64) -> f64 {
    x.ln()
}

impl View {
    pub fn anchors(&self) -> usize {
        self.pa.len()
    }
    pub fn candidates(&self) -> usize {
        self.pc.len()
    }
    fn row<'a>(&self, m: &'a [f64], a: usize) -> &'a [f64] {
        let n = self.candidates();
        &m[a * n..(a + 1) * n]
    }

    /// `ℓ_∞(S) = Σ_a p(a) [ -Σ_c p(c|a) S(a,c) + log Σ_c p(c) exp S(a,c) ]`.
    pub fn loss_infinite(&self) -> f64 {
        (0..self.anchors())
            .map(|a| {
                let (cond, s) = (self.row(&self.cond, a), self.row(&self.s, a));
                let positive: f64 = cond.iter().zip(s).filter(|(p, _)| **p > 0.0).map(|(p, s)| p * s).sum();
                let partition = log_sum_exp(&self.pc.iter().zip(s).map(|(p, s)| ln(*p) + s).collect::<Vec<_>>());
                self.pa[a] * (partition - positive)
            })
            .sum()
    }

    /// `log Q^S(c | a) = log p(c) + S(a, c) - log Σ_{c'} p(c') exp S(a, c')`, for every `c`.
    pub fn log_induced_conditional(&self, a: usize) -> Vec<f64> {
        let s = self.row(&self.s, a);
        let logits: Vec<f64> = self.pc.iter().zip(s).map(|(p, s)| ln(*p) + s).collect();
        let z = log_sum_exp(&logits);
        logits.iter().map(|l| l - z).collect()
    }

    /// T4's right-hand side: `E_A KL(P_{C|A} ‖ Q^S_{C|A})`, computed from its definition.
    pub fn excess_kl(&self) -> f64 {
        (0..self.anchors())
            .map(|a| {
                let q = self.log_induced_conditional(a);
                let kl: f64 = self
                    .row(&self.cond, a)
                    .iter()
                    .zip(&q)
                    .filter(|(p, _)| **p > 0.0)
                    .map(|(p, lq)| p * (p.ln() - lq))
                    .sum();
                self.pa[a] * kl
            })
            .sum()
    }

    /// T4's finite-`K` form: `ℓ_K(S) - ℓ_K(PMI) = E KL(Π(· | A, C_{1..K}) ‖ softmax_j S(A, C_j))`.
    /// Put the positive at a uniform index `J` among the `K` candidates; given the anchor and
    /// the candidates, `J`'s posterior is `Π(i) ∝ exp PMI(A, C_i)` (the candidates' law is
    /// `Π_j p(c_j) · (1/K) Σ_i exp PMI(a, c_i)`). `ℓ_K(S)` is the cross-entropy of `softmax S`
    /// against `Π`, so `ℓ_K(S) = E[H(Π) + KL(Π ‖ softmax S)]` and the PMI attains `E H(Π)` (T2).
    /// Summed over the ordered `K`-tuples of candidates (`|A|·|C|^K·K` terms, refused beyond
    /// [`WORK_LIMIT`]): a route independent of the composition sum of [`View::loss_finite`].
    pub fn positive_posterior_kl(&self, k: usize) -> Result<f64, InfoError> {
        assert!(k >= 1, "a batch has at least one pair");
        let (na, nc) = (self.anchors(), self.candidates());
        let work = na as f64 * (nc as f64).powi(k as i32) * k as f64;
        if work > WORK_LIMIT {
            return Err(InfoError::TooLarge {
                what: format!("the sum over ordered batch-{k} candidate tuples ({na} anchors, {nc} candidates)"),
                size: work,
                limit: WORK_LIMIT,
                instead: "use a smaller batch".into(),
            });
        }
        let per_anchor: Vec<f64> = (0..na).into_par_iter().map(|a| self.pa[a] * self.tuple_kl(a, k)).collect();
        Ok(per_anchor.iter().sum())
    }

    /// `Σ_{c_1..c_K} Π_j p(c_j) · mean_i r_i · KL(Π ‖ softmax S)` for one anchor, `r_i = exp PMI(a, c_i)`.
    fn tuple_kl(&self, a: usize, k: usize) -> f64 {
        let (nc, s, cond) = (self.candidates(), self.row(&self.s, a), self.row(&self.cond, a));
        let ratio: Vec<f64> = cond.iter().zip(&self.pc).map(|(c, p)| c / p).collect();
        let mut tuple = vec![0usize; k];
        let mut total = 0.0;
        loop {
            let weight: f64 = tuple.iter().map(|&c| self.pc[c]).product();
            let r_sum: f64 = tuple.iter().map(|&c| ratio[c]).sum();
            if weight > 0.0 && r_sum > 0.0 {
                let scores: Vec<f64> = tuple.iter().map(|&c| s[c]).collect();
                let log_z = log_sum_exp(&scores);
                let kl: f64 = tuple
                    .iter()
                    .filter(|&&c| ratio[c] > 0.0)
                    .map(|&c| {
                        let post = ratio[c] / r_sum;
                        post * (post.ln() - (s[c] - log_z))
                    })
                    .sum();
                total += weight * r_sum / k as f64 * kl;
            }
            // The next tuple in mixed-radix order; done after the last.
            let Some(j) = tuple.iter().position(|&c| c + 1 < nc) else { break };
            tuple[..j].iter_mut().for_each(|c| *c = 0);
            tuple[j] += 1;
        }
        total
    }

    /// The first-order rate of T3: `ℓ_K - log K - ℓ_∞ = c_1 / K + O(K^{-2})` with
    /// `c_1 = E_A[ E_{C|A} e^S / m(A) - 1 - v(A) / (2 m(A)²) ]`, `m = E_{p_C} e^S`, `v = Var_{p_C} e^S`.
    pub fn rate_constant(&self) -> f64 {
        (0..self.anchors())
            .map(|a| {
                let s = self.row(&self.s, a);
                let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
                let m: f64 = self.pc.iter().zip(&e).map(|(p, e)| p * e).sum();
                let m2: f64 = self.pc.iter().zip(&e).map(|(p, e)| p * e * e).sum();
                let mu1: f64 = self.row(&self.cond, a).iter().zip(&e).map(|(p, e)| p * e).sum();
                let v = m2 - m * m;
                self.pa[a] * (mu1 / m - 1.0 - v / (2.0 * m * m))
            })
            .sum()
    }

    /// Number of compositions of `K - 1` negatives into `|C|` kinds: `C(K+|C|-2, |C|-1)`.
    pub fn compositions(&self, k: usize) -> f64 {
        let (n, c) = ((k + self.candidates()) as f64 - 2.0, self.candidates() as f64 - 1.0);
        (ln_gamma(n + 1.0) - ln_gamma(c + 1.0) - ln_gamma(n - c + 1.0)).exp().round()
    }

    /// The work of [`View::loss_finite`], `|A|·|C|·C(K+|C|-2, |C|-1)`; refused beyond
    /// [`WORK_LIMIT`] (checked apart from the loss, so the limit can be tested without paying it).
    pub fn finite_work(&self, k: usize) -> Result<f64, InfoError> {
        let work = self.anchors() as f64 * self.candidates() as f64 * self.compositions(k);
        if work > WORK_LIMIT {
            return Err(InfoError::TooLarge {
                what: format!(
                    "the exact batch-{k} loss work |A|·|C|·C(K+|C|-2,|C|-1) ({} anchors, {} candidates)",
                    self.anchors(),
                    self.candidates()
                ),
                size: work,
                limit: WORK_LIMIT,
                instead: "use Monte Carlo (--samples N --seed S) or a smaller batch".into(),
            });
        }
        Ok(work)
    }

    /// `ℓ_K(S)` exactly (module doc): refused beyond the work limit. The multinomial weights are
    /// formed from `ln Γ` values of size about `K ln K`, so the relative rounding error grows with
    /// `K`: for a constant score, whose loss is `log K`, it is `3·10^-13` at `K = 1000` and
    /// `3·10^-10` at `K = 2·10^5`.
    pub fn loss_finite(&self, k: usize) -> Result<f64, InfoError> {
        assert!(k >= 1, "a batch has at least one pair");
        self.finite_work(k)?;
        let ln_fact: Vec<f64> = (0..k).map(|m| ln_gamma(m as f64 + 1.0)).collect();
        let ln_pc: Vec<f64> = self.pc.iter().map(|p| p.ln()).collect();
        let per_anchor: Vec<f64> = (0..self.anchors())
            .into_par_iter()
            .map(|a| self.pa[a] * self.anchor_loss(a, k, &ln_fact, &ln_pc))
            .collect();
        Ok(per_anchor.iter().sum())
    }

    /// `E[ -S(a, C_1) + log(exp S(a, C_1) + N) | A = a ]`, in units shifted by `max_c S(a, c)`.
    fn anchor_loss(&self, a: usize, k: usize, ln_fact: &[f64], ln_pc: &[f64]) -> f64 {
        let s = self.row(&self.s, a);
        let cond = self.row(&self.cond, a);
        let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
        // -E[S(a, C_1)] + top = -Σ_c p(c|a) log e_c
        let positive: f64 = cond.iter().zip(&e).filter(|(p, _)| **p > 0.0).map(|(p, e)| p * e.ln()).sum();
        let walk = Compositions { e: &e, cond, ln_fact, ln_pc, total: k - 1 };
        walk.expect(0, k - 1, 0.0, 0.0) - positive
    }
}

/// The walk over the compositions of the negatives for one anchor.
struct Compositions<'a> {
    e: &'a [f64],
    cond: &'a [f64],
    ln_fact: &'a [f64],
    ln_pc: &'a [f64],
    total: usize,
}

impl Compositions<'_> {
    /// `Σ_{m_i..} w(m) Σ_{c_1} p(c_1|a) log(e_{c_1} + N(m))` over the counts of kinds `i..`,
    /// with `left` negatives still to place, `log_w` and `n` accumulated so far.
    fn expect(&self, i: usize, left: usize, log_w: f64, n: f64) -> f64 {
        let last = i + 1 == self.e.len();
        let range = if last { left..=left } else { 0..=left };
        range
            .map(|m| {
                // w(m) = (K-1)! Π_c p(c)^{m_c} / m_c!
                let lw = log_w - self.ln_fact[m] + if m > 0 { m as f64 * self.ln_pc[i] } else { 0.0 };
                let nn = n + m as f64 * self.e[i];
                if last {
                    let w = (lw + self.ln_fact[self.total]).exp();
                    let inner: f64 =
                        self.cond.iter().zip(self.e).filter(|(p, _)| **p > 0.0).map(|(p, e)| p * (e + nn).ln()).sum();
                    w * inner
                } else {
                    self.expect(i + 1, left - m, lw, nn)
                }
            })
            .sum()
    }
}

/// Monte Carlo estimates of both directions and of `L_K` for several scores on the same batches
/// (common random numbers, so differences between scores have small standard errors).
#[derive(Clone, Debug)]
pub struct McLosses {
    /// Per score, per batch (or per outer pair for `K = ∞`): `[ℓ^{X→Y}, ℓ^{Y→X}]` terms.
    pub terms: Vec<Vec<[f64; 2]>>,
    /// The method, stated (including the bias treatment for `K = ∞`).
    pub method: String,
}

/// Batches (or outer pairs) per parallel chunk; one random stream per chunk.
pub const MC_CHUNK: usize = 64;
/// Inner samples of the nested estimator of `ℓ_∞`.
pub const INNER_SAMPLES: usize = 256;

/// Monte Carlo over `samples` batches of size `batch` (or `samples` outer pairs for `K = ∞`).
pub fn monte_carlo(
    model: &Jghm,
    scores: &[&dyn Score],
    batch: Batch,
    samples: usize,
    seed: u64,
) -> Result<McLosses, InfoError> {
    if samples < 2 {
        return Err(InfoError::TooFewSamples(samples));
    }
    let sampler = Sampler::new(model);
    let chunks: Vec<Vec<Vec<[f64; 2]>>> = (0..samples.div_ceil(MC_CHUNK))
        .into_par_iter()
        .map(|c| {
            let mut rng = rng::stream(seed, c as u64);
            let len = MC_CHUNK.min(samples - c * MC_CHUNK);
            (0..len)
                .map(|_| match batch {
                    Batch::Finite(k) => batch_terms(&sampler, scores, k, &mut rng),
                    Batch::Infinite => nested_terms(&sampler, scores, INNER_SAMPLES, &mut rng),
                })
                .collect()
        })
        .collect();
    let mut terms = vec![vec![]; scores.len()];
    for chunk in chunks {
        for per_batch in chunk {
            for (t, v) in terms.iter_mut().zip(per_batch) {
                t.push(v);
            }
        }
    }
    let method = match batch {
        Batch::Finite(k) => format!(
            "Monte Carlo: {samples} batches of {k} i.i.d. pairs, seed {seed}; loss averaged over the batch's anchors; stderr over batches"
        ),
        Batch::Infinite => format!(
            "Monte Carlo, nested: {samples} outer pairs, {INNER_SAMPLES} inner draws each, seed {seed}; the O(1/M) Jensen bias removed by the half-sample jackknife (remaining bias O(M^-2)); stderr over outer pairs"
        ),
    };
    Ok(McLosses { terms, method })
}

/// One batch: for each score, `[(1/K) Σ_i -log softmax_j S(x_i, y_j)[i], (1/K) Σ_i -log softmax_j S(x_j, y_i)[i]]`.
fn batch_terms(sampler: &Sampler, scores: &[&dyn Score], k: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    let pairs: Vec<_> = (0..k).map(|_| sampler.pair(rng, false)).collect();
    let xs: Vec<Vec<usize>> = pairs.iter().map(|p| p.image.clone()).collect();
    let ys: Vec<Vec<usize>> = pairs.iter().map(|p| p.text.clone()).collect();
    scores
        .iter()
        .map(|score| {
            let g = score.grid(&xs, &ys);
            let (mut xy, mut yx) = (0.0, 0.0);
            for i in 0..k {
                let row: Vec<f64> = (0..k).map(|j| g[i * k + j]).collect();
                let col: Vec<f64> = (0..k).map(|j| g[j * k + i]).collect();
                xy += log_sum_exp(&row) - g[i * k + i];
                yx += log_sum_exp(&col) - g[i * k + i];
            }
            [xy / k as f64, yx / k as f64]
        })
        .collect()
}

/// One outer pair of the nested estimator of `ℓ_∞`, jackknifed (module doc).
fn nested_terms(sampler: &Sampler, scores: &[&dyn Score], m: usize, rng: &mut Rng) -> Vec<[f64; 2]> {
    let outer = sampler.pair(rng, false);
    let inner: Vec<_> = (0..m).map(|_| sampler.pair(rng, false)).collect();
    let xs: Vec<Vec<usize>> = inner.iter().map(|p| p.image.clone()).collect();
    let ys: Vec<Vec<usize>> = inner.iter().map(|p| p.text.clone()).collect();
    let x0 = std::slice::from_ref(&outer.image);
    let y0 = std::slice::from_ref(&outer.text);
    scores
        .iter()
        .map(|score| {
            let s = score.score(&outer.image, &outer.text);
            let to_text = score.grid(x0, &ys);
            let to_image = score.grid(&xs, y0);
            [jackknifed_log_mean_exp(&to_text) - s, jackknifed_log_mean_exp(&to_image) - s]
        })
        .collect()
}

/// `2 log mean(exp v) - (log mean(exp v[..M/2]) + log mean(exp v[M/2..])) / 2`: the
/// `O(1/M)` bias of `log mean` cancels.
pub fn jackknifed_log_mean_exp(v: &[f64]) -> f64 {
    let lme = |v: &[f64]| log_sum_exp(v) - (v.len() as f64).ln();
    let h = v.len() / 2;
    2.0 * lme(v) - (lme(&v[..h]) + lme(&v[h..])) / 2.0
}

/// An approximate draw from `Q^S(· | x)` by sampling-importance-resampling: `m` texts from
/// `p(y)`, one kept with probability `∝ exp S(x, y)`. Exact as `m → ∞`. An error for an image
/// that does not fit the model (length, vocabulary).
pub fn sample_induced(
    model: &Jghm,
    score: &dyn Score,
    x: &[usize],
    m: usize,
    rng: &mut Rng,
) -> Result<Vec<usize>, crate::evidence::EvidenceError> {
    crate::evidence::check_tokens(model, Part::Image, x)?;
    let sampler = Sampler::new(model);
    let ys: Vec<Vec<usize>> = (0..m).map(|_| sampler.pair(rng, false).text).collect();
    let s = score.grid(std::slice::from_ref(&x.to_vec()), &ys);
    let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let w: Vec<f64> = s.iter().map(|v| (v - top).exp()).collect();
    Ok(ys[rng::categorical(rng, &w)].clone())
}

/// The CLIP loss `L_K(S) = (ℓ_K^{X→Y}(S) + ℓ_K^{Y→X}(S))/2` of a score next to its optimum
/// `L_K(PMI)` (T2) and the excess `L_K(S) − L_K(PMI) ≥ 0` (T4 at `K = ∞`), as `jghm clip-loss`
/// reports them.
#[derive(Clone, Debug)]
pub struct ClipLossReport {
    pub loss: Estimate,
    pub optimum: Estimate,
    pub excess: Estimate,
    /// `ℓ_K^{X→Y}(S)` and `ℓ_K^{Y→X}(S)`.
    pub directions: [f64; 2],
    pub method: String,
}

impl ClipLossReport {
    /// Exact by enumeration ([`Exact::loss`], [`Exact::clip_loss`]); an error when the batch is
    /// too large to sum over its compositions.
    ///
    /// ```
    /// use jghm::contrastive::{Batch, ClipLossReport};
    /// use jghm::info::Enumeration;
    /// use jghm::score::{Perturbed, Pmi};
    /// let model = jghm::RandomSpec::symmetric(2, 2, 2, 1).build()?;
    /// let en = Enumeration::new(&model)?;
    /// let noisy = Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed: 7 };
    /// let r = ClipLossReport::exact(&en, &noisy, Batch::Finite(4))?;
    /// assert!(r.excess.value > 0.0); // T2: the PMI is the minimiser
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exact(en: &Enumeration, score: &dyn Score, batch: Batch) -> Result<Self, InfoError> {
        let ex = Exact::new(en);
        let s = ex.scores(score);
        let xy = ex.loss(&s, Direction::ImageToText, batch)?;
        let yx = ex.loss(&s, Direction::TextToImage, batch)?;
        let best = ex.clip_loss(&ex.pmi, batch)?;
        let loss = (xy + yx) / 2.0;
        let method = match batch {
            Batch::Finite(_) => "exact enumeration (sum over the compositions of the K-1 negatives)",
            Batch::Infinite => "exact enumeration",
        };
        Ok(ClipLossReport {
            loss: Estimate::exact(loss),
            optimum: Estimate::exact(best),
            excess: Estimate::exact(loss - best),
            directions: [xy, yx],
            method: method.into(),
        })
    }

    /// Exact when `exact` holds the enumeration of `model` and this batch can be summed over, else
    /// Monte Carlo with `n` batches of seed `seed`: a batch too large to sum over falls back to Monte Carlo unless `required`
    /// (`--exact`), when its error is returned.
    /// The flat report of `jghm clip-loss --json`: `loss`, `optimum`, `excess` with their
    /// `_stderr`, `loss_image_to_text`, `loss_text_to_image`, `batch`, `score`, `method`.
    pub fn flat_json(&self, batch: Batch, score: &str) -> serde_json::Value {
        serde_json::json!({
            "loss": self.loss.value, "stderr": self.loss.stderr,
            "optimum": self.optimum.value, "optimum_stderr": self.optimum.stderr,
            "excess": self.excess.value, "excess_stderr": self.excess.stderr,
            "loss_image_to_text": self.directions[0], "loss_text_to_image": self.directions[1],
            "batch": batch, "score": score, "method": self.method,
        })
    }

    pub fn exact_or_monte_carlo(
        model: &Jghm,
        exact: Option<&Enumeration>,
        required: bool,
        score: &dyn Score,
        batch: Batch,
        n: usize,
        seed: u64,
    ) -> Result<Self, InfoError> {
        if let Some(en) = exact {
            match ClipLossReport::exact(en, score, batch) {
                Ok(r) => return Ok(r),
                Err(e) if required => return Err(e),
                Err(_) => {} // enumerable model, but this batch is too large: Monte Carlo below.
            }
        }
        ClipLossReport::monte_carlo(model, score, batch, n, seed)
    }

    /// Monte Carlo over `n` batches ([`monte_carlo`]), the score and the PMI on the same batches:
    /// the excess is the mean of the per-batch differences, with their standard error.
    pub fn monte_carlo(model: &Jghm, score: &dyn Score, batch: Batch, n: usize, seed: u64) -> Result<Self, InfoError> {
        let pmi = Pmi { model };
        let mc = monte_carlo(model, &[score, &pmi], batch, n, seed)?;
        let sym = |k: usize| mc.terms[k].iter().map(|t| (t[0] + t[1]) / 2.0).collect::<Vec<_>>();
        let (s, p) = (sym(0), sym(1));
        let diff: Vec<f64> = s.iter().zip(&p).map(|(a, b)| a - b).collect();
        let dir = |d: usize| Estimate::from_samples(&mc.terms[0].iter().map(|t| t[d]).collect::<Vec<_>>()).value;
        Ok(ClipLossReport {
            loss: Estimate::from_samples(&s),
            optimum: Estimate::from_samples(&p),
            excess: Estimate::from_samples(&diff),
            directions: [dir(0), dir(1)],
            method: mc.method + " (excess from paired differences on the same batches)",
        })
    }
}
