//! A training run's configuration (JSON): the model class, its sizes, the batch scheme, the
//! optimiser and the data regime.
//!
//! Validated once, on the way in (linfa's parameters → valid parameters): a [`TrainConfig`] is
//! what a file or a caller says; [`TrainConfig::check`] turns it into a [`CheckedConfig`], or a
//! [`ConfigError`] naming the field and its limit. Everything that builds encoders or allocates
//! for a run takes the checked type, so no caller can skip the check.

use serde::{Deserialize, Serialize};

use super::adamw::Schedule;
use super::clip_loss::Scheme;
use super::mlp::MlpShape;
use super::registry::{Class, HeadKind};
use super::score_head::Head;
use super::transformer::TransformerShape;
use crate::model::{Jghm, Part};
use crate::runs::{overlay_json, NewFields};

/// Why a configuration file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config '{}'", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("config '{}' is not valid JSON", path.display())]
    Json { path: std::path::PathBuf, source: serde_json::Error },
    #[error("invalid config '{}'", path.display())]
    Invalid { path: std::path::PathBuf, source: serde_json::Error },
}

/// The largest `embedding_std` a configuration may ask for.
pub const MAX_EMBEDDING_STD: f64 = 10.0;

/// The largest `bp_states_factor` a configuration may ask for.
pub const MAX_BP_STATES_FACTOR: usize = 16;

/// Everything that fixes a run besides the model file and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub class: Class,
    /// Transformer width `C` (or the MLP's hidden width).
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    /// Embedding dimension `P` (transformer, MLP; the BP class embeds into `R^{S₀}`).
    pub out: usize,
    /// L2-normalise the embeddings (bilinear head).
    pub normalise: bool,
    /// Positive pairs per step `B`.
    pub batch: usize,
    pub scheme: Scheme,
    pub schedule: Schedule,
    /// `Some(n)`: a fixed data set of `n` sampled pairs (epochs over it, `holdout` of it held
    /// out); `None`: fresh pairs every step.
    pub n: Option<usize>,
    pub holdout: f64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// BP class only: learned hidden states per true hidden state (root and internal levels;
    /// [`super::BpEncoder::with_state_factor`]). Default 3 for the BP class (1 in checkpoints
    /// written before the field existed, which is what they were trained with).
    pub bp_states_factor: usize,
    /// Transformer only: how the learned positional embedding starts ([`PositionInit`]).
    pub position_init: PositionInit,
    /// Candidate initialisations of a fresh run; above 1, each trains `restart_steps` steps
    /// and the one with the lowest selection loss is continued ([`super::train::select_start`]).
    /// Default 4 for the BP class (1 in checkpoints written before the field existed).
    pub restarts: usize,
    /// Steps each restart candidate trains before the choice.
    pub restart_steps: usize,
    /// Transformer only: how the blocks' matrix products multiply (`exact` in f32, or `bf16` inputs with
    /// f32 accumulation on a CPU with AVX512_BF16; [`super::bf16`]).
    pub products: super::Products,
    /// Transformer only: how the last layer's positions are pooled (`mean`, or `learned`
    /// weights per position as in the paper's read-out; [`super::transformer::Pooling`]).
    pub pooling: super::transformer::Pooling,
    /// Transformer only: the standard deviation `s` of the embeddings' start `N(0, s²)`
    /// (0.02, GPT-2's; the paper's PyTorch embeddings start from 1).
    pub embedding_std: f64,
    /// Transformer only: the residual block's form (`gpt2`, or `paper`: no `qkv` biases, no
    /// attention output projection, no final LayerNorm; [`super::transformer::BlockForm`]).
    pub block: super::transformer::BlockForm,
}

/// The start of a transformer's learned positional embedding `wpe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionInit {
    /// `wpe[t] ~ N(0, 0.02²)` i.i.d. (GPT-2's).
    #[default]
    Normal,
    /// Correlated along the tree: a sum of one `N(0, 0.02²/D)` vector per ancestor
    /// ([`super::Transformer::with_tree_positions`]).
    Tree,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig::for_class(Class::Transformer)
    }
}

impl TrainConfig {
    /// The default configuration of a class: its row of defaults in the registry
    /// ([`super::registry::ClassDefaults`]), the rest shared.
    pub fn for_class(class: Class) -> Self {
        let d = class.meta().defaults;
        TrainConfig {
            class,
            width: d.width,
            layers: d.layers,
            heads: 4,
            out: 32,
            normalise: d.normalise,
            batch: d.batch,
            scheme: Scheme::InBatch,
            schedule: Schedule {
                lr: d.lr,
                lr_min: d.lr_min,
                warmup: d.warmup,
                steps: d.steps,
                weight_decay: 1e-3,
                clip: 1.0,
            },
            n: None,
            holdout: 0.1,
            checkpoint_every: 200,
            bp_states_factor: d.bp_states_factor,
            position_init: PositionInit::Normal,
            restarts: d.restarts,
            restart_steps: d.restart_steps,
            products: super::Products::Exact,
            pooling: super::transformer::Pooling::Mean,
            embedding_std: super::transformer::EMBEDDING_STD,
            block: super::transformer::BlockForm::Gpt2,
        }
    }

    /// The configuration file at `path` (JSON, fields of [`TrainConfig`]) over the defaults of
    /// its class: `class` if given, else the file's `class` field, else the transformer. Not yet
    /// checked; an unknown field is refused by name.
    pub fn from_file(path: &std::path::Path, class: Option<Class>) -> Result<TrainConfig, ConfigFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigFileError::Read { path: path.to_path_buf(), source })?;
        let mut value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ConfigFileError::Json { path: path.to_path_buf(), source })?;
        let class = class
            .or_else(|| value.get("class").and_then(|c| serde_json::from_value(c.clone()).ok()))
            .unwrap_or(Class::Transformer);
        let mut base = serde_json::to_value(TrainConfig::for_class(class)).expect("config serialises");
        // Unknown fields are left to the configuration's own deserialiser, which names them.
        overlay_json(&mut base, value.take(), NewFields::Insert).expect("Insert refuses no field");
        serde_json::from_value(base).map_err(|source| ConfigFileError::Invalid { path: path.to_path_buf(), source })
    }

    /// Checks every field against its range and `model` (see [`Limit`] for the ranges), then
    /// the memory the run would take against the machine's ([`super::memory`]); the error names
    /// the field and its limit.
    pub fn check(&self, model: &Jghm) -> Result<CheckedConfig, ConfigError> {
        self.check_within(model, super::memory::machine_bytes())
    }

    /// [`TrainConfig::check`] with an explicit memory budget in bytes (`None`: no budget).
    pub fn check_within(&self, model: &Jghm, max_bytes: Option<u64>) -> Result<CheckedConfig, ConfigError> {
        self.check_ranges(model)?;
        let checked = CheckedConfig { config: self.clone() };
        if let Some(limit) = max_bytes {
            let estimate = super::memory::estimate(&checked, model);
            if estimate.total() > limit as f64 {
                return Err(ConfigError::Memory {
                    estimate: estimate.total(),
                    limit,
                    largest: estimate.largest_field(&checked),
                });
            }
        }
        Ok(checked)
    }

    /// The checks of [`TrainConfig::check_within`] for a pair that is only *evaluated* (a
    /// checkpoint read by `jghm eval` or a `ckpt:PATH` score): the ranges, then the memory of
    /// evaluating it ([`super::memory::evaluation_estimate`], with this process's worker
    /// threads) against `max_bytes`, not that of training it.
    pub fn check_for_evaluation(&self, model: &Jghm, max_bytes: Option<u64>) -> Result<CheckedConfig, ConfigError> {
        self.check_ranges(model)?;
        let checked = CheckedConfig { config: self.clone() };
        if let Some(limit) = max_bytes {
            let estimate = super::memory::evaluation_estimate(&checked, model, rayon::current_num_threads()).total();
            if estimate > limit as f64 {
                return Err(ConfigError::EvaluationMemory { estimate, limit });
            }
        }
        Ok(checked)
    }

    fn check_ranges(&self, model: &Jghm) -> Result<(), ConfigError> {
        for limit in LIMITS {
            let value = (limit.get)(self);
            if value < limit.min {
                return Err(ConfigError::TooSmall { field: limit.field, min: limit.min });
            }
            if value > limit.max {
                return Err(ConfigError::TooLarge { field: limit.field, value, max: limit.max });
            }
        }
        if self.heads > self.width {
            return Err(ConfigError::TooLarge { field: "heads", value: self.heads, max: self.width });
        }
        if self.class.meta().attention && !self.width.is_multiple_of(self.heads) {
            return Err(ConfigError::HeadsDivideWidth { width: self.width, heads: self.heads });
        }
        if let Scheme::KWay { k, .. } = self.scheme {
            if k < 2 {
                return Err(ConfigError::KWay);
            }
            if k > MAX_K {
                return Err(ConfigError::TooLarge { field: "scheme k", value: k, max: MAX_K });
            }
        }
        if self.scheme == Scheme::InBatch && self.batch < 2 {
            return Err(ConfigError::InBatch);
        }
        let s = &self.schedule;
        if !(s.lr > 0.0 && s.lr.is_finite() && s.lr_min >= 0.0 && s.lr_min <= s.lr) {
            return Err(ConfigError::LearningRate);
        }
        if !(s.weight_decay >= 0.0 && s.clip >= 0.0 && s.steps > 0) {
            return Err(ConfigError::Schedule);
        }
        if !(0.0..1.0).contains(&self.holdout) {
            return Err(ConfigError::Holdout);
        }
        if !(self.embedding_std > 0.0 && self.embedding_std <= MAX_EMBEDDING_STD) {
            return Err(ConfigError::EmbeddingStd);
        }
        if let Some(n) = self.n {
            if n > MAX_N {
                return Err(ConfigError::TooLarge { field: "n", value: n, max: MAX_N });
            }
            let train = n - (n as f64 * self.holdout).round() as usize;
            let batch = self.scheme.positives(self.batch);
            if train < batch {
                return Err(ConfigError::FewPairs { n, train, batch });
            }
        }
        if self.products == super::Products::Bf16 {
            if self.class != Class::Transformer {
                return Err(ConfigError::Bf16Class { class: self.class.label() });
            }
            if !super::bf16::bf16_available() {
                return Err(ConfigError::Bf16Cpu);
            }
        }
        if self.class.meta().two_towers && model.has_trunk() {
            return Err(ConfigError::Trunk { class: self.class.label() });
        }
        Ok(())
    }

    /// The head of this class ([`super::registry::ClassMeta::head`]).
    pub fn head(&self, model: &Jghm) -> Head {
        match self.class.meta().head {
            HeadKind::T7 => Head::T7 { states: self.bp_states_factor * model.root_states() },
            HeadKind::Bilinear => Head::Bilinear { normalise: self.normalise },
        }
    }

    pub fn transformer_shape(&self, model: &Jghm, part: Part) -> TransformerShape {
        TransformerShape {
            vocab: model.vocab_of(part),
            len: model.len_of(part),
            width: self.width,
            layers: self.layers,
            heads: self.heads,
            out: self.out,
        }
    }

    pub fn mlp_shape(&self, model: &Jghm, part: Part) -> MlpShape {
        MlpShape { vocab: model.vocab_of(part), len: model.len_of(part), hidden: self.width, out: self.out }
    }
}

/// The range of one size field: `min ≤ value ≤ max`.
pub struct Limit {
    pub field: &'static str,
    pub min: usize,
    pub max: usize,
    get: fn(&TrainConfig) -> usize,
}

/// The largest `width` (transformer `C`, MLP hidden width): a block has `12 C²` parameters.
pub const MAX_WIDTH: usize = 8192;
/// The largest number of transformer blocks.
pub const MAX_LAYERS: usize = 256;
/// The largest embedding dimension `P`.
pub const MAX_OUT: usize = 8192;
/// The largest batch `B`: the in-batch loss holds `B × B` logits per direction.
pub const MAX_BATCH: usize = 1 << 20;
/// The largest `K` of the K-way scheme (a step encodes `B·K` samples per side).
pub const MAX_K: usize = 1 << 16;
/// The largest fixed data set (sampled and held in memory before the first step).
pub const MAX_N: usize = 1 << 30;
/// The largest number of restart candidates ([`TrainConfig::restarts`]).
pub const MAX_RESTARTS: usize = 64;
/// The largest step budget.
pub const MAX_STEPS: usize = 1 << 40;

/// The ranges of the size fields. Each bounds what one field can make the run allocate; their
/// product is bounded by the memory estimate of [`TrainConfig::check`], not here.
pub const LIMITS: [Limit; 10] = [
    Limit { field: "width", min: 1, max: MAX_WIDTH, get: |c| c.width },
    Limit { field: "layers", min: 1, max: MAX_LAYERS, get: |c| c.layers },
    Limit { field: "heads", min: 1, max: MAX_WIDTH, get: |c| c.heads },
    Limit { field: "out", min: 1, max: MAX_OUT, get: |c| c.out },
    Limit { field: "batch", min: 1, max: MAX_BATCH, get: |c| c.batch },
    Limit { field: "checkpoint_every", min: 1, max: usize::MAX, get: |c| c.checkpoint_every },
    // Each factor multiplies every transition matrix's size by up to factor²: beyond a few
    // copies per state the class only costs memory (it contains the truth from factor 1).
    Limit { field: "bp_states_factor", min: 1, max: MAX_BP_STATES_FACTOR, get: |c| c.bp_states_factor },
    Limit { field: "steps", min: 1, max: MAX_STEPS, get: |c| c.schedule.steps },
    Limit { field: "restarts", min: 1, max: MAX_RESTARTS, get: |c| c.restarts },
    Limit { field: "restart_steps", min: 1, max: MAX_STEPS, get: |c| c.restart_steps },
];

/// Why a configuration is refused; each names the field and its limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {field} must be at least {min}")]
    TooSmall { field: &'static str, min: usize },
    #[error("config: {field} {value} is above the supported {max}")]
    TooLarge { field: &'static str, value: usize, max: usize },
    #[error("config: width {width} is not a multiple of heads {heads}")]
    HeadsDivideWidth { width: usize, heads: usize },
    #[error("config: scheme k-way needs k ≥ 2")]
    KWay,
    #[error("config: in-batch negatives need batch ≥ 2")]
    InBatch,
    #[error("config: need 0 ≤ lr_min ≤ lr, lr > 0")]
    LearningRate,
    #[error("config: weight_decay and clip must be ≥ 0 and steps ≥ 1")]
    Schedule,
    #[error("config: holdout must lie in [0, 1)")]
    Holdout,
    #[error("config: embedding_std must lie in (0, {MAX_EMBEDDING_STD}]")]
    EmbeddingStd,
    #[error("config: n = {n} leaves {train} training pairs, fewer than one batch of {batch} positives")]
    FewPairs { n: usize, train: usize, batch: usize },
    #[error("the {class} is defined for two-tower models (this model has a shared trunk)")]
    Trunk { class: &'static str },
    #[error("products 'bf16' are for the transformer class, not the {class}")]
    Bf16Class { class: &'static str },
    #[error("products 'bf16' need a CPU with AVX512_BF16, which this one lacks")]
    Bf16Cpu,
    #[error(
        "config: the run needs about {} of memory, more than the {} available (lower {largest})",
        super::memory::human(*estimate),
        super::memory::human(*limit as f64)
    )]
    Memory { estimate: f64, limit: u64, largest: &'static str },
    #[error(
        "config: evaluating the pair needs about {} of memory, more than the {} available",
        super::memory::human(*estimate),
        super::memory::human(*limit as f64)
    )]
    EvaluationMemory { estimate: f64, limit: u64 },
}

/// A configuration that passed [`TrainConfig::check`] on a model: every size within its range,
/// the run within the memory budget. It reads as the [`TrainConfig`] it wraps.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedConfig {
    config: TrainConfig,
}

impl std::ops::Deref for CheckedConfig {
    type Target = TrainConfig;
    fn deref(&self) -> &TrainConfig {
        &self.config
    }
}

impl CheckedConfig {
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The transformer encoder of one tower, with its positional start.
    pub fn transformer(&self, model: &Jghm, part: Part) -> super::Transformer {
        let net = super::Transformer::new(self.transformer_shape(model, part))
            .with_products(self.products)
            .with_block(self.block)
            .with_pooling(self.pooling)
            .with_embedding_std(self.embedding_std);
        match self.position_init {
            PositionInit::Normal => net,
            PositionInit::Tree => net.with_tree_positions(super::transformer::tree_position_groups(model, part)),
        }
    }

    /// The BP class's encoder of one tower (`bp_states_factor` times the hidden states), on
    /// the model the configuration was checked against (which has no trunk for this class).
    pub fn bp_encoder(&self, model: &Jghm, part: Part) -> super::BpEncoder {
        super::BpEncoder::with_state_factor(model, part, self.bp_states_factor)
            .expect("checked: the BP class's model has two towers")
    }
}
