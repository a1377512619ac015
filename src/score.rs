//! Scores `S(x, y)` for contrastive learning (the book, T2-T4), and the T7 representation.
//!
//! A [`Score`] evaluates one pair, or a whole grid `S(x_i, y_j)` (scores that factor through
//! encoders encode each side once). Implementations:
//! - [`Pmi`]: `PMI(x, y) = log p(x, y) - log p(x) - log p(y)`, by three BP passes (T2's optimum);
//! - [`LogWeighted`]: the T7 two-tower form `log Σ_w f*(x)_w g*(y)_w / p(w)` with
//!   `f*(x) = p(w | x)`, `g*(y) = p(w | y)` (`w` the root, or the trunk leaves' joint state);
//! - [`Bilinear`]: `⟨f(x), g(y)⟩ / τ` of any two [`Encoder`]s (learned encoders plug in here);
//! - [`Shifted`], [`Perturbed`], [`Table`]: test scores (`S + c(x)`, `S + a·u(x, y)`, and any
//!   score given as a table, e.g. a score coarsened through a statistic).

use rayon::prelude::*;
use std::collections::HashMap;

use crate::bp::{self, Workspace};
use crate::evidence::{check_tokens, EvidenceError};
use crate::info::{upward_side, weighted_inner, Cut};
use crate::model::{Jghm, Part};

/// `Ok` when `x` fits `model`'s image side and `y` its text side.
fn check_pair(model: &Jghm, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
    check_tokens(model, Part::Image, x)?;
    check_tokens(model, Part::Text, y)
}

/// A similarity score `S(x, y)` (log domain: `exp S` is the unnormalised weight of a pair).
pub trait Score: Sync {
    /// A short name for reports.
    fn name(&self) -> String;

    /// `S(x, y)`: a number for every pair, `-inf` (no weight) for tokens outside the score's
    /// domain, so that a loss over scores never stops on one bad pair. [`Score::try_score`] is
    /// the checked form.
    fn score(&self, x: &[usize], y: &[usize]) -> f64;

    /// `Ok` when `(x, y)` is in the score's domain; for a score of a model, when `x` and `y` fit
    /// its two sides (length and vocabulary), else an error naming the side, the position and
    /// the token. The default accepts every pair (a score defined on all sequences).
    fn check(&self, _x: &[usize], _y: &[usize]) -> Result<(), EvidenceError> {
        Ok(())
    }

    /// `S(x, y)` after [`Score::check`]: the error where [`Score::score`] gives `-inf`.
    fn try_score(&self, x: &[usize], y: &[usize]) -> Result<f64, EvidenceError> {
        self.check(x, y)?;
        Ok(self.score(x, y))
    }

    /// `S(x_i, y_j)` for every pair, row-major `xs.len() × ys.len()`. The default calls
    /// [`Score::score`] per pair, parallel over rows (order-independent: each entry is computed
    /// on its own).
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let mut out = vec![0.0; xs.len() * ys.len()];
        if ys.is_empty() {
            return out;
        }
        out.par_chunks_mut(ys.len()).zip(xs).for_each(|(row, x)| {
            for (o, y) in row.iter_mut().zip(ys) {
                *o = self.score(x, y);
            }
        });
        out
    }
}

impl<S: Score + ?Sized> Score for &S {
    fn name(&self) -> String {
        (**self).name()
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        (**self).check(x, y)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        (**self).score(x, y)
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        (**self).grid(xs, ys)
    }
}

impl<S: Score + ?Sized + Send> Score for Box<S> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        (**self).check(x, y)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        (**self).score(x, y)
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        (**self).grid(xs, ys)
    }
}

/// The pointwise mutual information, by BP: `log p(x, y) - log p(x) - log p(y)`
/// (`-inf` for a pair of probability zero). The optimal score of T2.
pub struct Pmi<'m> {
    pub model: &'m Jghm,
}

impl Score for Pmi<'_> {
    fn name(&self) -> String {
        "pmi".into()
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        check_pair(self.model, x, y)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        bp::pmi(self.model, x, y).map_or(f64::NEG_INFINITY, |p| p.pmi)
    }
    /// On a grid: the T7 form, which equals the PMI (tested in `t7_*`), when the separator is
    /// small; else pair by pair.
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        match LogWeighted::new(self.model) {
            Ok(t7) => t7.grid(xs, ys),
            Err(_) => {
                let pairwise = PairwisePmi { model: self.model };
                pairwise.grid(xs, ys)
            }
        }
    }
}

struct PairwisePmi<'m> {
    model: &'m Jghm,
}
impl Score for PairwisePmi<'_> {
    fn name(&self) -> String {
        "pmi".into()
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        check_pair(self.model, x, y)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        bp::pmi(self.model, x, y).map_or(f64::NEG_INFINITY, |p| p.pmi)
    }
}

/// An encoder of one side into `R^p`.
pub trait Encoder: Sync {
    fn dim(&self) -> usize;
    /// `f(tokens)`.
    fn encode(&self, tokens: &[usize]) -> Vec<f64>;
    /// Encodes many sequences (default: one by one, in parallel, order kept).
    fn encode_all(&self, seqs: &[Vec<usize>]) -> Vec<Vec<f64>> {
        seqs.par_iter().map(|s| self.encode(s)).collect()
    }
}

/// The T7 encoder: the posterior of the separator, `f*(x) = (p(w | x))_w` (the root posterior
/// without a trunk, the trunk leaves' joint posterior with one). NaN for impossible input and
/// for tokens that do not fit the model ([`PosteriorEncoder::try_encode`] says which).
pub struct PosteriorEncoder<'m> {
    pub model: &'m Jghm,
    pub part: Part,
    pub cut: Cut,
}

impl PosteriorEncoder<'_> {
    /// `f*(tokens)`, or an error when the tokens do not fit the model (length, vocabulary).
    pub fn try_encode(&self, tokens: &[usize]) -> Result<Vec<f64>, crate::evidence::EvidenceError> {
        crate::evidence::check_tokens(self.model, self.part, tokens)?;
        let mut ws = Workspace::new(self.model);
        Ok(self.encode_checked(&mut ws, tokens))
    }

    fn encode_checked(&self, ws: &mut Workspace, tokens: &[usize]) -> Vec<f64> {
        let mut out = vec![f64::NAN; self.cut.size()];
        if upward_side(ws, self.model, self.part, tokens) > f64::NEG_INFINITY {
            self.cut.posterior_into(self.model, ws, &mut out);
        }
        out
    }
}

impl Encoder for PosteriorEncoder<'_> {
    fn dim(&self) -> usize {
        self.cut.size()
    }
    /// NaN for tokens that do not fit the model.
    fn encode(&self, tokens: &[usize]) -> Vec<f64> {
        self.try_encode(tokens).unwrap_or_else(|_| vec![f64::NAN; self.cut.size()])
    }
    /// One workspace per fixed chunk of sequences (order kept).
    fn encode_all(&self, seqs: &[Vec<usize>]) -> Vec<Vec<f64>> {
        seqs.par_chunks(bp::CHUNK)
            .flat_map_iter(|chunk| {
                let mut ws = Workspace::new(self.model);
                chunk
                    .iter()
                    .map(|t| match crate::evidence::check_tokens(self.model, self.part, t) {
                        Ok(()) => self.encode_checked(&mut ws, t),
                        Err(_) => vec![f64::NAN; self.cut.size()],
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// T7: `S(x, y) = log Σ_w f*(x)_w g*(y)_w / p(w)`, which equals `PMI(x, y)`.
pub struct LogWeighted<'m> {
    pub image: PosteriorEncoder<'m>,
    pub text: PosteriorEncoder<'m>,
}

impl<'m> LogWeighted<'m> {
    /// Fails when the separator has too many joint states ([`crate::info::CUT_LIMIT`]).
    pub fn new(model: &'m Jghm) -> Result<Self, crate::info::InfoError> {
        let cut = Cut::separator(model)?;
        Ok(LogWeighted {
            image: PosteriorEncoder { model, part: Part::Image, cut: cut.clone() },
            text: PosteriorEncoder { model, part: Part::Text, cut },
        })
    }
    /// `log Σ_w f_w g_w / p(w)`.
    pub fn similarity(&self, f: &[f64], g: &[f64]) -> f64 {
        weighted_inner(f, g, &self.image.cut.prior).ln()
    }
}

impl Score for LogWeighted<'_> {
    fn name(&self) -> String {
        "t7".into()
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        check_pair(self.image.model, x, y)
    }
    /// `-inf` for tokens that do not fit the model (no weight, as for [`Pmi`]).
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        match (self.image.try_encode(x), self.text.try_encode(y)) {
            (Ok(f), Ok(g)) => self.similarity(&f, &g),
            _ => f64::NEG_INFINITY,
        }
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        grid_of_encodings(&self.image.encode_all(xs), &self.text.encode_all(ys), |f, g| self.similarity(f, g))
    }
}

fn grid_of_encodings(fs: &[Vec<f64>], gs: &[Vec<f64>], sim: impl Fn(&[f64], &[f64]) -> f64 + Sync) -> Vec<f64> {
    let mut out = vec![0.0; fs.len() * gs.len()];
    if gs.is_empty() {
        return out;
    }
    out.par_chunks_mut(gs.len()).zip(fs).for_each(|(row, f)| {
        for (o, g) in row.iter_mut().zip(gs) {
            *o = sim(f, g);
        }
    });
    out
}

/// CLIP's score `S(x, y) = ⟨f(x), g(y)⟩ / τ`.
pub struct Bilinear<F: Encoder, G: Encoder> {
    pub image: F,
    pub text: G,
    pub temperature: f64,
}

impl<F: Encoder, G: Encoder> Score for Bilinear<F, G> {
    fn name(&self) -> String {
        format!("bilinear(p={}, tau={})", self.image.dim(), self.temperature)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        dot(&self.image.encode(x), &self.text.encode(y)) / self.temperature
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let t = self.temperature;
        grid_of_encodings(&self.image.encode_all(xs), &self.text.encode_all(ys), |f, g| dot(f, g) / t)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// An encoder followed by a fixed linear map: `x ↦ M f(x)` (`M` is `out × f.dim()`, row-major).
pub struct Linear<E: Encoder> {
    pub inner: E,
    pub matrix: Vec<f64>,
    pub out: usize,
}

impl<E: Encoder> Encoder for Linear<E> {
    fn dim(&self) -> usize {
        self.out
    }
    fn encode(&self, tokens: &[usize]) -> Vec<f64> {
        let f = self.inner.encode(tokens);
        self.matrix.chunks(f.len()).map(|row| dot(row, &f)).collect()
    }
}

/// A deterministic pseudo-random number in `[-1, 1)` of a key and a seed (splitmix64 of a
/// polynomial hash): the "arbitrary function" of the test scores.
pub fn hash_unit(seed: u64, key: &[usize]) -> f64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &k in key {
        h = splitmix(h ^ (k as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    }
    (splitmix(h) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a [`Shifted`] score's added term depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShiftOf {
    /// `c(x)`: leaves `ℓ_K^{X→Y}` unchanged (T2).
    Image,
    /// `d(y)`: leaves `ℓ_K^{Y→X}` unchanged.
    Text,
    /// A constant: leaves both unchanged.
    Constant,
}

/// `S(x, y) + a·u(x)` (or `u(y)`, or `a`), `u` pseudo-random in `[-1, 1)`.
pub struct Shifted<S: Score> {
    pub base: S,
    pub of: ShiftOf,
    pub amplitude: f64,
    pub seed: u64,
}

impl<S: Score> Shifted<S> {
    fn shift(&self, x: &[usize], y: &[usize]) -> f64 {
        self.amplitude
            * match self.of {
                ShiftOf::Image => hash_unit(self.seed, x),
                ShiftOf::Text => hash_unit(self.seed, y),
                ShiftOf::Constant => 1.0,
            }
    }
}

impl<S: Score> Score for Shifted<S> {
    fn name(&self) -> String {
        format!("{}+shift({:?},{})", self.base.name(), self.of, self.amplitude)
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        self.base.check(x, y)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        self.base.score(x, y) + self.shift(x, y)
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let mut g = self.base.grid(xs, ys);
        for (k, v) in g.iter_mut().enumerate() {
            *v += self.shift(&xs[k / ys.len()], &ys[k % ys.len()]);
        }
        g
    }
}

/// `S(x, y) + a·u(x, y)`, `u` pseudo-random in `[-1, 1)`: a generic perturbation.
pub struct Perturbed<S: Score> {
    pub base: S,
    pub amplitude: f64,
    pub seed: u64,
}

impl<S: Score> Perturbed<S> {
    fn noise(&self, x: &[usize], y: &[usize]) -> f64 {
        let key: Vec<usize> = x.iter().chain([&usize::MAX]).chain(y).copied().collect();
        self.amplitude * hash_unit(self.seed, &key)
    }
}

impl<S: Score> Score for Perturbed<S> {
    fn name(&self) -> String {
        format!("{}+perturbed({})", self.base.name(), self.amplitude)
    }
    fn check(&self, x: &[usize], y: &[usize]) -> Result<(), EvidenceError> {
        self.base.check(x, y)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        self.base.score(x, y) + self.noise(x, y)
    }
    fn grid(&self, xs: &[Vec<usize>], ys: &[Vec<usize>]) -> Vec<f64> {
        let mut g = self.base.grid(xs, ys);
        for (k, v) in g.iter_mut().enumerate() {
            *v += self.noise(&xs[k / ys.len()], &ys[k % ys.len()]);
        }
        g
    }
}

/// A score given as a table over listed sequences (e.g. a score coarsened through a statistic:
/// `S(x, y) = s(T(x), y)`). Pairs outside the table score `-inf`.
pub struct Table {
    pub name: String,
    image: HashMap<Vec<usize>, usize>,
    text: HashMap<Vec<usize>, usize>,
    values: Vec<f64>,
    cols: usize,
}

impl Table {
    /// `values[i * ys.len() + j] = S(xs[i], ys[j])`.
    pub fn new(name: &str, xs: &[Vec<usize>], ys: &[Vec<usize>], values: Vec<f64>) -> Self {
        assert_eq!(values.len(), xs.len() * ys.len(), "a table has one value per pair");
        let index = |s: &[Vec<usize>]| s.iter().cloned().enumerate().map(|(i, t)| (t, i)).collect();
        Table { name: name.into(), image: index(xs), text: index(ys), values, cols: ys.len() }
    }
}

impl Score for Table {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        match (self.image.get(x), self.text.get(y)) {
            (Some(i), Some(j)) => self.values[i * self.cols + j],
            _ => f64::NEG_INFINITY,
        }
    }
}
