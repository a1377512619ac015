//! The encoder classes, in one place: each class's metadata (the name on the command line and
//! in result files, the label a reader sees, its palette colour, its float type) and the one
//! `match` that maps a class to its float type and its encoder's constructor.
//!
//! Every caller that needs a class's encoders (training, evaluation, the downstream scores,
//! the rates sweeps) goes through [`with_encoders`] with a [`WithEncoders`] visitor, whose
//! generic [`WithEncoders::run`] is instantiated once per float type and encoder. Adding a
//! class is one file (its [`Encoder`] implementation, with the configuration's shape of it),
//! one variant with its row in [`Class::meta`] (names, colour, float type, head, defaults), one
//! arm in [`with_encoders`], and its tests.

use serde::{Deserialize, Serialize};

use super::config::CheckedConfig;
use super::encoder::Encoder;
use super::mlp::Mlp;
use super::real::Real;
use crate::model::{Jghm, Part};

/// The encoder class.
///
/// The variants' order is part of the results: a rates run's seed mixes in `class as u64`
/// ([`crate::rates::sweep::run_seed`]), so a new class goes at the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Pre-LayerNorm transformer (the paper's class), trained in f32.
    Transformer,
    /// Exact BP with learned transitions and prior (well-specified), trained in f64.
    Bp,
    /// Two-layer perceptron on the bag of (position, token) pairs, trained in f32.
    Mlp,
}

/// The float type a class trains and evaluates in (the dtype of its checkpoint's tensors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Float {
    F32,
    F64,
}

impl Float {
    /// The safetensors dtype name ([`Real::DTYPE`]).
    pub fn dtype(self) -> &'static str {
        match self {
            Float::F32 => "F32",
            Float::F64 => "F64",
        }
    }

    /// Bytes per number.
    pub fn bytes(self) -> usize {
        match self {
            Float::F32 => 4,
            Float::F64 => 8,
        }
    }
}

/// The score a class's embeddings are compared by ([`super::Head`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// `⟨f, g⟩/τ` (L2-normalised when the configuration says so).
    Bilinear,
    /// T7's `log Σ_z f_z g_z / π_z` over the class's root states.
    T7,
}

/// A class's defaults in [`super::TrainConfig::for_class`] (heads 4, out 32, in-batch
/// negatives, weight decay 1e-3, clipping 1.0 for every class).
#[derive(Clone, Copy, Debug)]
pub struct ClassDefaults {
    pub width: usize,
    pub layers: usize,
    pub normalise: bool,
    pub batch: usize,
    pub lr: f64,
    pub lr_min: f64,
    pub warmup: usize,
    pub steps: usize,
    pub bp_states_factor: usize,
    /// Restart candidates and their steps ([`super::TrainConfig::restarts`]).
    pub restarts: usize,
    pub restart_steps: usize,
}

/// A class's metadata.
#[derive(Clone, Copy, Debug)]
pub struct ClassMeta {
    /// The name on the command line, in configurations and in result files.
    pub name: &'static str,
    /// The name a reader sees in figures and reports.
    pub label: &'static str,
    /// Palette index in figures (references are black, index 6).
    pub color: usize,
    pub float: Float,
    pub head: HeadKind,
    /// Its encoder splits `width` over attention heads (`width` must be a multiple of `heads`).
    pub attention: bool,
    /// It is defined for two-tower models only (no shared trunk).
    pub two_towers: bool,
    /// The configuration field its parameter count grows with (named when a run is too large).
    pub size_field: &'static str,
    pub defaults: ClassDefaults,
}

impl Class {
    /// Every class, in the order figures and default sweeps list them.
    pub const ALL: [Class; 3] = [Class::Bp, Class::Transformer, Class::Mlp];

    /// The table of metadata: one row per class.
    ///
    /// The transformer's defaults are tuned for zero-shot accuracy after 4 minutes on 2 cores
    /// (README "Learned encoders"): at a fixed budget, many cheap steps (one block of width 32,
    /// batch 64: 8,000 steps in 210 s quiet) beat fewer steps of a larger encoder, and
    /// L2-normalised embeddings help. `bench train` pins the larger standard configuration.
    pub const fn meta(self) -> ClassMeta {
        match self {
            Class::Bp => ClassMeta {
                name: "bp",
                label: "BP class (well-specified)",
                color: 0,
                float: Float::F64,
                head: HeadKind::T7,
                attention: false,
                two_towers: true,
                size_field: "bp_states_factor",
                defaults: ClassDefaults {
                    width: 64,
                    layers: 2,
                    normalise: false,
                    batch: 256,
                    lr: 0.05,
                    lr_min: 1e-3,
                    warmup: 20,
                    steps: 2000,
                    bp_states_factor: 3,
                    restarts: 4,
                    restart_steps: 200,
                },
            },
            Class::Transformer => ClassMeta {
                name: "transformer",
                label: "transformer",
                color: 1,
                float: Float::F32,
                head: HeadKind::Bilinear,
                attention: true,
                two_towers: false,
                size_field: "width or layers",
                defaults: ClassDefaults {
                    width: 32,
                    layers: 1,
                    normalise: true,
                    batch: 64,
                    lr: 2e-3,
                    lr_min: 1e-5,
                    warmup: 100,
                    steps: 8000,
                    bp_states_factor: 1,
                    restarts: 1,
                    restart_steps: 200,
                },
            },
            Class::Mlp => ClassMeta {
                name: "mlp",
                label: "MLP",
                color: 2,
                float: Float::F32,
                head: HeadKind::Bilinear,
                attention: false,
                two_towers: false,
                size_field: "width",
                defaults: ClassDefaults {
                    width: 256,
                    layers: 2,
                    normalise: false,
                    batch: 256,
                    lr: 1e-3,
                    lr_min: 1e-5,
                    warmup: 50,
                    steps: 2000,
                    bp_states_factor: 1,
                    restarts: 1,
                    restart_steps: 200,
                },
            },
        }
    }

    pub fn name(self) -> &'static str {
        self.meta().name
    }
    pub fn label(self) -> &'static str {
        self.meta().label
    }
    pub fn color(self) -> usize {
        self.meta().color
    }
    pub fn float(self) -> Float {
        self.meta().float
    }

    /// The class named `name` ([`Class::name`]).
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Work that needs a class's encoders with their float type: `run` is called with the float
/// type `R` of the class and a constructor of its encoder for either tower.
pub trait WithEncoders {
    type Output;
    fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> Self::Output;
}

/// Runs `work` with the encoders of `cfg`'s class on `model`: the one place a class is mapped
/// to its float type and its constructor.
pub fn with_encoders<W: WithEncoders>(cfg: &CheckedConfig, model: &Jghm, work: W) -> W::Output {
    match cfg.class {
        Class::Transformer => work.run::<f32, _>(&|p| cfg.transformer(model, p)),
        Class::Bp => work.run::<f64, _>(&|p| cfg.bp_encoder(model, p)),
        Class::Mlp => work.run::<f32, _>(&|p| Mlp::new(cfg.mlp_shape(model, p))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::TrainConfig;
    use crate::random_family::RandomSpec;

    /// The dispatch's float type is the one the metadata states (the dtype checkpoints are
    /// checked against before they are read).
    #[test]
    fn dispatch_float_matches_metadata() {
        struct Dtype;
        impl WithEncoders for Dtype {
            type Output = &'static str;
            fn run<R: Real, E: Encoder<R> + 'static>(self, _: &dyn Fn(Part) -> E) -> &'static str {
                R::DTYPE
            }
        }
        let model = RandomSpec::symmetric(3, 2, 2, 1).build().unwrap();
        for class in Class::ALL {
            let cfg = TrainConfig::for_class(class).check(&model).unwrap();
            assert_eq!(with_encoders(&cfg, &model, Dtype), class.float().dtype(), "{class:?}");
        }
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        for class in Class::ALL {
            assert_eq!(Class::from_name(class.name()), Some(class));
            assert_eq!(serde_json::to_value(class).unwrap(), serde_json::json!(class.name()));
        }
        assert_eq!(Class::from_name("gpt"), None);
    }
}
