//! Checkpoints in the safetensors format: the parameters and the optimiser's moments as
//! tensors; the configuration, the seed, the step and the SHA-256 of the model file as
//! metadata, so that evaluation (and `--resume`) refuses a checkpoint of another model.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::adamw::AdamW;
use super::clip::Params;
use super::config::{CheckedConfig, ConfigError, TrainConfig};
use super::encoder::Encoder;
use super::real::Real;
use super::registry::{with_encoders, Class, WithEncoders};
use crate::files::FileError;
use crate::model::{Jghm, Part};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// The format tag written into every checkpoint.
pub const FORMAT: &str = "jghm-clip-checkpoint-v1";
/// The prefix of every version's format tag (to name an unsupported version as such).
const FORMAT_FAMILY: &str = "jghm-clip-checkpoint-";

/// Everything needed to evaluate a learned pair or to continue its training.
#[derive(Clone, Debug)]
pub struct Checkpoint<R> {
    pub config: TrainConfig,
    pub model_sha256: String,
    pub seed: u64,
    /// Steps done.
    pub step: usize,
    pub params: Params<R>,
    pub opt: AdamW<R>,
    /// Mean training loss over the last logging window, and the held-out loss (fixed data).
    pub train_loss: f64,
    pub held_out_loss: Option<f64>,
}

/// Problems with a checkpoint file, naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a safetensors file: {0}")]
    Format(String),
    #[error("not a jghm checkpoint (metadata '{0}' missing or invalid)")]
    Metadata(&'static str),
    #[error("tensor '{0}' missing or of the wrong type (expected {1})")]
    Tensor(String, &'static str),
    #[error("the checkpoint was trained on another model (model file SHA-256 {expected}, this file has {found})")]
    ModelMismatch { expected: String, found: String },
    #[error("checkpoint format '{0}' is not supported (this build reads {FORMAT})")]
    Version(String),
    #[error("tensor '{name}' is {found}, but the configuration needs {expected}")]
    Shape { name: String, found: String, expected: String },
    #[error("unexpected tensor '{0}'")]
    Unexpected(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--resume: the configuration differs from the checkpoint's (resume with the same --config/--class/--steps/--n, or none of them)")]
    ResumeConfig,
}

/// The configuration to resume the run saved in `bytes` with: the checkpoint's own when nothing
/// was asked for (no configuration flags, and no class or the checkpoint's), else `requested`,
/// which must equal it. Refuses a checkpoint of another model (`model_sha256`).
pub fn resume_config(
    bytes: &[u8],
    model_sha256: &str,
    requested: TrainConfig,
    flags_given: bool,
    class: Option<Class>,
) -> Result<TrainConfig, CheckpointError> {
    let (saved, meta) = read_header(bytes)?;
    if let Some(recorded) = meta.get("model_sha256").filter(|h| *h != model_sha256) {
        return Err(CheckpointError::ModelMismatch { expected: recorded.clone(), found: model_sha256.into() });
    }
    if (!flags_given && class.is_none_or(|c| c == saved.class)) || requested == saved {
        return Ok(saved);
    }
    Err(CheckpointError::ResumeConfig)
}

/// SHA-256 of a model file's bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

const BLOCKS: [&str; 3] = ["image", "text", "head"];

impl<R: Real> Checkpoint<R> {
    /// The safetensors bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let dtype = if R::DTYPE == "F32" { Dtype::F32 } else { Dtype::F64 };
        let mut raw: Vec<(String, Vec<u8>)> = vec![];
        for (prefix, p) in [("param", &self.params), ("adam_m", &self.opt.m), ("adam_v", &self.opt.v)] {
            for (name, block) in BLOCKS.iter().zip(p.blocks()) {
                raw.push((format!("{prefix}.{name}"), R::to_le_bytes(block)));
            }
        }
        let views: Vec<(String, TensorView)> = raw
            .iter()
            .map(|(n, b)| {
                let len = b.len() / std::mem::size_of::<R>();
                (n.clone(), TensorView::new(dtype, vec![len], b).expect("length matches the dtype"))
            })
            .collect();
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert("config".to_string(), serde_json::to_string(&self.config).expect("config serialises"));
        meta.insert("model_sha256".to_string(), self.model_sha256.clone());
        meta.insert("seed".to_string(), self.seed.to_string());
        meta.insert("step".to_string(), self.step.to_string());
        meta.insert("adam_t".to_string(), self.opt.t.to_string());
        meta.insert("train_loss".to_string(), self.train_loss.to_string());
        if let Some(h) = self.held_out_loss {
            meta.insert("held_out_loss".to_string(), h.to_string());
        }
        let bytes = safetensors::serialize(views, &Some(meta)).expect("in-memory serialisation");
        crate::arrays::canonical_header(bytes)
    }

    /// Reads a checkpoint written by [`Checkpoint::to_bytes`] with the same `R`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let (config, meta) = read_header(bytes)?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
        let get = |name: String| -> Result<Vec<R>, CheckpointError> {
            let t = st.tensor(&name).map_err(|_| CheckpointError::Tensor(name.clone(), R::DTYPE))?;
            if format!("{:?}", t.dtype()) != R::DTYPE {
                return Err(CheckpointError::Tensor(name, R::DTYPE));
            }
            R::from_le_bytes(t.data()).ok_or(CheckpointError::Tensor(name, R::DTYPE))
        };
        let block = |prefix: &str| -> Result<Params<R>, CheckpointError> {
            Ok(Params {
                image: get(format!("{prefix}.image"))?,
                text: get(format!("{prefix}.text"))?,
                head: get(format!("{prefix}.head"))?,
            })
        };
        let num = |key: &'static str| -> Result<u64, CheckpointError> {
            meta.get(key).and_then(|v| v.parse().ok()).ok_or(CheckpointError::Metadata(key))
        };
        Ok(Checkpoint {
            config,
            model_sha256: meta.get("model_sha256").cloned().ok_or(CheckpointError::Metadata("model_sha256"))?,
            seed: num("seed")?,
            step: num("step")? as usize,
            params: block("param")?,
            opt: AdamW { m: block("adam_m")?, v: block("adam_v")?, t: num("adam_t")? as usize },
            train_loss: meta.get("train_loss").and_then(|v| v.parse().ok()).unwrap_or(f64::NAN),
            held_out_loss: meta.get("held_out_loss").and_then(|v| v.parse().ok()),
        })
    }

    /// Refuses a checkpoint whose model hash differs from `model_sha256`.
    pub fn check_model(&self, model_sha256: &str) -> Result<(), CheckpointError> {
        if self.model_sha256 != model_sha256 {
            return Err(CheckpointError::ModelMismatch {
                expected: self.model_sha256.clone(),
                found: model_sha256.to_string(),
            });
        }
        Ok(())
    }
}

/// The configuration and metadata of a checkpoint, without reading its tensors (to pick the
/// class, hence the float type, before loading).
pub fn read_header(bytes: &[u8]) -> Result<(TrainConfig, HashMap<String, String>), CheckpointError> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let meta = meta.metadata().clone().ok_or(CheckpointError::Metadata("__metadata__"))?;
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        Some(f) if f.starts_with(FORMAT_FAMILY) => return Err(CheckpointError::Version(f.clone())),
        _ => return Err(CheckpointError::Metadata("format")),
    }
    let config =
        meta.get("config").and_then(|c| serde_json::from_str(c).ok()).ok_or(CheckpointError::Metadata("config"))?;
    Ok((config, meta))
}

/// A model file read once: the model, and the SHA-256 of the bytes it was parsed from (the
/// identity a checkpoint records).
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub model: Jghm,
    pub sha256: String,
}

impl ModelFile {
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let bytes = std::fs::read(path).map_err(|source| FileError::ReadModel { path: path.to_path_buf(), source })?;
        let text = String::from_utf8(bytes).map_err(|e| FileError::ReadModel {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        })?;
        let model =
            Jghm::from_json(&text).map_err(|source| FileError::InvalidModel { path: path.to_path_buf(), source })?;
        Ok(ModelFile { sha256: sha256_hex(text.as_bytes()), model })
    }
}

/// Why a checkpoint (with its model) cannot be loaded; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Model(#[from] FileError),
    #[error("cannot read checkpoint '{}'", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("checkpoint '{}'", path.display())]
    Invalid { path: PathBuf, source: CheckpointError },
}

/// A checkpoint read once and checked against its model before anything is built: header,
/// format version, model hash, configuration (ranges, and the memory of evaluating it:
/// [`TrainConfig::check_for_evaluation`]) and
/// every tensor's name, dtype and shape. Its tensors are decoded in the class's float type by
/// [`CheckpointFile::checkpoint`], inside [`with_encoders`].
pub struct CheckpointFile {
    pub config: CheckedConfig,
    bytes: Vec<u8>,
}

impl CheckpointFile {
    /// Reads the model file and the checkpoint file (each once) and checks them together.
    pub fn load(
        model_path: &Path,
        checkpoint_path: &Path,
        max_bytes: Option<u64>,
    ) -> Result<(ModelFile, CheckpointFile), LoadError> {
        let model = ModelFile::read(model_path)?;
        let file = CheckpointFile::open(&model, checkpoint_path, max_bytes)?;
        Ok((model, file))
    }

    /// Reads `path` and checks it against `model` (already read).
    pub fn open(model: &ModelFile, path: &Path, max_bytes: Option<u64>) -> Result<CheckpointFile, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.to_path_buf(), source })?;
        CheckpointFile::from_bytes(model, bytes, max_bytes)
            .map_err(|source| LoadError::Invalid { path: path.to_path_buf(), source })
    }

    /// Checks `bytes` against `model`, in this order: header and format version, model hash,
    /// configuration, tensors.
    pub fn from_bytes(model: &ModelFile, bytes: Vec<u8>, max_bytes: Option<u64>) -> Result<Self, CheckpointError> {
        let (config, meta) = read_header(&bytes)?;
        let recorded = meta.get("model_sha256").ok_or(CheckpointError::Metadata("model_sha256"))?;
        if *recorded != model.sha256 {
            return Err(CheckpointError::ModelMismatch { expected: recorded.clone(), found: model.sha256.clone() });
        }
        let config = config.check_for_evaluation(&model.model, max_bytes)?;
        check_tensors(&bytes, &config, &model.model)?;
        Ok(CheckpointFile { config, bytes })
    }

    /// The checkpoint's contents in float type `R` (the class's: call it inside
    /// [`with_encoders`]); the tensors were checked by [`CheckpointFile::open`].
    pub fn checkpoint<R: Real>(&self) -> Result<Checkpoint<R>, CheckpointError> {
        Checkpoint::from_bytes(&self.bytes)
    }
}

/// Refuses a checkpoint unless its tensors are exactly the ones `config`'s class writes on
/// `model`: the nine names `{param, adam_m, adam_v}.{image, text, head}`, the class's dtype,
/// and one dimension of the block's parameter count. Read from the header only, so a
/// checkpoint whose shapes disagree with its configuration is refused before anything of its
/// size is allocated.
pub fn check_tensors(bytes: &[u8], config: &CheckedConfig, model: &Jghm) -> Result<(), CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Format(e.to_string()))?;
    let lens = with_encoders(config, model, BlockLens { config, model });
    let dtype = config.class.float().dtype();
    let mut expected = HashMap::new();
    for prefix in ["param", "adam_m", "adam_v"] {
        for (name, len) in BLOCKS.iter().zip(lens) {
            expected.insert(format!("{prefix}.{name}"), len);
        }
    }
    for name in st.names() {
        if !expected.contains_key(name.as_str()) {
            return Err(CheckpointError::Unexpected(name.clone()));
        }
    }
    let mut names: Vec<_> = expected.into_iter().collect();
    names.sort();
    for (name, len) in names {
        let t = st.tensor(&name).map_err(|_| CheckpointError::Tensor(name.clone(), dtype))?;
        let found_dtype = format!("{:?}", t.dtype());
        if found_dtype != dtype || t.shape() != [len] {
            return Err(CheckpointError::Shape {
                found: format!("{found_dtype} {:?}", t.shape()),
                expected: format!("{dtype} [{len}]"),
                name,
            });
        }
    }
    Ok(())
}

/// The parameter counts of the image tower, the text tower and the head.
struct BlockLens<'a> {
    config: &'a CheckedConfig,
    model: &'a Jghm,
}

impl WithEncoders for BlockLens<'_> {
    type Output = [usize; 3];
    fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> [usize; 3] {
        [make(Part::Image).num_params(), make(Part::Text).num_params(), self.config.head(self.model).num_params()]
    }
}
