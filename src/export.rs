//! Data sets with their exact quantities, for encoders trained in other frameworks (`jghm
//! export`). The ground truth leaves the toolkit here, and comes back through
//! [`crate::eval::imported`].
//!
//! * A **sampled set** ([`sample_set`]): `N` pairs `(x_i, y_i) ~ p(x, y)` drawn by the model's
//!   ancestral sampler (the stream of [`crate::sample::sample_pairs`]), with, for each pair,
//!   `log p(x_i)`, `log p(y_i)`, `log p(x_i, y_i)`, `PMI(x_i, y_i)` (T1, T2: the optimal CLIP
//!   score) and the root posteriors `p(z | x_i)`, `p(z | y_i)` (T1), all by exact batched BP
//!   ([`crate::bp::fast::FastBp`]); optionally the state of every hidden node.
//! * **Every sequence** of an enumerable model ([`enumerate_all`]): each image and each text of
//!   positive probability with `log p` and its root posterior, and the full PMI matrix
//!   `PMI(x_i, y_j)`.
//!
//! Both are written as safetensors ([`ExportedSet::to_safetensors`], [`AllSequences::to_safetensors`]):
//! tokens and states as `int64` tensors (PyTorch's index type), quantities as `float64`, and in
//! the metadata the model's SHA-256 (as checkpoints carry it), the seed and the kind. The same
//! model and seed give the same bytes, whatever the thread count.

use std::collections::BTreeMap;

use crate::arrays::{to_safetensors, Array, Stored};
use crate::bp::fast::FastBp;
use crate::bp::PmiParts;
use crate::info::{Enumeration, InfoError};
use crate::model::{Jghm, Part};
use crate::sample::sample_pairs;

/// The `format` metadata of a sampled set.
pub const SET_FORMAT: &str = "jghm-export-pairs-v1";
/// The `format` metadata of an enumeration.
pub const ALL_FORMAT: &str = "jghm-export-all-v1";
/// Pairs per batch of BP and of progress reports.
pub const BATCH: usize = 65_536;

/// `N` sampled pairs and their exact quantities (row `i` of every array is pair `i`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedSet {
    pub images: Vec<Vec<usize>>,
    pub texts: Vec<Vec<usize>>,
    /// `log p(x_i)`.
    pub log_px: Vec<f64>,
    /// `log p(y_i)`.
    pub log_py: Vec<f64>,
    /// `log p(x_i, y_i)`.
    pub log_pxy: Vec<f64>,
    /// `PMI(x_i, y_i) = log p(x_i, y_i) − log p(x_i) − log p(y_i)`.
    pub pmi: Vec<f64>,
    /// `p(z | x_i)`, row-major `N × S_0`.
    pub image_root_posterior: Vec<f64>,
    /// `p(z | y_i)`, row-major `N × S_0`.
    pub text_root_posterior: Vec<f64>,
    pub root_states: usize,
    /// The root state `z_i` of every pair (the label of zero-shot on the root).
    pub roots: Vec<usize>,
    /// The state of every node (by node id; the root is node 0), if asked for.
    pub hidden: Option<Vec<Vec<usize>>>,
    pub seed: u64,
}

/// `n` pairs from `p(x, y)` with `seed`, and their exact quantities by batched BP; `progress`
/// is called with the number of pairs done after each batch of [`BATCH`].
pub fn sample_set(model: &Jghm, n: usize, seed: u64, hidden: bool, progress: &mut dyn FnMut(usize)) -> ExportedSet {
    // Always sampled with the hidden states, for the roots; the same stream either way.
    let pairs = sample_pairs(model, n, seed, true);
    let bp = FastBp::for_batch(model, n.min(BATCH));
    let s0 = model.root_states();
    let mut set = ExportedSet {
        images: Vec::with_capacity(n),
        texts: Vec::with_capacity(n),
        log_px: Vec::with_capacity(n),
        log_py: Vec::with_capacity(n),
        log_pxy: Vec::with_capacity(n),
        pmi: Vec::with_capacity(n),
        image_root_posterior: Vec::with_capacity(n * s0),
        text_root_posterior: Vec::with_capacity(n * s0),
        root_states: s0,
        roots: Vec::with_capacity(n),
        hidden: hidden.then(Vec::new),
        seed,
    };
    for batch in pairs.chunks(BATCH) {
        let xs: Vec<&[usize]> = batch.iter().map(|p| p.image.as_slice()).collect();
        let ys: Vec<&[usize]> = batch.iter().map(|p| p.text.as_slice()).collect();
        let mut parts = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; batch.len()];
        bp.pmi_into(&xs, &ys, &mut parts);
        for part in [Part::Image, Part::Text] {
            let obs = if part == Part::Image { &xs } else { &ys };
            let mut post = vec![0.0; batch.len() * s0];
            let mut ll = vec![0.0; batch.len()];
            bp.root_posteriors_into(part, obs, &mut post, &mut ll);
            let out = if part == Part::Image { &mut set.image_root_posterior } else { &mut set.text_root_posterior };
            out.extend(post);
        }
        for (p, q) in batch.iter().zip(&parts) {
            set.images.push(p.image.clone());
            set.texts.push(p.text.clone());
            set.log_px.push(q.log_px);
            set.log_py.push(q.log_py);
            set.log_pxy.push(q.log_pxy);
            set.pmi.push(q.pmi);
            let states = p.hidden.as_ref().expect("sampled with the hidden states");
            set.roots.push(states[0]);
            if let Some(h) = set.hidden.as_mut() {
                h.push(states.clone());
            }
        }
        progress(set.images.len());
    }
    set
}

/// Token rows as an `[rows, len]` array.
fn token_matrix(rows: &[Vec<usize>], len: usize) -> Array {
    Array::matrix(rows.len(), len, rows.iter().flatten().map(|&t| t as f64).collect())
}

fn metadata(format: &str, model_sha256: &str, extra: &[(&str, String)]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::from([
        ("format".to_string(), format.to_string()),
        ("model_sha256".to_string(), model_sha256.to_string()),
    ]);
    for (k, v) in extra {
        m.insert(k.to_string(), v.clone());
    }
    m
}

impl ExportedSet {
    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The safetensors bytes: `images` `[N, n_x]` and `texts` `[N, n_y]` (int64), `log_px`,
    /// `log_py`, `log_pxy`, `pmi` `[N]`, `image_root_posterior`, `text_root_posterior`
    /// `[N, S_0]` (float64), `roots` `[N]` (int64, the root state of each pair), `hidden` `[N, nodes]` (int64) if sampled; metadata `format`,
    /// `model_sha256`, `seed`, `pairs`.
    pub fn to_safetensors(&self, model: &Jghm, model_sha256: &str) -> Vec<u8> {
        let n = self.len();
        let images = token_matrix(&self.images, model.len_of(Part::Image));
        let texts = token_matrix(&self.texts, model.len_of(Part::Text));
        let v = |x: &[f64]| Array::vector(x.to_vec());
        let (log_px, log_py, log_pxy, pmi) = (v(&self.log_px), v(&self.log_py), v(&self.log_pxy), v(&self.pmi));
        let post = |x: &[f64]| Array::matrix(n, self.root_states, x.to_vec());
        let (ipost, tpost) = (post(&self.image_root_posterior), post(&self.text_root_posterior));
        let roots = Array::vector(self.roots.iter().map(|&z| z as f64).collect());
        let hidden = self.hidden.as_ref().map(|h| token_matrix(h, model.tree().nodes.len()));
        let mut arrays = vec![
            ("images", &images, Stored::I64),
            ("texts", &texts, Stored::I64),
            ("log_px", &log_px, Stored::F64),
            ("log_py", &log_py, Stored::F64),
            ("log_pxy", &log_pxy, Stored::F64),
            ("pmi", &pmi, Stored::F64),
            ("image_root_posterior", &ipost, Stored::F64),
            ("text_root_posterior", &tpost, Stored::F64),
            ("roots", &roots, Stored::I64),
        ];
        if let Some(h) = &hidden {
            arrays.push(("hidden", h, Stored::I64));
        }
        to_safetensors(
            &arrays,
            metadata(SET_FORMAT, model_sha256, &[("seed", self.seed.to_string()), ("pairs", n.to_string())]),
        )
    }
}

/// Every image and every text of positive probability (the enumeration's order: mixed radix,
/// first token most significant) with `log p`, and the PMI of every pair.
#[derive(Clone, Debug, PartialEq)]
pub struct AllSequences {
    pub images: Vec<Vec<usize>>,
    pub texts: Vec<Vec<usize>>,
    /// `log p(x_i)`.
    pub log_px: Vec<f64>,
    /// `log p(y_j)`.
    pub log_py: Vec<f64>,
    /// `PMI(x_i, y_j)`, row-major `|X| × |Y|` (`−∞` where `p(x_i, y_j) = 0`).
    pub pmi: Vec<f64>,
    /// `p(z | x_i)`, row-major `|X| × S_0`.
    pub image_root_posterior: Vec<f64>,
    /// `p(z | y_j)`, row-major `|Y| × S_0`.
    pub text_root_posterior: Vec<f64>,
    pub root_states: usize,
}

/// Enumerates both sides (refused beyond the enumeration limits, with the size).
pub fn enumerate_all(model: &Jghm) -> Result<AllSequences, InfoError> {
    let en = Enumeration::new(model)?;
    Ok(AllSequences {
        images: en.image.tokens.clone(),
        texts: en.text.tokens.clone(),
        log_px: en.image.log_p.clone(),
        log_py: en.text.log_p.clone(),
        pmi: en.pmi_grid(),
        image_root_posterior: en.image.root.clone(),
        text_root_posterior: en.text.root.clone(),
        root_states: model.root_states(),
    })
}

impl AllSequences {
    /// The safetensors bytes: `images` `[|X|, n_x]`, `texts` `[|Y|, n_y]` (int64), `log_px`
    /// `[|X|]`, `log_py` `[|Y|]`, `pmi` `[|X|, |Y|]` (float64; `p(x, y) = p(x) p(y) e^PMI`), `image_root_posterior`
    /// `[|X|, S_0]` and `text_root_posterior` `[|Y|, S_0]`;
    /// metadata `format`, `model_sha256`.
    pub fn to_safetensors(&self, model: &Jghm, model_sha256: &str) -> Vec<u8> {
        let images = token_matrix(&self.images, model.len_of(Part::Image));
        let texts = token_matrix(&self.texts, model.len_of(Part::Text));
        let (log_px, log_py) = (Array::vector(self.log_px.clone()), Array::vector(self.log_py.clone()));
        let pmi = Array::matrix(self.images.len(), self.texts.len(), self.pmi.clone());
        let ipost = Array::matrix(self.images.len(), self.root_states, self.image_root_posterior.clone());
        let tpost = Array::matrix(self.texts.len(), self.root_states, self.text_root_posterior.clone());
        let arrays = [
            ("images", &images, Stored::I64),
            ("texts", &texts, Stored::I64),
            ("log_px", &log_px, Stored::F64),
            ("log_py", &log_py, Stored::F64),
            ("pmi", &pmi, Stored::F64),
            ("image_root_posterior", &ipost, Stored::F64),
            ("text_root_posterior", &tpost, Stored::F64),
        ];
        to_safetensors(&arrays, metadata(ALL_FORMAT, model_sha256, &[]))
    }
}
