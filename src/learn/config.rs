//! A training run's configuration (JSON): the model class, its sizes, the batch scheme, the
//! optimiser and the data regime. Validated once, on the way in.

use serde::{Deserialize, Serialize};

use super::adamw::Schedule;
use super::clip_loss::Scheme;
use super::head::Head;
use super::mlp::MlpShape;
use super::transformer::TransformerShape;
use crate::model::{Jghm, Part};

/// The encoder class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Pre-LayerNorm transformer (the paper's class), trained in f32.
    Transformer,
    /// Exact BP with learned transitions and prior (well-specified), trained in f64.
    Bp,
    /// Two-layer perceptron on the bag of (position, token) pairs, trained in f32.
    Mlp,
}

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
    /// [`super::BpEncoder::with_state_factor`]). Default 2 for the BP class (1 in checkpoints
    /// written before the field existed, which is what they were trained with).
    pub bp_states_factor: usize,
    /// Transformer only: how the learned positional embedding starts ([`PositionInit`]).
    pub position_init: PositionInit,
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
    /// The default configuration of a class.
    pub fn for_class(class: Class) -> Self {
        let (lr, lr_min, warmup, steps) = match class {
            Class::Transformer => (2e-3, 1e-5, 100, 8000),
            Class::Mlp => (1e-3, 1e-5, 50, 2000),
            Class::Bp => (0.05, 1e-3, 20, 2000),
        };
        let transformer = class == Class::Transformer;
        // The transformer's default is tuned for zero-shot accuracy after 4 minutes on 2 cores
        // (issue 4; README "Learned encoders"): at a fixed budget, many cheap steps (one block of
        // width 32, batch 64: 8,000 steps in 210 s quiet) beat fewer steps of a larger encoder,
        // and L2-normalised embeddings help. `bench train` pins the larger standard configuration.
        TrainConfig {
            class,
            width: match class {
                Class::Mlp => 256,
                Class::Transformer => 32,
                Class::Bp => 64,
            },
            layers: if transformer { 1 } else { 2 },
            heads: 4,
            out: 32,
            normalise: transformer,
            batch: if transformer { 64 } else { 256 },
            scheme: Scheme::InBatch,
            schedule: Schedule { lr, lr_min, warmup, steps, weight_decay: 1e-3, clip: 1.0 },
            n: None,
            holdout: 0.1,
            checkpoint_every: 200,
            bp_states_factor: if class == Class::Bp { 2 } else { 1 },
            position_init: PositionInit::Normal,
        }
    }

    /// Checks the sizes; the error names the bad field.
    pub fn validate(&self, model: &Jghm) -> Result<(), String> {
        let positive = [
            ("width", self.width),
            ("layers", self.layers),
            ("heads", self.heads),
            ("out", self.out),
            ("batch", self.batch),
            ("checkpoint_every", self.checkpoint_every),
            ("bp_states_factor", self.bp_states_factor),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("config: {name} must be at least 1"));
        }
        // Each factor multiplies every transition matrix's size by up to factor²: beyond a few
        // copies per state the class only costs memory (it contains the truth from factor 1).
        if self.bp_states_factor > MAX_BP_STATES_FACTOR {
            return Err(format!(
                "config: bp_states_factor {} is above the supported {MAX_BP_STATES_FACTOR}",
                self.bp_states_factor
            ));
        }
        if self.class == Class::Transformer && !self.width.is_multiple_of(self.heads) {
            return Err(format!("config: width {} is not a multiple of heads {}", self.width, self.heads));
        }
        if let Scheme::KWay { k } = self.scheme {
            if k < 2 {
                return Err("config: scheme k-way needs k ≥ 2".into());
            }
        }
        if self.scheme == Scheme::InBatch && self.batch < 2 {
            return Err("config: in-batch negatives need batch ≥ 2".into());
        }
        let s = &self.schedule;
        if !(s.lr > 0.0 && s.lr.is_finite() && s.lr_min >= 0.0 && s.lr_min <= s.lr) {
            return Err("config: need 0 ≤ lr_min ≤ lr, lr > 0".into());
        }
        if !(s.weight_decay >= 0.0 && s.clip >= 0.0 && s.steps > 0) {
            return Err("config: weight_decay and clip must be ≥ 0 and steps ≥ 1".into());
        }
        if !(0.0..1.0).contains(&self.holdout) {
            return Err("config: holdout must lie in [0, 1)".into());
        }
        if let Some(n) = self.n {
            let train = n - (n as f64 * self.holdout).round() as usize;
            if train < self.batch {
                return Err(format!(
                    "config: n = {n} leaves {train} training pairs, fewer than one batch of {}",
                    self.batch
                ));
            }
        }
        if self.class == Class::Bp && model.has_trunk() {
            return Err("the BP class is defined for two-tower models (this model has a shared trunk)".into());
        }
        Ok(())
    }

    /// The head of this class.
    pub fn head(&self, model: &Jghm) -> Head {
        match self.class {
            Class::Bp => Head::T7 { states: self.bp_states_factor * model.root_states() },
            _ => Head::Bilinear { normalise: self.normalise },
        }
    }

    /// The BP class's encoder of one tower (`bp_states_factor` times the hidden states).
    pub fn bp_encoder(&self, model: &Jghm, part: Part) -> Option<super::BpEncoder> {
        super::BpEncoder::with_state_factor(model, part, self.bp_states_factor)
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

    /// The transformer encoder of one tower, with its positional start.
    pub fn transformer(&self, model: &Jghm, part: Part) -> super::Transformer {
        let net = super::Transformer::new(self.transformer_shape(model, part));
        match self.position_init {
            PositionInit::Normal => net,
            PositionInit::Tree => net.with_tree_positions(super::transformer::tree_position_groups(model, part)),
        }
    }

    pub fn mlp_shape(&self, model: &Jghm, part: Part) -> MlpShape {
        MlpShape { vocab: model.vocab_of(part), len: model.len_of(part), hidden: self.width, out: self.out }
    }
}
