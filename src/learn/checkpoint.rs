//! Checkpoints in the safetensors format: the parameters and the optimiser's moments as
//! tensors; the configuration, the seed, the step and the SHA-256 of the model file as
//! metadata, so that evaluation (and `--resume`) refuses a checkpoint of another model.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

use super::adamw::AdamW;
use super::clip::Params;
use super::config::TrainConfig;
use super::real::Real;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// The format tag written into every checkpoint.
pub const FORMAT: &str = "jghm-clip-checkpoint-v1";

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
        canonical_header(bytes)
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
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(CheckpointError::Metadata("format"));
    }
    let config =
        meta.get("config").and_then(|c| serde_json::from_str(c).ok()).ok_or(CheckpointError::Metadata("config"))?;
    Ok((config, meta))
}

/// Rewrites a safetensors header with its JSON keys sorted (same length, same padding), so that
/// the same checkpoint is the same bytes on every run: `safetensors::serialize` takes the metadata
/// as a `HashMap`, whose iteration order changes from process to process. Offsets are explicit in
/// the header, so the order of its keys carries no meaning.
fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
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
