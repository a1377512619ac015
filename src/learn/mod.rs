//! Learned representations: encoders trained by the CLIP loss, with explicit forward and
//! backward passes (llm.c style), measured against the exact quantities in [`crate::eval`].
//!
//! Dimension letters used throughout: `B` samples in a batch (or chunk), `T` positions (tokens
//! per sample), `C` width, `NH` attention heads (`hs = C/NH` per head), `V` vocabulary, `P`
//! embedding dimension, `N = B·T` rows, `S₀` root states, `K` candidates per CLIP group.
//! Gradients are prefixed `d`; every backward *accumulates* into parameter gradients.
//!
//! | file | holds |
//! |---|---|
//! | [`real`] | `f32`/`f64` generic kernels, the checked gemm |
//! | [`bf16`] | BF16 products with f32 accumulation (AVX512_BF16), optional for the affine maps |
//! | [`layernorm`], [`linear`], [`attention`], [`gelu`] | the transformer's kernels, forward + backward |
//! | [`encoder`] | the `Encoder` interface, the batched deterministic runner |
//! | [`transformer`] | the paper's class: pre-LN transformer, pool (mean or learned), projection |
//! | [`bp_class`] | the well-specified class: exact BP with learned transitions |
//! | [`mlp`] | the baseline: two layers on the bag of (position, token) pairs |
//! | [`guided`] | the paper's guided class: the transformer plus a BP-message penalty on its hidden states |
//! | [`frozen_heads`] | downstream heads on frozen features: conditional denoiser, next-token model |
//! | [`joint_heads`] | the same tasks trained end to end on both modalities' tokens (the paper's Joint Training) |
//! | [`score_head`] | the score `S(x, y)`: bilinear `⟨f, g⟩/τ` or T7's `log Σ f g / π` |
//! | [`clip_loss`](mod@clip_loss) | the CLIP loss, in-batch and K-way schemes |
//! | [`clip`] | a learned pair and one training step end to end |
//! | [`adamw`] | AdamW, warm-up + cosine schedule, gradient clipping |
//! | [`registry`] | the encoder classes: metadata and the one dispatch to float type and constructor |
//! | [`config`], [`memory`] | a run's configuration, checked once (ranges, memory estimate) |
//! | [`data`], [`checkpoint`], [`train`] | a run: batches, safetensors checkpoints, the loop |

pub mod adamw;
pub mod attention;
pub mod bf16;
pub mod bp_class;
pub mod checkpoint;
pub mod clip;
pub mod clip_loss;
pub mod config;
pub mod data;
pub mod encoder;
pub mod frozen_heads;
pub mod gelu;
pub mod guided;
pub mod joint_heads;
pub mod layernorm;
pub mod linear;
pub mod memory;
pub mod mlp;
pub mod real;
pub mod registry;
pub mod score_head;
pub mod train;
pub mod transformer;

pub use adamw::{AdamW, Schedule};
pub use bf16::Products;
pub use bp_class::BpEncoder;
pub use checkpoint::Checkpoint;
pub use clip::{ClipPair, Params};
pub use clip_loss::{clip_loss, Groups, LossParts, Scheme};
pub use config::{CheckedConfig, ConfigError, ConfigFileError, PositionInit, TrainConfig};
pub use encoder::{Encoder, TokenError, Tower, CHUNK};
pub use mlp::{Mlp, MlpShape};
pub use real::Real;
pub use registry::{with_encoders, Class, ClassMeta, HeadKind, WithEncoders};
pub use score_head::Head;
pub use transformer::{tree_position_groups, BlockForm, Pooling, Transformer, TransformerShape, EMBEDDING_STD};
