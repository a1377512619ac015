//! The scores of an encoder trained elsewhere (PyTorch, JAX, NumPy), measured against the exact
//! ground truth (`jghm eval --scores FILE`).
//!
//! Two forms are read, from safetensors, NumPy `.npy`/`.npz` ([`crate::arrays`]) or the JSON of
//! `jghm scores`:
//!
//! * a **score matrix** `scores` `[|X|, |Y|]`: `S(x_i, y_j)` for every image and text of an
//!   enumerable model, in the order of the file's `images` `[|X|, n_x]` and `texts` `[|Y|, n_y]`
//!   token arrays, or of `jghm export --all` (the enumeration's order) when the file has none;
//! * **embeddings** `image_embeddings` `[N, p]` and `text_embeddings` `[N, p]` of the rows of
//!   `images` and `texts` (in the file, or in the exported set given by `--set`), with
//!   `S(x, y) = scale · ⟨f(x), g(y)⟩` (`dot`) or `scale · ⟨f/‖f‖, g/‖g‖⟩` (`cosine`), `scale` the
//!   file's `logit_scale` (a number, default 1; PyTorch's CLIP stores its logarithm, exponentiate
//!   it first).
//!
//! **Exact** when the model is enumerable and the file covers every image and every text of
//! positive probability: the score becomes a [`Learned`] score (its statistic of an image is the
//! row `S(x, ·)` or the embedding `f(x)`) and [`super::exact::evaluate_exact`] computes every
//! figure exactly. **Monte Carlo** otherwise, on the file's rows as `N` pairs `(x_i, y_i)` (an
//! exported set, [`crate::export`]), by [`evaluate_pairs`]: paired differences against the exact
//! PMI on the same pairs and negatives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{pearson, EvalReport, Learned, ZeroShot};
use crate::arrays::{self, ArrayError, Arrays};
use crate::bp::fast::FastBp;
use crate::bp::PmiParts;
use crate::downstream::zero_shot::PromptEnsemble;
use crate::downstream::{argmax, DownstreamError};
use crate::export::SET_FORMAT;
use crate::info::{Enumeration, Estimate};
use crate::logspace::log_sum_exp;
use crate::model::{Jghm, Part};
use crate::score::Score;

/// How embeddings become a score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// `S = scale · ⟨f(x), g(y)⟩`.
    Dot,
    /// `S = scale · ⟨f(x), g(y)⟩ / (‖f(x)‖ ‖g(y)‖)`.
    Cosine,
}

impl std::str::FromStr for Similarity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dot" => Ok(Similarity::Dot),
            "cosine" => Ok(Similarity::Cosine),
            other => Err(format!("unknown similarity '{other}' (expected dot or cosine)")),
        }
    }
}

/// Why imported scores cannot be evaluated; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Array(#[from] ArrayError),
    #[error("'{}' is not the JSON of `jghm scores`: {reason}", path.display())]
    Json { path: PathBuf, reason: String },
    #[error("'{}' was exported from another model (its model_sha256 is {found}, the model's is {expected})", path.display())]
    OtherModel { path: PathBuf, found: String, expected: String },
    #[error("'{}' has neither 'scores' nor 'image_embeddings' and 'text_embeddings'", path.display())]
    NoScores { path: PathBuf },
    #[error("'{}' gives no '{name}' token array: add it to the file, or give the exported set with --set", path.display())]
    NoTokens { path: PathBuf, name: String },
    #[error("'{}': {what}", path.display())]
    Tokens { path: PathBuf, what: String },
    #[error("'{}': logit_scale must be one finite number, got shape {shape:?}", path.display())]
    LogitScale { path: PathBuf, shape: Vec<usize> },
    #[error("'{}': similarity '{found}' in the metadata (expected dot or cosine)", path.display())]
    Similarity { path: PathBuf, found: String },
    #[error("the scores cover {covered_images} of {images} images and {covered_texts} of {texts} texts, and their rows are not pairs: give every image and text (jghm export --all) or embeddings of an exported set of pairs")]
    NotCovered { covered_images: usize, images: usize, covered_texts: usize, texts: usize },
    #[error("pair {row} of the set has probability zero under the model")]
    ImpossiblePair { row: usize },
    #[error("{0}")]
    TooFewPairs(String),
    #[error("exact evaluation was asked for, but these scores are embeddings of {0} sampled pairs that do not cover every image and text of an enumerable model")]
    NotExact(usize),
    #[error(transparent)]
    Evaluation(#[from] DownstreamError),
}

/// The two ways scores are given.
#[derive(Clone, Debug)]
enum Values {
    /// `S` row-major `images × texts`.
    Matrix(Vec<f64>),
    /// Embeddings (unit length for cosine) and the scale.
    Embeddings { image: Vec<Vec<f64>>, text: Vec<Vec<f64>>, scale: f64 },
}

/// Imported scores as a [`Score`] (and a [`Learned`] one): `S(x, y)` by looking `x` and `y` up
/// among the file's rows; `-inf` for a sequence the file does not give.
#[derive(Clone, Debug)]
pub struct ImportedScore {
    pub images: Vec<Vec<usize>>,
    pub texts: Vec<Vec<usize>>,
    image_row: HashMap<Vec<usize>, usize>,
    text_row: HashMap<Vec<usize>, usize>,
    values: Values,
    /// What was read, for reports: "score matrix" or "embeddings (dot, scale 1)".
    pub form: String,
    /// Whether row `i` of `images` and of `texts` is a pair of an exported sampled set.
    pub rows_are_pairs: bool,
}

impl ImportedScore {
    /// A score matrix `values[i · |texts| + j] = S(images[i], texts[j])`.
    pub fn matrix(images: Vec<Vec<usize>>, texts: Vec<Vec<usize>>, values: Vec<f64>) -> Self {
        assert_eq!(values.len(), images.len() * texts.len(), "one score per pair");
        Self::build(images, texts, Values::Matrix(values), "score matrix".into(), false)
    }

    /// Embeddings of `images` and `texts` (one row each, equal dimensions) under `similarity`.
    pub fn embeddings(
        images: Vec<Vec<usize>>,
        texts: Vec<Vec<usize>>,
        image: Vec<Vec<f64>>,
        text: Vec<Vec<f64>>,
        similarity: Similarity,
        scale: f64,
        rows_are_pairs: bool,
    ) -> Self {
        let unit = |rows: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
            rows.into_iter()
                .map(|r| {
                    let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                    r.iter().map(|v| v / norm).collect()
                })
                .collect()
        };
        let (image, text) = if similarity == Similarity::Cosine { (unit(image), unit(text)) } else { (image, text) };
        let form =
            format!("embeddings ({}, scale {scale})", if similarity == Similarity::Dot { "dot" } else { "cosine" });
        Self::build(images, texts, Values::Embeddings { image, text, scale }, form, rows_are_pairs)
    }

    fn build(images: Vec<Vec<usize>>, texts: Vec<Vec<usize>>, values: Values, form: String, pairs: bool) -> Self {
        // The first row of a repeated sequence is the one looked up.
        let index = |rows: &[Vec<usize>]| {
            let mut m = HashMap::new();
            for (i, r) in rows.iter().enumerate() {
                m.entry(r.clone()).or_insert(i);
            }
            m
        };
        let (image_row, text_row) = (index(&images), index(&texts));
        ImportedScore { images, texts, image_row, text_row, values, form, rows_are_pairs: pairs }
    }

    /// `S` between image row `i` and text row `j`.
    pub fn at(&self, i: usize, j: usize) -> f64 {
        match &self.values {
            Values::Matrix(v) => v[i * self.texts.len() + j],
            Values::Embeddings { image, text, scale } => {
                scale * image[i].iter().zip(&text[j]).map(|(a, b)| a * b).sum::<f64>()
            }
        }
    }

    /// Whether the file gives `seq` on side `part`.
    pub fn covers(&self, part: Part, seq: &[usize]) -> bool {
        if part == Part::Image {
            self.image_row.contains_key(seq)
        } else {
            self.text_row.contains_key(seq)
        }
    }

    /// The statistic of row `i` of a side: the row `S(x_i, ·)` (or column `S(·, y_j)`) of a
    /// matrix, the embedding otherwise.
    fn statistic(&self, part: Part, i: usize) -> Vec<f64> {
        match (&self.values, part) {
            (Values::Matrix(_), Part::Image) => (0..self.texts.len()).map(|j| self.at(i, j)).collect(),
            (Values::Matrix(_), _) => (0..self.images.len()).map(|k| self.at(k, i)).collect(),
            (Values::Embeddings { image, .. }, Part::Image) => image[i].clone(),
            (Values::Embeddings { text, .. }, _) => text[i].clone(),
        }
    }
}

impl Score for ImportedScore {
    fn name(&self) -> String {
        format!("imported {}", self.form)
    }
    fn score(&self, x: &[usize], y: &[usize]) -> f64 {
        match (self.image_row.get(x), self.text_row.get(y)) {
            (Some(&i), Some(&j)) => self.at(i, j),
            _ => f64::NEG_INFINITY,
        }
    }
}

impl Learned for ImportedScore {
    fn embeddings(&self, part: Part, seqs: &[Vec<usize>]) -> Vec<Vec<f64>> {
        let (rows, width) = if part == Part::Image {
            (&self.image_row, self.statistic(Part::Image, 0).len())
        } else {
            (&self.text_row, self.statistic(Part::Text, 0).len())
        };
        seqs.iter().map(|s| rows.get(s).map_or(vec![f64::NAN; width], |&i| self.statistic(part, i))).collect()
    }
}

/// Reads imported scores for `model` (whose file has SHA-256 `model_sha256`) from `path`, with
/// token arrays from `set` (an export of `jghm export`) when the file has none, `similarity` and
/// `logit_scale` overriding the file's.
pub fn read_scores(
    model: &Jghm,
    model_sha256: &str,
    path: &Path,
    set: Option<&Path>,
    similarity: Option<Similarity>,
    logit_scale: Option<f64>,
) -> Result<ImportedScore, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ArrayError::Read { path: path.into(), source })?;
    if bytes.first() == Some(&b'{') {
        return read_json(model, path, &bytes);
    }
    let file = arrays::read(path)?;
    check_model(path, &file, model_sha256)?;
    let set_file = match set {
        Some(s) => {
            let f = arrays::read(s)?;
            check_model(s, &f, model_sha256)?;
            Some((s, f))
        }
        None => None,
    };
    let source_of = |name: &str| -> Option<(&Path, &Arrays)> {
        if file.arrays.contains_key(name) {
            Some((path, &file))
        } else {
            set_file.as_ref().filter(|(_, f)| f.arrays.contains_key(name)).map(|(p, f)| (*p, f))
        }
    };
    let pairs =
        set_file.as_ref().is_some_and(|(_, f)| f.metadata.get("format").map(String::as_str) == Some(SET_FORMAT))
            || file.metadata.get("format").map(String::as_str) == Some(SET_FORMAT);
    let tokens = |part: Part, rows: Option<usize>| -> Result<Option<Vec<Vec<usize>>>, ImportError> {
        let name = if part == Part::Image { "images" } else { "texts" };
        let Some((p, f)) = source_of(name) else { return Ok(None) };
        let seqs = f.tokens(p, name, rows, model.len_of(part))?;
        check_vocab(model, part, p, name, &seqs)?;
        Ok(Some(seqs))
    };
    if file.arrays.contains_key("scores") {
        let (images, texts) = match (tokens(Part::Image, None)?, tokens(Part::Text, None)?) {
            (Some(x), Some(y)) => (x, y),
            (None, None) => {
                let en = Enumeration::new(model)
                    .map_err(|e| ImportError::Tokens { path: path.into(), what: e.to_string() })?;
                (en.image.tokens.clone(), en.text.tokens.clone())
            }
            (None, _) => return Err(ImportError::NoTokens { path: path.into(), name: "images".into() }),
            (_, None) => return Err(ImportError::NoTokens { path: path.into(), name: "texts".into() }),
        };
        let s = file.matrix(path, "scores", Some(images.len()), Some(texts.len()))?;
        let mut imported = ImportedScore::matrix(images, texts, s.data.clone());
        imported.rows_are_pairs = false;
        return Ok(imported);
    }
    if !(file.arrays.contains_key("image_embeddings") && file.arrays.contains_key("text_embeddings")) {
        return Err(ImportError::NoScores { path: path.into() });
    }
    let fx = file.matrix(path, "image_embeddings", None, None)?;
    let gy = file.matrix(path, "text_embeddings", None, Some(fx.shape[1]))?;
    let images = tokens(Part::Image, Some(fx.shape[0]))?
        .ok_or_else(|| ImportError::NoTokens { path: path.into(), name: "images".into() })?;
    let texts = tokens(Part::Text, Some(gy.shape[0]))?
        .ok_or_else(|| ImportError::NoTokens { path: path.into(), name: "texts".into() })?;
    let scale = match (logit_scale, file.arrays.get("logit_scale")) {
        (Some(s), _) => s,
        (None, None) => 1.0,
        (None, Some(a)) if a.data.len() == 1 && a.data[0].is_finite() => a.data[0],
        (None, Some(a)) => return Err(ImportError::LogitScale { path: path.into(), shape: a.shape.clone() }),
    };
    let similarity = match (similarity, file.metadata.get("score")) {
        (Some(s), _) => s,
        (None, None) => Similarity::Dot,
        (None, Some(s)) => s.parse().map_err(|_| ImportError::Similarity { path: path.into(), found: s.clone() })?,
    };
    let rows = |a: &arrays::Array| a.rows().map(<[f64]>::to_vec).collect::<Vec<_>>();
    let pairs = pairs && images.len() == texts.len();
    Ok(ImportedScore::embeddings(images, texts, rows(fx), rows(gy), similarity, scale, pairs))
}

fn read_json(model: &Jghm, path: &Path, bytes: &[u8]) -> Result<ImportedScore, ImportError> {
    let json = |reason: String| ImportError::Json { path: path.into(), reason };
    let m: super::exact::ScoreMatrix = serde_json::from_slice(bytes).map_err(|e| json(e.to_string()))?;
    for (part, seqs, name) in [(Part::Image, &m.images, "images"), (Part::Text, &m.texts, "texts")] {
        if let Some(i) = seqs.iter().position(|s| s.len() != model.len_of(part)) {
            return Err(json(format!(
                "{name}[{i}] has {} tokens, the model's {part} has {}",
                seqs[i].len(),
                model.len_of(part)
            )));
        }
        check_vocab(model, part, path, name, seqs)?;
    }
    if m.scores.len() != m.images.len() || m.scores.iter().any(|r| r.len() != m.texts.len()) {
        return Err(json(format!("scores must be {} rows of {} numbers", m.images.len(), m.texts.len())));
    }
    // serde_json reads no NaN or infinity, so every score is a number.
    let values = m.scores.concat();
    Ok(ImportedScore::matrix(m.images, m.texts, values))
}

/// Refuses a file whose metadata names another model.
fn check_model(path: &Path, file: &Arrays, model_sha256: &str) -> Result<(), ImportError> {
    match file.metadata.get("model_sha256") {
        Some(found) if found != model_sha256 => {
            Err(ImportError::OtherModel { path: path.into(), found: found.clone(), expected: model_sha256.into() })
        }
        _ => Ok(()),
    }
}

fn check_vocab(model: &Jghm, part: Part, path: &Path, name: &str, seqs: &[Vec<usize>]) -> Result<(), ImportError> {
    let vocab = model.vocab_of(part);
    for (i, s) in seqs.iter().enumerate() {
        if let Some(k) = s.iter().position(|&t| t >= vocab) {
            return Err(ImportError::Tokens {
                path: path.into(),
                what: format!(
                    "{name}[{i}] has token {} at position {k}, out of the {part} vocabulary 0..{vocab}",
                    s[k]
                ),
            });
        }
    }
    Ok(())
}

/// Whether `score` gives every image and every text of positive probability of an enumerable
/// model (then it can be evaluated exactly); the counts covered otherwise.
pub fn coverage(en: &Enumeration, score: &ImportedScore) -> (usize, usize) {
    let count = |part: Part| en.side(part).tokens.iter().filter(|s| score.covers(part, s)).count();
    (count(Part::Image), count(Part::Text))
}

/// Which path [`evaluate`] takes.
pub enum Route<'m> {
    Exact(Box<Enumeration<'m>>),
    Pairs,
}

/// Exact when the model is enumerable and every image and text is covered; Monte Carlo on the
/// rows as pairs when they are an exported set; an error saying what is missing otherwise.
pub fn route<'m>(model: &'m Jghm, score: &ImportedScore) -> Result<Route<'m>, ImportError> {
    if let Ok(en) = Enumeration::new(model) {
        let (ci, ct) = coverage(&en, score);
        if ci == en.image.len() && ct == en.text.len() {
            return Ok(Route::Exact(Box::new(en)));
        }
        if !score.rows_are_pairs {
            return Err(ImportError::NotCovered {
                covered_images: ci,
                images: en.image.len(),
                covered_texts: ct,
                texts: en.text.len(),
            });
        }
    }
    if !score.rows_are_pairs {
        return Err(ImportError::TooFewPairs(
            "the model is too large to enumerate, so the scores must be embeddings of an exported set of pairs (jghm export)".into(),
        ));
    }
    Ok(Route::Pairs)
}

/// Sizes of the Monte Carlo evaluation on pairs.
#[derive(Clone, Copy, Debug)]
pub struct PairsSpec {
    /// Pairs per block: within a block every text is a negative of every other pair's image.
    pub block: usize,
    /// The batch size `K` of the finite-`K` loss (consecutive groups of `K` pairs).
    pub k: usize,
    /// Prompts per class of the zero-shot task (texts of the set's first pairs, by their root).
    pub prompts: usize,
}

/// The CLIP loss at a finite `K`, learned and optimal, per group of `K` pairs.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PairsFiniteK {
    pub k: usize,
    pub loss: Estimate,
    pub optimum: Estimate,
    pub excess: Estimate,
}

/// The Monte Carlo report on pairs: `eval`'s figures and the finite-`K` loss.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PairsReport {
    pub report: EvalReport,
    pub finite: PairsFiniteK,
    pub pairs: usize,
    pub zero_shot_images: usize,
}

/// `eval`'s figures for imported scores on `N` exported pairs, with no fresh draws (the scores
/// exist only on the file's rows):
///
/// * **Excess risk (T4)**, per direction, over blocks of `B` consecutive pairs: for each pair
///   `i`, `d_i = [−S_ii + log mean_{j≠i} e^{S_ij}] − [−PMI_ii + log mean_{j≠i} e^{PMI_ij}]`
///   (`X→Y`; columns for `Y→X`), the texts of the other pairs of the block serving as draws
///   from `p(y)` for both scores (paired differences: the bias of the log of a mean largely
///   cancels; it is `O(1/B)`). The standard error is that of the `d_i` (the shared negatives
///   within a block make it approximate).
/// * **Finite-`K` loss** on consecutive groups of `K` pairs, in-batch negatives, CLIP average,
///   learned and PMI on the same groups.
/// * **Zero-shot on the root label** (`roots` of the set, from `jghm export`): the prompts of
///   class `c` are the texts of the first pairs whose root is `c` (`M` per class), the test
///   images the pairs after the last one used; learned, PMI (same prompts) and Bayes
///   `argmax p(z | x)`.
/// * **PMI correlation** over the first block's grid.
pub fn evaluate_pairs(
    model: &Jghm,
    score: &ImportedScore,
    roots: Option<&[usize]>,
    spec: &PairsSpec,
) -> Result<PairsReport, ImportError> {
    let n = score.images.len();
    if n < 2 * spec.k.max(2) || spec.block < 2 {
        return Err(ImportError::TooFewPairs(format!(
            "{n} pairs are too few for blocks of {} and batches of K = {}",
            spec.block, spec.k
        )));
    }
    let bp = FastBp::for_batch(model, spec.block * spec.block);
    let blocks: Vec<(usize, usize)> =
        (0..n).step_by(spec.block).map(|s| (s, (s + spec.block).min(n))).filter(|(s, e)| e - s >= 2).collect();
    let per_block: Vec<Result<BlockTerms, ImportError>> =
        blocks.par_iter().map(|&(s, e)| block_terms(&bp, score, s, e)).collect();
    let mut dx = vec![];
    let mut dy = vec![];
    let mut grid = (vec![], vec![]);
    for (b, terms) in per_block.into_iter().enumerate() {
        let t = terms?;
        dx.extend(t.image_to_text);
        dy.extend(t.text_to_image);
        if b == 0 {
            grid = (t.scores, t.pmi);
        }
    }
    let finite = finite_k(&bp, score, spec.k);
    let nan = ZeroShot { learned: f64::NAN, oracle: f64::NAN, bayes: f64::NAN };
    let (zs, images) = match roots {
        Some(r) => zero_shot(model, &bp, score, r, spec.prompts)?,
        None => (nan, 0),
    };
    let zero_shot_method = match roots {
        Some(_) => format!(
            "zero-shot: {images} test images of the set, {} prompts per class from its first pairs",
            spec.prompts
        ),
        None => "zero-shot: not computed (the set has no 'roots')".into(),
    };
    let method = format!(
        "Monte Carlo on the {n} pairs of the set ({}): excess risks are per-pair differences against the exact PMI (batched BP) with the texts (images) of the other pairs of each block of {} as negatives, standard errors over pairs; finite K = {} on consecutive groups; {zero_shot_method}; correlation over the first block's grid",
        score.form, spec.block, spec.k
    );
    let report = EvalReport::from_differences(&dx, &dy, &zs, images, pearson(&grid.0, &grid.1), method);
    Ok(PairsReport { report, finite, pairs: n, zero_shot_images: images })
}

struct BlockTerms {
    image_to_text: Vec<f64>,
    text_to_image: Vec<f64>,
    scores: Vec<f64>,
    pmi: Vec<f64>,
}

/// `PMI(x_i, y_j)` for every pair of rows `i, j` in `start..end`, row-major.
fn pmi_grid(bp: &FastBp, score: &ImportedScore, start: usize, end: usize) -> Vec<f64> {
    let rows = start..end;
    let xs: Vec<&[usize]> =
        rows.clone().flat_map(|i| std::iter::repeat_n(score.images[i].as_slice(), end - start)).collect();
    let ys: Vec<&[usize]> = rows.clone().flat_map(|_| rows.clone().map(|j| score.texts[j].as_slice())).collect();
    let mut parts = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; xs.len()];
    bp.pmi_into(&xs, &ys, &mut parts);
    parts.iter().map(|p| p.pmi).collect()
}

fn block_terms(bp: &FastBp, score: &ImportedScore, start: usize, end: usize) -> Result<BlockTerms, ImportError> {
    let b = end - start;
    let pmi = pmi_grid(bp, score, start, end);
    if let Some(i) = (0..b).find(|&i| !pmi[i * b + i].is_finite()) {
        return Err(ImportError::ImpossiblePair { row: start + i });
    }
    let scores: Vec<f64> = (0..b * b).map(|k| score.at(start + k / b, start + k % b)).collect();
    // `−M_ii + log mean_{j≠i} e^{M_ij}`, rows (`X→Y`) or columns (`Y→X`).
    let term = |m: &[f64], i: usize, by_row: bool| -> f64 {
        let others: Vec<f64> =
            (0..b).filter(|&j| j != i).map(|j| if by_row { m[i * b + j] } else { m[j * b + i] }).collect();
        -m[i * b + i] + log_sum_exp(&others) - ((b - 1) as f64).ln()
    };
    let diff = |by_row: bool| (0..b).map(|i| term(&scores, i, by_row) - term(&pmi, i, by_row)).collect();
    Ok(BlockTerms { image_to_text: diff(true), text_to_image: diff(false), scores, pmi })
}

/// The in-batch CLIP loss `½ (ℓ^{X→Y} + ℓ^{Y→X})` of one `K × K` grid.
fn clip_of_grid(m: &[f64], k: usize) -> f64 {
    let ce = |i: usize, by_row: bool| -> f64 {
        let row: Vec<f64> = (0..k).map(|j| if by_row { m[i * k + j] } else { m[j * k + i] }).collect();
        -m[i * k + i] + log_sum_exp(&row)
    };
    (0..k).map(|i| 0.5 * (ce(i, true) + ce(i, false))).sum::<f64>() / k as f64
}

fn finite_k(bp: &FastBp, score: &ImportedScore, k: usize) -> PairsFiniteK {
    let groups: Vec<usize> = (0..score.images.len() / k).map(|g| g * k).collect();
    let (learned, optimum): (Vec<f64>, Vec<f64>) = groups
        .par_iter()
        .map(|&s| {
            let scores: Vec<f64> = (0..k * k).map(|q| score.at(s + q / k, s + q % k)).collect();
            (clip_of_grid(&scores, k), clip_of_grid(&pmi_grid(bp, score, s, s + k), k))
        })
        .unzip();
    let excess: Vec<f64> = learned.iter().zip(&optimum).map(|(a, b)| a - b).collect();
    PairsFiniteK {
        k,
        loss: Estimate::from_samples(&learned),
        optimum: Estimate::from_samples(&optimum),
        excess: Estimate::from_samples(&excess),
    }
}

/// Zero-shot accuracies (learned, PMI, Bayes) and the number of test images.
fn zero_shot(
    model: &Jghm,
    bp: &FastBp,
    score: &ImportedScore,
    roots: &[usize],
    m: usize,
) -> Result<(ZeroShot, usize), ImportError> {
    let prior = model.prior();
    let mut sets: Vec<Vec<usize>> = vec![vec![]; prior.len()];
    let mut used = 0;
    while sets.iter().zip(prior).any(|(s, &p)| p > 0.0 && s.len() < m) && used < roots.len() / 2 {
        let c = roots[used];
        if sets[c].len() < m {
            sets[c].push(used);
        }
        used += 1;
    }
    let size = sets.iter().zip(prior).filter(|(_, &p)| p > 0.0).map(|(s, _)| s.len()).min().unwrap_or(0);
    if size == 0 {
        return Err(ImportError::TooFewPairs(format!(
            "the first half of the set has no text of some root class; zero-shot needs at least one prompt per class ({} pairs)",
            roots.len()
        )));
    }
    let rows: Vec<Vec<usize>> = sets.iter().map(|s| s.iter().take(size).copied().collect()).collect();
    let text_sets = rows.iter().map(|r| r.iter().map(|&j| score.texts[j].clone()).collect()).collect();
    let ensemble = PromptEnsemble::from_sets(prior, text_sets)
        .map_err(|e: DownstreamError| ImportError::TooFewPairs(e.to_string()))?;
    let prompt_rows: Vec<usize> = rows.iter().flatten().copied().collect();
    let test: Vec<usize> = (used..roots.len()).collect();
    let xs: Vec<&[usize]> = test.iter().map(|&i| score.images[i].as_slice()).collect();
    let mut post = vec![0.0; xs.len() * prior.len()];
    let mut ll = vec![0.0; xs.len()];
    bp.root_posteriors_into(Part::Image, &xs, &mut post, &mut ll);
    let results: Vec<(bool, bool, bool)> = test
        .par_iter()
        .enumerate()
        .map(|(t, &i)| {
            let learned: Vec<f64> = prompt_rows.iter().map(|&j| score.at(i, j)).collect();
            let pairs_x = vec![score.images[i].as_slice(); prompt_rows.len()];
            let pairs_y: Vec<&[usize]> = prompt_rows.iter().map(|&j| score.texts[j].as_slice()).collect();
            let mut parts = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; pairs_x.len()];
            bp.pmi_into(&pairs_x, &pairs_y, &mut parts);
            let pmi: Vec<f64> = parts.iter().map(|p| p.pmi).collect();
            let bayes = argmax(&post[t * prior.len()..(t + 1) * prior.len()]);
            (ensemble.predict(&learned) == roots[i], ensemble.predict(&pmi) == roots[i], bayes == roots[i])
        })
        .collect();
    let frac = |f: fn(&(bool, bool, bool)) -> bool| {
        results.iter().filter(|r| f(r)).count() as f64 / results.len().max(1) as f64
    };
    Ok((ZeroShot { learned: frac(|r| r.0), oracle: frac(|r| r.1), bayes: frac(|r| r.2) }, test.len()))
}

/// The roots of an exported set (`roots` of `jghm export`), if the file gives them.
pub fn read_roots(path: &Path, expected: usize, root_states: usize) -> Result<Option<Vec<usize>>, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ArrayError::Read { path: path.into(), source })?;
    if bytes.first() == Some(&b'{') {
        return Ok(None); // the JSON of `jghm scores`: a matrix, no pairs
    }
    let file = arrays::read(path)?;
    if !file.arrays.contains_key("roots") {
        return Ok(None);
    }
    let a = file.get(path, "roots")?;
    if a.shape != [expected] || a.data.iter().any(|&v| v < 0.0 || v.fract() != 0.0 || v >= root_states as f64) {
        return Err(ImportError::Tokens {
            path: path.into(),
            what: format!("'roots' must be {expected} root states in 0..{root_states}, got shape {:?}", a.shape),
        });
    }
    Ok(Some(a.data.iter().map(|&v| v as usize).collect()))
}

/// What [`evaluate`] needs besides the scores.
#[derive(Clone, Debug)]
pub struct ImportSpec {
    /// The batch size `K` of the finite-`K` loss.
    pub k: usize,
    /// The Monte Carlo sizes (pairs route only).
    pub pairs: PairsSpec,
    /// Refuse the pairs route (`eval --exact`).
    pub require_exact: bool,
}

/// The report of either route.
#[derive(Clone, Debug)]
pub enum ImportedReport {
    Exact(Box<super::exact::ExactReport>),
    Pairs(Box<PairsReport>),
}

/// Imported scores measured by the route [`route`] chooses: [`super::exact::evaluate_exact`]
/// (finite `K = 2, 3, 4` and `spec.k` where within the work limit, zero-shot on the root and the
/// first text token) or [`evaluate_pairs`] with the set's `roots`.
pub fn evaluate(
    model: &Jghm,
    score: &ImportedScore,
    roots: Option<&[usize]>,
    spec: &ImportSpec,
) -> Result<ImportedReport, ImportError> {
    match route(model, score)? {
        Route::Exact(en) => {
            let exact_spec = super::exact::checkpoint_spec(&en, spec.k);
            Ok(ImportedReport::Exact(Box::new(super::exact::evaluate_exact(model, score, &exact_spec)?)))
        }
        Route::Pairs if spec.require_exact => Err(ImportError::NotExact(score.images.len())),
        Route::Pairs => Ok(ImportedReport::Pairs(Box::new(evaluate_pairs(model, score, roots, &spec.pairs)?))),
    }
}

impl ImportedReport {
    /// The CLIP-average excess risk.
    pub fn excess_risk(&self) -> f64 {
        match self {
            ImportedReport::Exact(r) => r.excess_risk,
            ImportedReport::Pairs(r) => r.report.excess_risk,
        }
    }

    /// The JSON of `jghm eval --scores --json`: `eval`'s keys (standard errors 0 when exact),
    /// `excess_risk_image_to_text` and `excess_risk_text_to_image` as numbers (with `_stderr`),
    /// the finite-`K` loss at `k`, `method`, `scores` (the form read) and, when exact, the whole
    /// report under `"exact"`.
    pub fn to_json(&self, score: &ImportedScore, k: usize) -> serde_json::Value {
        use serde_json::json;
        let mut v = match self {
            ImportedReport::Exact(r) => {
                let mut v = super::exact::report_json_at(r, k);
                v["excess_risk_image_to_text_stderr"] = json!(0.0);
                v["excess_risk_text_to_image_stderr"] = json!(0.0);
                v
            }
            ImportedReport::Pairs(r) => {
                let mut v = serde_json::to_value(&r.report).expect("report serialises");
                for (key, e) in [
                    ("finite_k_loss", &r.finite.loss),
                    ("finite_k_optimum", &r.finite.optimum),
                    ("finite_k_excess", &r.finite.excess),
                ] {
                    v[key] = json!(e.value);
                    v[format!("{key}_stderr")] = json!(e.stderr);
                }
                for (key, e) in [
                    ("excess_risk_image_to_text", &r.report.excess_risk_image_to_text),
                    ("excess_risk_text_to_image", &r.report.excess_risk_text_to_image),
                ] {
                    v[key] = json!(e.value);
                    v[format!("{key}_stderr")] = json!(e.stderr);
                }
                v["training_k"] = json!(k);
                v["pairs"] = json!(r.pairs);
                v
            }
        };
        v["scores"] = json!(score.form);
        v
    }
}
