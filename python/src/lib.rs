//! The Python module `jghm`: one class, [`Model`], over the library's model, sampler, batched
//! belief propagation and exact enumeration. Every array is checked (dtype, shape, vocabulary,
//! finiteness) before the library sees it, so bad input is a `ValueError` with the library's
//! message, never a panic; batched inference releases the GIL.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use jghm::bp::fast::FastBp;
use jghm::bp::PmiParts;
use jghm::contrastive::{Direction, Exact};
use jghm::eval::imported::{self, ImportSpec, ImportedScore, PairsSpec, Similarity};
use jghm::evidence::EvidenceError;
use jghm::export;
use jghm::info::{self, Enumeration};
use jghm::learn::checkpoint::sha256_hex;
use jghm::model::{Jghm, Part};
use jghm::random_family::RandomSpec;
use jghm::sample::sample_pairs;
use jghm::sufficiency::{Classes, Gap, Report, Statistic};
use numpy::{
    PyArray1, PyArray2, PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rayon::prelude::*;

/// An error and its sources, one message: `outer: inner: ...`.
fn message(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn value_error(e: impl std::error::Error) -> PyErr {
    PyValueError::new_err(message(&e))
}

fn part_of(name: &str) -> PyResult<Part> {
    match name {
        "image" => Ok(Part::Image),
        "text" => Ok(Part::Text),
        _ => Err(PyValueError::new_err(format!("part must be 'image' or 'text', got '{name}'"))),
    }
}

/// `json.loads(value)`: the library's JSON reports as Python dicts.
fn to_python<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (value.to_string(),))
}

/// `numpy.asarray(obj)` checked to hold integers with `ndim` dimensions, as a contiguous int64
/// array.
fn int_array<'py>(obj: &Bound<'py, PyAny>, what: &str, ndim: usize) -> PyResult<Bound<'py, PyUntypedArray>> {
    let np = obj.py().import("numpy")?;
    let array = np.call_method1("asarray", (obj,))?;
    let untyped = array.cast::<PyUntypedArray>()?;
    let kind = untyped.dtype().kind();
    let empty = untyped.len() == 0;
    if !(kind == b'i' || kind == b'u' || (empty && kind == b'f')) {
        let dtype = untyped.dtype().str()?.to_string();
        return Err(PyValueError::new_err(format!("{what} must be an integer array, got dtype {dtype}")));
    }
    if untyped.ndim() != ndim {
        return Err(PyValueError::new_err(format!(
            "{what} must be a {ndim}-D array, got {} dimension(s) (shape {:?})",
            untyped.ndim(),
            untyped.shape()
        )));
    }
    let contiguous = np.call_method1("ascontiguousarray", (array, np.getattr("int64")?))?;
    Ok(contiguous.cast_into::<PyUntypedArray>()?)
}

/// `numpy.asarray(obj, dtype=float64)` with `ndim` dimensions, every entry finite.
fn float_array<'py>(obj: &Bound<'py, PyAny>, what: &str, ndim: usize) -> PyResult<Bound<'py, PyUntypedArray>> {
    let np = obj.py().import("numpy")?;
    let array = np.call_method1("asarray", (obj,))?;
    let kind = array.cast::<PyUntypedArray>()?.dtype().kind();
    if !matches!(kind, b'f' | b'i' | b'u' | b'b') {
        return Err(PyValueError::new_err(format!("{what} must be a real array, got dtype kind '{}'", kind as char)));
    }
    let contiguous = np.call_method1("ascontiguousarray", (array, np.getattr("float64")?))?;
    let untyped = contiguous.cast_into::<PyUntypedArray>()?;
    if untyped.ndim() != ndim {
        return Err(PyValueError::new_err(format!(
            "{what} must be a {ndim}-D array, got {} dimension(s) (shape {:?})",
            untyped.ndim(),
            untyped.shape()
        )));
    }
    Ok(untyped)
}

/// Token rows checked against `part` of `model` (length, vocabulary): the first failing row's
/// error is the library's [`EvidenceError`], prefixed by the row. Parallel over fixed chunks.
fn check_tokens(model: &Jghm, part: Part, flat: &[i64], rows: usize, width: usize) -> Result<(), String> {
    let (len, vocab) = (model.len_of(part), model.vocab_of(part));
    if width != len {
        let e = EvidenceError::Length { part, got: width, expected: len };
        return Err(if rows == 0 { e.to_string() } else { format!("row 0: {e}") });
    }
    // A negative token wraps to a huge u64, so one comparison per token finds both kinds of
    // bad token; only then is the first one located for the message.
    let bad = |t: &i64| *t as u64 >= vocab as u64;
    // The largest token as u64 (a max reduction, which vectorises) against the vocabulary.
    let largest = flat.par_chunks(1 << 16).map(|c| c.iter().fold(0u64, |m, &t| m.max(t as u64))).max();
    if largest.is_none_or(|m| m < vocab as u64) {
        return Ok(());
    }
    let k = flat.iter().position(bad).unwrap_or_default();
    let (row, position, t) = (k / len.max(1), k % len.max(1), flat[k]);
    let e = match usize::try_from(t) {
        Ok(token) => EvidenceError::OutOfVocabulary { part, position, token, vocab },
        Err(_) => EvidenceError::NotAToken { part, position, text: t.to_string() },
    };
    Err(format!("row {row}: {e}"))
}

/// Checked tokens as `usize`, without a copy on 64-bit targets.
#[cfg(target_pointer_width = "64")]
fn as_usize(flat: &[i64]) -> Cow<'_, [usize]> {
    // SAFETY: on a 64-bit target `i64` and `usize` have the same size and alignment and every
    // bit pattern is a valid `usize`; the tokens were checked to lie in `0..vocab`, so each
    // means the same number as either type.
    Cow::Borrowed(unsafe { std::slice::from_raw_parts(flat.as_ptr().cast::<usize>(), flat.len()) })
}

#[cfg(not(target_pointer_width = "64"))]
fn as_usize(flat: &[i64]) -> Cow<'_, [usize]> {
    Cow::Owned(flat.iter().map(|&t| t as usize).collect())
}

/// A checked `[B, L]` token batch of one part.
struct Batch<'a> {
    tokens: Cow<'a, [usize]>,
    rows: usize,
    width: usize,
}

impl Batch<'_> {
    fn rows(&self) -> Vec<&[usize]> {
        if self.width == 0 {
            return vec![&[][..]; self.rows];
        }
        self.tokens.chunks(self.width).collect()
    }
}

/// `obj` as a readonly contiguous int64 array `[B, L]` (any integer dtype is converted).
fn token_array<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray2<'py, i64>> {
    let array = int_array(obj, what, 2)?;
    Ok(array.cast_into::<PyArray2<i64>>()?.try_readonly()?)
}

/// The tokens of `array` checked against `part` (the GIL released while checking).
fn batch_of<'a>(
    py: Python<'_>,
    model: &Jghm,
    part: Part,
    array: &'a PyReadonlyArray2<'_, i64>,
    what: &str,
) -> PyResult<Batch<'a>> {
    let (rows, width) = (array.shape()[0], array.shape()[1]);
    let flat = array.as_slice()?;
    py.detach(|| check_tokens(model, part, flat, rows, width))
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
    Ok(Batch { tokens: as_usize(flat), rows, width })
}

/// Root posteriors `[B · S_0]`, log-likelihoods `[B]` and `B` of a token batch of one part, the
/// tokens checked chunk by chunk just before belief propagation reads them (so the check costs
/// no extra pass over memory: the chunk is in cache when BP reads it). The GIL is released;
/// the first bad token's error, prefixed by its row, is a `ValueError`.
fn checked_posteriors(
    py: Python<'_>,
    model: &Jghm,
    bp: &FastBp<'_>,
    part: Part,
    array: &PyReadonlyArray2<'_, i64>,
) -> PyResult<(Vec<f64>, Vec<f64>, usize)> {
    const ROWS: usize = 1024;
    let (rows, width) = (array.shape()[0], array.shape()[1]);
    let flat = array.as_slice()?;
    let s0 = model.root_states();
    let result = py.detach(|| -> Result<(Vec<f64>, Vec<f64>), String> {
        if width != model.len_of(part) || rows == 0 {
            check_tokens(model, part, flat, rows, width)?;
        }
        let (mut post, mut ll) = (vec![0.0; rows * s0], vec![0.0; rows]);
        let width = width.max(1);
        let all_valid =
            post.par_chunks_mut(ROWS * s0).zip(ll.par_chunks_mut(ROWS)).zip(flat.par_chunks(ROWS * width)).all(
                |((post, ll), tokens)| {
                    if check_tokens(model, part, tokens, ll.len(), width).is_err() {
                        return false;
                    }
                    let seqs = as_usize(tokens);
                    let obs: Vec<&[usize]> = seqs.chunks(width).collect();
                    bp.root_posteriors_into(part, &obs, post, ll);
                    true
                },
            );
        if !all_valid {
            // The whole batch again, in order, for the first bad row's message.
            check_tokens(model, part, flat, rows, width)?;
        }
        Ok((post, ll))
    });
    let (post, ll) = result.map_err(|e| PyValueError::new_err(format!("tokens: {e}")))?;
    Ok((post, ll, rows))
}

/// Images and texts of the same batch size.
fn pair_batches<'a>(
    py: Python<'_>,
    model: &Jghm,
    images: &'a PyReadonlyArray2<'_, i64>,
    texts: &'a PyReadonlyArray2<'_, i64>,
) -> PyResult<(Batch<'a>, Batch<'a>)> {
    let x = batch_of(py, model, Part::Image, images, "images")?;
    let y = batch_of(py, model, Part::Text, texts, "texts")?;
    if x.rows != y.rows {
        return Err(PyValueError::new_err(format!(
            "images has {} rows but texts has {}: one text per image",
            x.rows, y.rows
        )));
    }
    Ok((x, y))
}

/// Both sides enumerated (the GIL released meanwhile); an error beyond the limits.
fn enumerate<'m>(py: Python<'_>, model: &'m Jghm) -> PyResult<Enumeration<'m>> {
    py.detach(|| Enumeration::new(model)).map_err(value_error)
}

/// A `[rows, width]` int64 array of token sequences.
fn token_matrix<'py>(py: Python<'py>, seqs: &[Vec<usize>], width: usize) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let flat: Vec<i64> = seqs.iter().flat_map(|s| s.iter().map(|&t| t as i64)).collect();
    PyArray1::from_vec(py, flat).reshape([seqs.len(), width])
}

/// Sampled pairs: images `[n, n_x]` and texts `[n, n_y]`.
type Pairs<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<i64>>);

/// A Joint Generative Hierarchical Model: a root `z` with prior `π`, an optional shared
/// trunk, an image tower whose leaves are the image tokens `x = (x_1, ..., x_{n_x})` and a text
/// tower whose leaves are the text tokens `y = (y_1, ..., y_{n_y})`; every edge carries a
/// row-stochastic transition matrix. The joint law is
/// `p(x, y) = Σ_z π(z) p(x | z) p(y | z)` (through the trunk when there is one), computed
/// exactly by belief propagation.
///
/// Build one with `Model.random(...)` (the standard random family, as `jghm model random`),
/// `Model.load(path)` or `Model.from_json(text)` (the JSON format of `jghm model`).
#[pyclass(name = "Model", module = "jghm", frozen)]
struct Model {
    /// Batched BP compiled once for this model, on first use. Declared before `inner` so that it
    /// is dropped first: it borrows the model `inner` owns.
    fast: OnceLock<FastBp<'static>>,
    inner: Arc<Jghm>,
    /// SHA-256 of the JSON text the model was read from (of what `save` writes for a model built
    /// in Python): the identity exports and imported scores carry.
    sha256: String,
}

impl Model {
    fn of_text(model: Jghm, text: &str) -> Model {
        Model { fast: OnceLock::new(), inner: Arc::new(model), sha256: sha256_hex(text.as_bytes()) }
    }

    /// The model's batched BP, compiled on first use and kept (a batch of a thousand sequences
    /// costs about as much as compiling it).
    fn fast(&self) -> &FastBp<'_> {
        self.fast.get_or_init(|| {
            // SAFETY: the model lives on the heap behind `inner`, which this struct owns and never
            // replaces (the class is frozen), and `fast` is dropped before `inner`: the reference
            // outlives every use of the `FastBp` built from it.
            let model: &'static Jghm = unsafe { &*Arc::as_ptr(&self.inner) };
            FastBp::new(model)
        })
    }

    /// A model built here: its identity is that of the file `save` writes.
    fn built(model: Jghm) -> Model {
        let text = format!("{}\n", model.to_json());
        Model::of_text(model, &text)
    }
}

#[pymethods]
impl Model {
    /// Reads and validates a model file (JSON, as written by `jghm model random --out`).
    /// Raises FileNotFoundError / OSError when the file cannot be read, ValueError when it is
    /// not a valid model.
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Model> {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            let msg = format!("cannot read model file '{}': {e}", path.display());
            match e.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                _ => PyOSError::new_err(msg),
            }
        })?;
        let model = Jghm::from_json(&text)
            .map_err(|e| PyValueError::new_err(format!("invalid model '{}': {e}", path.display())))?;
        Ok(Model::of_text(model, &text))
    }

    /// Parses and validates a model from its JSON text (the format of `Model.to_json()`).
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Model> {
        Ok(Model::of_text(Jghm::from_json(text).map_err(value_error)?, text))
    }

    /// A model of the standard random family, the same as
    /// `jghm model random --states S --children M --depth L ...` with the same options:
    /// `S` states at the root and every internal level, `M` children per node, `L` levels per
    /// tower, vocabulary `V` (default `S`), an optional trunk of `shared_depth` levels; each
    /// transition is `Ψ = (1 - ε) P + ε R` with `P` a random permutation, `R` the softmax of
    /// Gaussian logits of scale `s`, and `ε = flip`. The draws depend on `seed` only.
    #[staticmethod]
    #[pyo3(signature = (states, children, depth, *, text_children=None, text_depth=None, vocab=None, shared_depth=0, shared_children=None, flip=0.3, scale=1.0, seed=1))]
    #[allow(clippy::too_many_arguments)]
    fn random(
        states: usize,
        children: usize,
        depth: usize,
        text_children: Option<usize>,
        text_depth: Option<usize>,
        vocab: Option<usize>,
        shared_depth: usize,
        shared_children: Option<usize>,
        flip: f64,
        scale: f64,
        seed: u64,
    ) -> PyResult<Model> {
        let spec = RandomSpec {
            states,
            children,
            depth,
            text_children: text_children.unwrap_or(children),
            text_depth: text_depth.unwrap_or(depth),
            vocab: vocab.unwrap_or(states),
            shared_depth,
            shared_children: shared_children.unwrap_or(children),
            flip,
            scale,
            seed,
        };
        Ok(Model::built(spec.build().map_err(value_error)?))
    }

    /// The model as JSON text (the file format of `jghm`; `Model.from_json` reads it back).
    fn to_json(&self) -> String {
        self.inner.to_json()
    }

    /// Writes the model as JSON to `path`, atomically.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        jghm::files::write_atomic(&path, format!("{}\n", self.inner.to_json()).as_bytes())
            .map_err(|e| PyOSError::new_err(message(&e)))
    }

    /// The shape of the model as a dict (the output of `jghm model check --json`).
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = serde_json::to_value(self.inner.shape()).map_err(|e| PyValueError::new_err(e.to_string()))?;
        to_python(py, &value)
    }

    fn __repr__(&self) -> String {
        let m = &self.inner;
        format!(
            "jghm.Model(root_states={}, image_len={}, image_vocab={}, text_len={}, text_vocab={})",
            m.root_states(),
            m.image_len(),
            m.image_vocab(),
            m.text_len(),
            m.text_vocab()
        )
    }

    /// Number of image tokens `n_x` (leaves of the image tower).
    #[getter]
    fn image_len(&self) -> usize {
        self.inner.image_len()
    }

    /// Number of text tokens `n_y` (leaves of the text tower).
    #[getter]
    fn text_len(&self) -> usize {
        self.inner.text_len()
    }

    /// Vocabulary size of the image tokens: tokens are `0..image_vocab`.
    #[getter]
    fn image_vocab(&self) -> usize {
        self.inner.image_vocab()
    }

    /// Vocabulary size of the text tokens: tokens are `0..text_vocab`.
    #[getter]
    fn text_vocab(&self) -> usize {
        self.inner.text_vocab()
    }

    /// Number of root states `S_0`.
    #[getter]
    fn root_states(&self) -> usize {
        self.inner.root_states()
    }

    /// The root prior `π(z)`, a float64 array of length `S_0`.
    #[getter]
    fn prior<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, self.inner.prior())
    }

    /// `n` i.i.d. pairs `(x, y) ~ p(x, y)` by ancestral sampling, as int64 arrays
    /// `images [n, n_x]` and `texts [n, n_y]`: the same pairs as `jghm sample --n N --seed SEED`
    /// (independent of the number of threads).
    #[pyo3(signature = (n, seed=0))]
    fn sample<'py>(&self, py: Python<'py>, n: usize, seed: u64) -> PyResult<Pairs<'py>> {
        let model = self.inner.clone();
        let (xs, ys) = py.detach(move || {
            let pairs = sample_pairs(&model, n, seed, false);
            let xs: Vec<i64> = pairs.iter().flat_map(|p| p.image.iter().map(|&t| t as i64)).collect();
            let ys: Vec<i64> = pairs.iter().flat_map(|p| p.text.iter().map(|&t| t as i64)).collect();
            (xs, ys)
        });
        let (nx, ny) = (self.inner.image_len(), self.inner.text_len());
        Ok((PyArray1::from_vec(py, xs).reshape([n, nx])?, PyArray1::from_vec(py, ys).reshape([n, ny])?))
    }

    /// Root posteriors `p(z = a | x_i) = π(a) p(x_i | z = a) / p(x_i)` of a batch of one part
    /// (`part` is "image" or "text"; `tokens` an integer array `[B, n_x]` or `[B, n_y]`), as a
    /// float64 array `[B, S_0]`. Exact batched belief propagation (the library's SIMD path),
    /// in one call with the GIL released. Raises ValueError for bad tokens or for a row of
    /// probability zero.
    fn root_posterior<'py>(
        &self,
        py: Python<'py>,
        part: &str,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let part = part_of(part)?;
        let array = token_array(tokens, "tokens")?;
        let (post, ll, rows) = checked_posteriors(py, &self.inner, self.fast(), part, &array)?;
        let s0 = self.inner.root_states();
        if let Some(i) = ll.iter().position(|l| *l == f64::NEG_INFINITY) {
            let e = jghm::BpError::Impossible {
                evidence: if part == Part::Image { "image" } else { "text" },
                needed: "its posterior",
            };
            return Err(PyValueError::new_err(format!("tokens: row {i}: {e}")));
        }
        PyArray1::from_vec(py, post).reshape([rows, s0])
    }

    /// Log-likelihoods `log p(x_i)` (part "image") or `log p(y_i)` (part "text") of a batch
    /// `[B, L]`, as a float64 array `[B]` (natural log; `-inf` for a sequence of probability
    /// zero). Exact batched belief propagation, GIL released.
    fn log_likelihood<'py>(
        &self,
        py: Python<'py>,
        part: &str,
        tokens: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let part = part_of(part)?;
        let array = token_array(tokens, "tokens")?;
        let (_, ll, _) = checked_posteriors(py, &self.inner, self.fast(), part, &array)?;
        Ok(PyArray1::from_vec(py, ll))
    }

    /// Joint log-probabilities `log p(x_i, y_i)` of pairs (`images [B, n_x]`, `texts [B, n_y]`),
    /// as a float64 array `[B]` (`-inf` for a pair of probability zero). Exact batched belief
    /// propagation, GIL released.
    fn log_joint<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (images, texts) = (token_array(images, "images")?, token_array(texts, "texts")?);
        let (x, y) = pair_batches(py, &self.inner, &images, &texts)?;
        let out = py.detach(|| {
            let mut out = vec![0.0; x.rows];
            self.fast().log_pxy_into(&x.rows(), &y.rows(), &mut out);
            out
        });
        Ok(PyArray1::from_vec(py, out))
    }

    /// Pointwise mutual informations `PMI(x_i, y_i) = log p(x_i, y_i) - log p(x_i) - log p(y_i)`
    /// of pairs (`images [B, n_x]`, `texts [B, n_y]`), as a float64 array `[B]`: the optimal
    /// CLIP score (T2). Exact batched belief propagation, GIL released. Raises ValueError for a
    /// pair of probability zero.
    fn pmi<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let (images, texts) = (token_array(images, "images")?, token_array(texts, "texts")?);
        let (x, y) = pair_batches(py, &self.inner, &images, &texts)?;
        let parts = py.detach(|| {
            let mut out = vec![PmiParts { pmi: 0.0, log_pxy: 0.0, log_px: 0.0, log_py: 0.0 }; x.rows];
            self.fast().pmi_into(&x.rows(), &y.rows(), &mut out);
            out
        });
        if let Some(i) = parts.iter().position(|p| p.log_pxy == f64::NEG_INFINITY) {
            let evidence = match (parts[i].log_px, parts[i].log_py) {
                (f64::NEG_INFINITY, _) => "image",
                (_, f64::NEG_INFINITY) => "text",
                _ => "pair (image, text)",
            };
            let e = jghm::BpError::Impossible { evidence, needed: "the PMI" };
            return Err(PyValueError::new_err(format!("row {i}: {e}")));
        }
        Ok(PyArray1::from_vec(py, parts.iter().map(|p| p.pmi).collect()))
    }

    /// The exact information quantities by enumeration, in nats, as a dict (the output of
    /// `jghm info --exact --json`): `mutual_information` `I(X; Y) = Σ p(x, y) PMI(x, y)`,
    /// `entropy_image` `H(X)`, `entropy_text` `H(Y)`, `entropy_root` `H(Z)`,
    /// `information_root_image` `I(Z; X)`, `information_root_text` `I(Z; Y)` (each with a
    /// zero `_stderr`), and `method`. Raises ValueError when the model is too large to enumerate.
    fn information<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let model = &*self.inner;
        let info = py.detach(|| Enumeration::new(model).map(|en| info::exact(&en))).map_err(value_error)?;
        to_python(py, &info.flat_json())
    }

    /// `I(X; Y) = Σ_{x,y} p(x, y) log p(x, y) / (p(x) p(y))` in nats, exactly by enumeration.
    /// Raises ValueError when the model is too large to enumerate.
    fn mutual_information(&self, py: Python<'_>) -> PyResult<f64> {
        let model = &*self.inner;
        py.detach(|| Enumeration::new(model).map(|en| en.mutual_information())).map_err(value_error)
    }

    /// `H(X) = -Σ_x p(x) log p(x)` (part "image") or `H(Y)` (part "text") in nats, exactly by
    /// enumeration. Raises ValueError when the model is too large to enumerate.
    fn entropy(&self, py: Python<'_>, part: &str) -> PyResult<f64> {
        let part = part_of(part)?;
        let model = &*self.inner;
        py.detach(|| Enumeration::new(model).map(|en| en.side(part).entropy())).map_err(value_error)
    }

    /// Every image of positive probability, in the enumeration's order (lexicographic), as an
    /// int64 array `[|X|, n_x]`: the row order of `pmi_matrix()` and of the score matrix of
    /// `clip_excess_risk`. Raises ValueError when the model is too large to enumerate.
    fn enumerate_images<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<i64>>> {
        let en = enumerate(py, &self.inner)?;
        token_matrix(py, &en.image.tokens, self.inner.image_len())
    }

    /// Every text of positive probability, in the enumeration's order (lexicographic), as an
    /// int64 array `[|Y|, n_y]`: the column order of `pmi_matrix()` and of the score matrix of
    /// `clip_excess_risk`.
    fn enumerate_texts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<i64>>> {
        let en = enumerate(py, &self.inner)?;
        token_matrix(py, &en.text.tokens, self.inner.text_len())
    }

    /// The marginal probabilities `p(x)` (part "image") or `p(y)` (part "text") of the
    /// enumerated sequences, in the order of `enumerate_images()` / `enumerate_texts()`.
    fn probabilities<'py>(&self, py: Python<'py>, part: &str) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let part = part_of(part)?;
        let en = enumerate(py, &self.inner)?;
        let side = en.side(part);
        Ok(PyArray1::from_vec(py, (0..side.len()).map(|i| side.p(i)).collect()))
    }

    /// The exact PMI of every enumerated pair, `PMI(x_i, y_j) = log Σ_w p(w | x_i) p(w | y_j) / p(w)`
    /// (T7, through the separator `W`), as a float64 array `[|X|, |Y|]` in the enumeration's
    /// order: the optimal score matrix, whose `clip_excess_risk` is 0.
    fn pmi_matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let model = &*self.inner;
        let (grid, nx, ny) = py
            .detach(|| Enumeration::new(model).map(|en| (en.pmi_grid(), en.image.len(), en.text.len())))
            .map_err(value_error)?;
        PyArray1::from_vec(py, grid).reshape([nx, ny])
    }

    /// The exact CLIP risk of a score matrix `S[i, j] = S(x_i, y_j)` over every enumerated pair
    /// (rows in the order of `enumerate_images()`, columns of `enumerate_texts()`), as a dict.
    /// Per direction (`image_to_text`: an image picks its text; `text_to_image`):
    /// `loss_*` = `ℓ_∞(S) = E_A[-E_{C|A} S(A, C) + log E_{C'~p(c)} exp S(A, C')]`,
    /// `optimum_*` = `ℓ_∞(PMI) = -I(X; Y)`, `excess_*` = `ℓ_∞(S) - ℓ_∞(PMI) ≥ 0` (T4), and
    /// `kl_*` = `E_A KL(P_{C|A} ‖ Q^S_{C|A})`, the same excess by its second route with
    /// `Q^S(c | a) ∝ p(c) exp S(a, c)`; `excess_risk` is the mean of the two excesses and
    /// `mutual_information` is `I(X; Y)`. With `batch=K`, also the finite-batch losses
    /// `loss_K_*` = `ℓ_K(S)`, `optimum_K_*` = `ℓ_K(PMI)`, `excess_K_*`. Scores must be finite.
    #[pyo3(signature = (scores, batch=None))]
    fn clip_excess_risk<'py>(
        &self,
        py: Python<'py>,
        scores: &Bound<'py, PyAny>,
        batch: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let array = float_array(scores, "scores", 2)?;
        let shape = array.shape().to_vec();
        let readonly: PyReadonlyArray2<'_, f64> = array.cast::<PyArray2<f64>>()?.try_readonly()?;
        let s = readonly.as_slice()?;
        let model = &*self.inner;
        let report = py.detach(|| -> Result<serde_json::Value, String> {
            let en = Enumeration::new(model).map_err(|e| message(&e))?;
            let (nx, ny) = (en.image.len(), en.text.len());
            if shape != [nx, ny] {
                return Err(format!(
                    "scores has shape {shape:?}, but the model enumerates {nx} images and {ny} texts: give [{nx}, {ny}] (rows in the order of enumerate_images(), columns of enumerate_texts())"
                ));
            }
            if let Some(k) = s.iter().position(|v| !v.is_finite()) {
                return Err(format!("scores[{}, {}] is {}: scores must be finite", k / ny, k % ny, s[k]));
            }
            if batch == Some(0) {
                return Err("batch must be a positive integer K (or None for the large-batch limit)".into());
            }
            let ex = Exact::new(&en);
            let mut out = serde_json::Map::new();
            let mut excess = 0.0;
            for (dir, name) in [(Direction::ImageToText, "image_to_text"), (Direction::TextToImage, "text_to_image")] {
                let (view, best) = (ex.view(s, dir), ex.view(&ex.pmi, dir));
                let (loss, optimum) = (view.loss_infinite(), best.loss_infinite());
                excess += (loss - optimum) / 2.0;
                out.insert(format!("loss_{name}"), loss.into());
                out.insert(format!("optimum_{name}"), optimum.into());
                out.insert(format!("excess_{name}"), (loss - optimum).into());
                out.insert(format!("kl_{name}"), view.excess_kl().into());
                if let Some(k) = batch {
                    let loss = view.loss_finite(k).map_err(|e| message(&e))?;
                    let optimum = best.loss_finite(k).map_err(|e| message(&e))?;
                    out.insert(format!("loss_K_{name}"), loss.into());
                    out.insert(format!("optimum_K_{name}"), optimum.into());
                    out.insert(format!("excess_K_{name}"), (loss - optimum).into());
                }
            }
            out.insert("excess_risk".into(), excess.into());
            out.insert("mutual_information".into(), en.mutual_information().into());
            out.insert("images".into(), nx.into());
            out.insert("texts".into(), ny.into());
            if let Some(k) = batch {
                out.insert("batch".into(), k.into());
            }
            Ok(serde_json::Value::Object(out))
        });
        to_python(py, &report.map_err(PyValueError::new_err)?)
    }

    /// The exact sufficiency gap of a statistic `T = f(A)` of one side `A` (`side` "image" for
    /// `Suff_Y(f)`, "text" for `Suff_X(g)`) for predicting the other side `C`, as a dict:
    /// `sufficiency` = `E_A KL(P_{C|A} ‖ P_{C|T})` (KL form), `information_form` =
    /// `I(A; C) - I(T; C)`, `variational_form` = `min_q E_A KL(P_{C|A} ‖ q(· | T))` (T6: all three
    /// agree), `mutual_information`, `statistic_information` `I(T; C)` and `classes`.
    ///
    /// `statistic` is either a built-in name (as `jghm sufficiency --statistic`:
    /// root-posterior, separator-posterior, map-root, masked-posterior:K, first-tokens:K,
    /// layer-posterior:D; the dict is then that command's `--exact --json` output), or one value
    /// per enumerated sequence of the side, in the order of `enumerate_images()` /
    /// `enumerate_texts()`: a 1-D integer array of class labels, or a 2-D float array of
    /// embeddings (rows equal after rounding to multiples of 2^-40 are one class).
    fn sufficiency_gap<'py>(
        &self,
        py: Python<'py>,
        side: &str,
        statistic: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let part = part_of(side)?;
        let model = &*self.inner;
        if let Ok(name) = statistic.extract::<String>() {
            let statistic: Statistic = name.parse().map_err(value_error)?;
            let report = py.detach(|| Report::exact(model, part, statistic)).map_err(value_error)?;
            let value = serde_json::to_value(&report).map_err(|e| PyValueError::new_err(e.to_string()))?;
            return to_python(py, &value);
        }
        let np = py.import("numpy")?;
        let array = np.call_method1("asarray", (statistic,))?;
        let untyped = array.cast::<PyUntypedArray>()?;
        let classes_of = |rows: usize| -> PyResult<Classes> {
            match untyped.ndim() {
                1 => {
                    let labels = int_array(&array, "statistic", 1)?;
                    let labels: PyReadonlyArray1<'_, i64> = labels.cast::<PyArray1<i64>>()?.try_readonly()?;
                    let keys = labels.as_slice()?.to_vec();
                    check_rows(keys.len(), rows)?;
                    Ok(Classes::from_keys(&keys))
                }
                2 => {
                    let values = float_array(&array, "statistic", 2)?;
                    let width = values.shape()[1];
                    let values: PyReadonlyArray2<'_, f64> = values.cast::<PyArray2<f64>>()?.try_readonly()?;
                    let flat = values.as_slice()?;
                    if let Some(k) = flat.iter().position(|v| !v.is_finite()) {
                        return Err(PyValueError::new_err(format!(
                            "statistic has a value that is not finite ({}) in row {}",
                            flat[k],
                            k / width.max(1)
                        )));
                    }
                    let rows_of: Vec<Vec<f64>> = if width == 0 {
                        vec![vec![]; values.shape()[0]]
                    } else {
                        flat.chunks(width).map(<[f64]>::to_vec).collect()
                    };
                    check_rows(rows_of.len(), rows)?;
                    Ok(Classes::of_values(&rows_of))
                }
                d => Err(PyValueError::new_err(format!(
                    "statistic must be a name, a 1-D array of labels or a 2-D array of values, got {d} dimension(s)"
                ))),
            }
        };
        let en = enumerate(py, model)?;
        let classes = classes_of(en.side(part).len())?;
        let s = py.detach(|| Gap::new(&en, part, classes).all());
        let value = serde_json::to_value(&s).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let dict = to_python(py, &value)?;
        dict.cast::<PyDict>()?.set_item("sufficiency", s.kl_form)?;
        Ok(dict)
    }

    /// SHA-256 (hex) of the model's JSON file: of the file it was loaded from, or of what
    /// `save` writes. Exports carry it, and imported scores of another model are refused.
    #[getter]
    fn sha256(&self) -> String {
        self.sha256.clone()
    }

    /// Writes `n` sampled pairs with their exact quantities to `path` (safetensors), as
    /// `jghm export --n N --seed S`: `images`, `texts` (int64), `log_px`, `log_py`, `log_pxy`,
    /// `pmi`, `image_root_posterior`, `text_root_posterior`, `roots` (and `hidden` with
    /// `hidden=True`); the same bytes as the command for the same model file and seed. With
    /// `all=True` (and no `n`), every image and text of an enumerable model with `log p`, root
    /// posteriors and the full PMI matrix, as `jghm export --all`.
    #[pyo3(signature = (path, n=None, *, seed=0, hidden=false, all=false))]
    fn export(
        &self,
        py: Python<'_>,
        path: PathBuf,
        n: Option<usize>,
        seed: u64,
        hidden: bool,
        all: bool,
    ) -> PyResult<()> {
        let model = &*self.inner;
        let bytes = match (n, all) {
            (Some(_), true) | (None, false) => {
                return Err(PyValueError::new_err("give either n (sampled pairs) or all=True (every sequence)"));
            }
            (Some(0), false) => return Err(PyValueError::new_err("n must be at least 1")),
            (Some(n), false) => py
                .detach(|| export::sample_set(model, n, seed, hidden, &mut |_| {}).to_safetensors(model, &self.sha256)),
            (None, true) => {
                py.detach(|| export::enumerate_all(model)).map_err(value_error)?.to_safetensors(model, &self.sha256)
            }
        };
        jghm::files::write_atomic(&path, &bytes).map_err(|e| PyOSError::new_err(message(&e)))
    }

    /// Measures scores of an encoder trained elsewhere, read from `path` (safetensors, `.npy`,
    /// `.npz` or the JSON of `jghm scores`), as `jghm eval --scores PATH --json`: a dict with
    /// `excess_risk` (the CLIP average of `ℓ_∞(S) − ℓ_∞(PMI)`), `excess_risk_image_to_text`,
    /// `excess_risk_text_to_image` (T4; the T5 bounds on the sufficiency gaps), their
    /// `_stderr` (0 when exact), the finite-`K` loss at `k`, zero-shot against Bayes, the PMI
    /// correlation and `method`. Exact when the model is enumerable and every image and text is
    /// given; else Monte Carlo on the rows as exported pairs (`set`: the export of `jghm
    /// export` the embeddings are of). `exact=True` refuses the Monte Carlo route.
    #[pyo3(signature = (path, *, set=None, similarity=None, logit_scale=None, k=4, block=1024, prompts=64, exact=false))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_scores<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        set: Option<PathBuf>,
        similarity: Option<&str>,
        logit_scale: Option<f64>,
        k: usize,
        block: usize,
        prompts: usize,
        exact: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let similarity = similarity.map(str::parse::<Similarity>).transpose().map_err(PyValueError::new_err)?;
        let model = &*self.inner;
        let report = py.detach(|| -> Result<serde_json::Value, String> {
            let score = imported::read_scores(model, &self.sha256, &path, set.as_deref(), similarity, logit_scale)
                .map_err(|e| message(&e))?;
            let roots = imported::read_roots(set.as_deref().unwrap_or(&path), score.images.len(), model.root_states())
                .map_err(|e| message(&e))?;
            evaluate_imported(model, &score, roots.as_deref(), k, block, prompts, exact)
        });
        to_python(py, &report.map_err(PyValueError::new_err)?)
    }

    /// Measures an encoder given by its embeddings, with no file: `image_embeddings` `[N_x, p]`
    /// of the token rows `images` `[N_x, n_x]` and `text_embeddings` `[N_y, p]` of `texts`,
    /// scored by `S = logit_scale · ⟨f, g⟩` (`similarity="dot"`) or with unit vectors
    /// (`"cosine"`). Returns the dict of `evaluate_scores`. Exact when `images` and `texts`
    /// cover every sequence of an enumerable model (`enumerate_images()`, `enumerate_texts()`);
    /// with `pairs=True` the rows are pairs `(x_i, y_i)` of `sample` or `export` and the figures
    /// are Monte Carlo (`roots`, the sampled roots, enable zero-shot).
    #[pyo3(signature = (images, texts, image_embeddings, text_embeddings, *, similarity="dot", logit_scale=1.0, pairs=false, roots=None, k=4, block=1024, prompts=64))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate_embeddings<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyAny>,
        image_embeddings: &Bound<'py, PyAny>,
        text_embeddings: &Bound<'py, PyAny>,
        similarity: &str,
        logit_scale: f64,
        pairs: bool,
        roots: Option<Vec<usize>>,
        k: usize,
        block: usize,
        prompts: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let similarity: Similarity = similarity.parse().map_err(PyValueError::new_err)?;
        if !logit_scale.is_finite() {
            return Err(PyValueError::new_err(format!("logit_scale must be finite, got {logit_scale}")));
        }
        let model = &*self.inner;
        let (xa, ya) = (token_array(images, "images")?, token_array(texts, "texts")?);
        let x = batch_of(py, model, Part::Image, &xa, "images")?;
        let y = batch_of(py, model, Part::Text, &ya, "texts")?;
        let rows_of = |obj: &Bound<'py, PyAny>, what: &str, n: usize| -> PyResult<Vec<Vec<f64>>> {
            let a = float_array(obj, what, 2)?;
            let shape = a.shape().to_vec();
            if shape[0] != n {
                return Err(PyValueError::new_err(format!(
                    "{what} has {} rows, but there are {n} sequences: one row each",
                    shape[0]
                )));
            }
            let r: PyReadonlyArray2<'_, f64> = a.cast::<PyArray2<f64>>()?.try_readonly()?;
            let flat = r.as_slice()?;
            if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
                return Err(PyValueError::new_err(format!(
                    "{what}[{}] has a value that is not finite",
                    i / shape[1].max(1)
                )));
            }
            Ok(flat.chunks(shape[1].max(1)).map(<[f64]>::to_vec).collect())
        };
        let (f, g) = (
            rows_of(image_embeddings, "image_embeddings", x.rows)?,
            rows_of(text_embeddings, "text_embeddings", y.rows)?,
        );
        if f.first().map(Vec::len) != g.first().map(Vec::len) {
            return Err(PyValueError::new_err(
                "image_embeddings and text_embeddings must have the same number of columns",
            ));
        }
        if pairs && x.rows != y.rows {
            return Err(PyValueError::new_err(format!(
                "pairs=True needs as many texts as images, got {} and {}",
                x.rows, y.rows
            )));
        }
        if let Some(r) = &roots {
            if r.len() != x.rows || r.iter().any(|&z| z >= model.root_states()) {
                return Err(PyValueError::new_err(format!(
                    "roots must be {} root states in 0..{}",
                    x.rows,
                    model.root_states()
                )));
            }
        }
        let to_vecs = |b: &Batch<'_>| b.rows().into_iter().map(<[usize]>::to_vec).collect::<Vec<_>>();
        let score = ImportedScore::embeddings(to_vecs(&x), to_vecs(&y), f, g, similarity, logit_scale, pairs);
        let report = py.detach(|| evaluate_imported(model, &score, roots.as_deref(), k, block, prompts, false));
        to_python(py, &report.map_err(PyValueError::new_err)?)
    }
}

/// The library's evaluation of imported scores ([`imported::evaluate`]) as its JSON.
fn evaluate_imported(
    model: &Jghm,
    score: &ImportedScore,
    roots: Option<&[usize]>,
    k: usize,
    block: usize,
    prompts: usize,
    exact: bool,
) -> Result<serde_json::Value, String> {
    if k < 2 || block < 2 || prompts < 1 {
        return Err(format!("k ({k}) and block ({block}) must be at least 2, prompts ({prompts}) at least 1"));
    }
    let spec = ImportSpec { k, pairs: PairsSpec { block, k, prompts }, require_exact: exact };
    let report = imported::evaluate(model, score, roots, &spec).map_err(|e| message(&e))?;
    if !report.excess_risk().is_finite() {
        return Err("the excess risk is not a finite number: the scores are degenerate".into());
    }
    Ok(report.to_json(score, k))
}

fn check_rows(got: usize, expected: usize) -> PyResult<()> {
    if got != expected {
        return Err(PyValueError::new_err(format!(
            "statistic has {got} rows, but the side enumerates {expected} sequences: one value per sequence, in the enumeration's order"
        )));
    }
    Ok(())
}

/// Exact inference and the exact theory of contrastive (CLIP) pre-training on Joint Generative
/// Hierarchical Models: `jghm.Model` holds a model and computes, exactly (f64), root posteriors,
/// likelihoods, PMI, informations, the CLIP excess risk of any score matrix and the
/// sufficiency gap of any statistic.
#[pymodule]
#[pyo3(name = "jghm")]
fn jghm_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
