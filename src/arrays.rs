//! Named numeric arrays in the files other frameworks write: safetensors (PyTorch, JAX), NumPy's
//! `.npy` (one array) and `.npz` (a zip of `.npy` files, from `np.savez` or
//! `np.savez_compressed`). The ground floor of data exchange: [`crate::export`] writes data sets
//! with their exact quantities, [`crate::eval::imported`] reads the scores or embeddings of an
//! encoder trained elsewhere.
//!
//! Every array is read into `f64` (integers up to `2^53` exactly, `f32` widened), row-major, with
//! its shape; a file that cannot be read is an error naming the file and what is wrong with it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// One array: `data` in row-major order, `shape.iter().product() == data.len()`.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    /// A vector `[n]`.
    pub fn vector(data: Vec<f64>) -> Self {
        Array { shape: vec![data.len()], data }
    }

    /// A matrix `[rows, cols]` from its rows, which must all have `cols` entries.
    pub fn matrix(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(rows * cols, data.len(), "a {rows} x {cols} matrix needs {} entries", rows * cols);
        Array { shape: vec![rows, cols], data }
    }

    /// The rows of a matrix `[rows, cols]`.
    pub fn rows(&self) -> impl Iterator<Item = &[f64]> {
        let cols = self.shape.get(1).copied().unwrap_or(1).max(1);
        self.data.chunks(cols)
    }
}

/// The arrays of a file by name, and its text metadata (safetensors' header `__metadata__`;
/// empty for NumPy files).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Arrays {
    pub arrays: BTreeMap<String, Array>,
    pub metadata: BTreeMap<String, String>,
}

/// Why a file of arrays cannot be read; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ArrayError {
    #[error("cannot read '{}': {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("'{}' is not a safetensors, .npy or .npz file ({reason})", path.display())]
    Format { path: PathBuf, reason: String },
    #[error("'{}': array '{name}' has dtype {dtype}, not a number type", path.display())]
    Dtype { path: PathBuf, name: String, dtype: String },
    #[error("'{}': array '{name}' has a value that is not a finite number", path.display())]
    NotFinite { path: PathBuf, name: String },
    #[error("'{}' has no array '{name}'", path.display())]
    Missing { path: PathBuf, name: String },
    #[error("'{}': array '{name}' has shape {got:?}, expected {expected}", path.display())]
    Shape { path: PathBuf, name: String, got: Vec<usize>, expected: String },
}

/// Reads every array of a safetensors, `.npy` or `.npz` file (told apart by their first bytes:
/// `.npy` starts with `\x93NUMPY`, `.npz` with the zip signature `PK`, anything else is tried as
/// safetensors). A `.npy` file's one array is named after the file's stem.
pub fn read(path: &Path) -> Result<Arrays, ArrayError> {
    let bytes = std::fs::read(path).map_err(|source| ArrayError::Read { path: path.into(), source })?;
    let format = |reason: String| ArrayError::Format { path: path.into(), reason };
    if bytes.starts_with(b"\x93NUMPY") {
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "array".into());
        let array = read_npy(&bytes[..]).map_err(|e| e.named(path, &name))?;
        return Ok(Arrays { arrays: BTreeMap::from([(name, array)]), metadata: BTreeMap::new() });
    }
    if bytes.starts_with(b"PK") {
        return read_npz(path, &bytes);
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format(format!("safetensors: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format(format!("safetensors: {e}")))?;
    let mut arrays = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = safetensors_data(view.dtype(), view.data()).ok_or_else(|| ArrayError::Dtype {
            path: path.into(),
            name: name.clone(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        arrays.insert(name, Array { shape: view.shape().to_vec(), data });
    }
    let metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok(Arrays { arrays, metadata })
}

fn read_npz(path: &Path, bytes: &[u8]) -> Result<Arrays, ArrayError> {
    let format = |reason: String| ArrayError::Format { path: path.into(), reason };
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format(format!("zip: {e}")))?;
    let mut arrays = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format(format!("zip: {e}")))?;
        let name =
            entry.name().map_err(|e| format(format!("zip entry {i}: {e}")))?.trim_end_matches(".npy").to_string();
        let mut raw = vec![];
        entry.read_to_end(&mut raw).map_err(|e| format(format!("zip entry '{name}': {e}")))?;
        let array = read_npy(&raw[..]).map_err(|e| e.named(path, &name))?;
        arrays.insert(name, array);
    }
    Ok(Arrays { arrays, metadata: BTreeMap::new() })
}

/// What is wrong with one `.npy` array, before the file and the name are known.
enum NpyError {
    Format(String),
    Dtype(String),
}

impl NpyError {
    fn named(self, path: &Path, name: &str) -> ArrayError {
        match self {
            NpyError::Format(reason) => {
                ArrayError::Format { path: path.into(), reason: format!("array '{name}': {reason}") }
            }
            NpyError::Dtype(dtype) => ArrayError::Dtype { path: path.into(), name: name.into(), dtype },
        }
    }
}

/// One `.npy` array in `f64`: the number types NumPy writes (`b1`, `i1`-`i8`, `u1`-`u8`,
/// `f4`, `f8`, either byte order), C or Fortran order.
fn read_npy(bytes: &[u8]) -> Result<Array, NpyError> {
    use npyz::{DType, Order, TypeChar};
    let npy = npyz::NpyFile::new(bytes).map_err(|e| NpyError::Format(e.to_string()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let order = npy.order();
    let DType::Plain(ts) = npy.dtype() else {
        return Err(NpyError::Dtype(format!("{:?}", npy.dtype())));
    };
    let descr = ts.to_string();
    let wide = |v: Vec<f64>| v;
    let data: Vec<f64> = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 8) => wide(npy.into_vec::<f64>().map_err(|e| NpyError::Format(e.to_string()))?),
        (TypeChar::Float, 4) => into_f64::<f32>(npy)?,
        (TypeChar::Int, 8) => into_f64::<i64>(npy)?,
        (TypeChar::Int, 4) => into_f64::<i32>(npy)?,
        (TypeChar::Int, 2) => into_f64::<i16>(npy)?,
        (TypeChar::Int, 1) => into_f64::<i8>(npy)?,
        (TypeChar::Uint, 8) => into_f64::<u64>(npy)?,
        (TypeChar::Uint, 4) => into_f64::<u32>(npy)?,
        (TypeChar::Uint, 2) => into_f64::<u16>(npy)?,
        (TypeChar::Uint, 1) => into_f64::<u8>(npy)?,
        (TypeChar::Bool, 1) => into_f64::<bool>(npy)?,
        _ => return Err(NpyError::Dtype(descr)),
    };
    let data = if order == Order::Fortran && shape.len() > 1 { to_c_order(&shape, &data) } else { data };
    Ok(Array { shape, data })
}

/// Values NumPy can store, widened to `f64`.
trait Widen: npyz::Deserialize {
    fn widen(self) -> f64;
}

macro_rules! widen {
    ($($t:ty),*) => {$(impl Widen for $t { fn widen(self) -> f64 { self as f64 } })*};
}
widen!(f32, i64, i32, i16, i8, u64, u32, u16, u8);
impl Widen for bool {
    fn widen(self) -> f64 {
        f64::from(u8::from(self))
    }
}

fn into_f64<T: Widen>(npy: npyz::NpyFile<&[u8]>) -> Result<Vec<f64>, NpyError> {
    Ok(npy.into_vec::<T>().map_err(|e| NpyError::Format(e.to_string()))?.into_iter().map(T::widen).collect())
}

/// A Fortran-order (column-major) array's entries in C order.
fn to_c_order(shape: &[usize], data: &[f64]) -> Vec<f64> {
    let n = data.len();
    let mut out = vec![0.0; n];
    let mut index = vec![0usize; shape.len()];
    for (c, o) in out.iter_mut().enumerate() {
        let mut rest = c;
        for (k, &d) in shape.iter().enumerate().rev() {
            index[k] = rest % d.max(1);
            rest /= d.max(1);
        }
        let mut f = 0;
        for (k, &d) in shape.iter().enumerate().rev() {
            f = f * d + index[k];
        }
        *o = data[f];
    }
    out
}

/// A safetensors tensor's little-endian bytes in `f64`; `None` for a non-number dtype.
fn safetensors_data(dtype: Dtype, b: &[u8]) -> Option<Vec<f64>> {
    macro_rules! le {
        ($t:ty) => {
            b.chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect()
        };
    }
    Some(match dtype {
        Dtype::F64 => le!(f64),
        Dtype::F32 => le!(f32),
        Dtype::I64 => le!(i64),
        Dtype::I32 => le!(i32),
        Dtype::I16 => le!(i16),
        Dtype::I8 => le!(i8),
        Dtype::U64 => le!(u64),
        Dtype::U32 => le!(u32),
        Dtype::U16 => le!(u16),
        Dtype::U8 => le!(u8),
        Dtype::BOOL => b.iter().map(|&v| f64::from(v != 0)).collect(),
        Dtype::F16 | Dtype::BF16 => return Some(half_floats(dtype, b)),
        _ => return None,
    })
}

/// IEEE half floats and bfloat16 widened to `f64` (bit manipulation: both are truncations of
/// `f32`'s layout, bfloat16 exactly, half with its own exponent bias).
fn half_floats(dtype: Dtype, b: &[u8]) -> Vec<f64> {
    b.chunks_exact(2)
        .map(|c| {
            let h = u16::from_le_bytes([c[0], c[1]]);
            if dtype == Dtype::BF16 {
                return f32::from_bits(u32::from(h) << 16) as f64;
            }
            let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
            let (e, m) = ((h >> 10) & 0x1f, f64::from(h & 0x3ff));
            sign * match e {
                0 => m * 2f64.powi(-24),
                31 if m == 0.0 => f64::INFINITY,
                31 => f64::NAN,
                _ => (1.0 + m / 1024.0) * 2f64.powi(i32::from(e) - 15),
            }
        })
        .collect()
}

impl Arrays {
    /// The array `name`, refused if absent or if any value is not finite.
    pub fn get(&self, path: &Path, name: &str) -> Result<&Array, ArrayError> {
        let a = self.arrays.get(name).ok_or_else(|| ArrayError::Missing { path: path.into(), name: name.into() })?;
        if a.data.iter().any(|v| !v.is_finite()) {
            return Err(ArrayError::NotFinite { path: path.into(), name: name.into() });
        }
        Ok(a)
    }

    /// The array `name` as a matrix `[rows, cols]` (`rows`, `cols` checked where given), or
    /// an error saying the shape expected.
    pub fn matrix(
        &self,
        path: &Path,
        name: &str,
        rows: Option<usize>,
        cols: Option<usize>,
    ) -> Result<&Array, ArrayError> {
        let a = self.get(path, name)?;
        let ok = a.shape.len() == 2 && rows.is_none_or(|r| a.shape[0] == r) && cols.is_none_or(|c| a.shape[1] == c);
        if !ok {
            let dim = |d: Option<usize>, s: &str| d.map_or(s.to_string(), |d| d.to_string());
            let expected = format!("[{}, {}]", dim(rows, "rows"), dim(cols, "columns"));
            return Err(ArrayError::Shape { path: path.into(), name: name.into(), got: a.shape.clone(), expected });
        }
        Ok(a)
    }

    /// Token sequences `[rows, len]`: a matrix of non-negative integers (each checked).
    pub fn tokens(
        &self,
        path: &Path,
        name: &str,
        rows: Option<usize>,
        len: usize,
    ) -> Result<Vec<Vec<usize>>, ArrayError> {
        let a = self.matrix(path, name, rows, Some(len))?;
        if a.data.iter().any(|&v| v < 0.0 || v.fract() != 0.0 || v > u32::MAX as f64) {
            return Err(ArrayError::Shape {
                path: path.into(),
                name: name.into(),
                got: a.shape.clone(),
                expected: "non-negative integer tokens".into(),
            });
        }
        Ok(a.rows().map(|r| r.iter().map(|&v| v as usize).collect()).collect())
    }
}

/// The dtype a tensor is written in by [`to_safetensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Tokens and states: `int64`, PyTorch's index type.
    I64,
    F64,
}

/// Serialises named arrays and text metadata as safetensors bytes (header keys sorted, so the
/// same arrays give the same bytes).
pub fn to_safetensors(arrays: &[(&str, &Array, Stored)], metadata: BTreeMap<String, String>) -> Vec<u8> {
    let raw: Vec<(String, Vec<u8>, Vec<usize>, Stored)> = arrays
        .iter()
        .map(|(name, a, stored)| {
            let bytes = match stored {
                Stored::I64 => a.data.iter().flat_map(|&v| (v as i64).to_le_bytes()).collect(),
                Stored::F64 => a.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (name.to_string(), bytes, a.shape.clone(), *stored)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = raw
        .iter()
        .map(|(name, bytes, shape, stored)| {
            let dtype = if *stored == Stored::I64 { Dtype::I64 } else { Dtype::F64 };
            (
                name.clone(),
                safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes).expect("shape matches the data"),
            )
        })
        .collect();
    let metadata: std::collections::HashMap<String, String> = metadata.into_iter().collect();
    canonical_header(safetensors::serialize(views, &Some(metadata)).expect("in-memory serialisation"))
}

/// Rewrites a safetensors header with its JSON keys sorted (same length, same padding), so that
/// the same tensors and metadata are the same bytes on every run (checkpoints, exports):
/// `safetensors::serialize` takes the metadata
/// as a `HashMap`, whose iteration order changes from process to process. Offsets are explicit in
/// the header, so the order of its keys carries no meaning.
pub fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8-byte length prefix")) as usize;
    let header = &bytes[8..8 + n];
    let value: serde_json::Value = serde_json::from_slice(header).expect("safetensors writes valid JSON");
    // serde_json's map is ordered by key.
    let mut sorted = serde_json::to_vec(&value).expect("JSON re-serialises");
    if sorted.len() > n {
        return bytes; // cannot happen (same content, compact either way); keep the original
    }
    sorted.resize(n, b' ');
    bytes[8..8 + n].copy_from_slice(&sorted);
    bytes
}
