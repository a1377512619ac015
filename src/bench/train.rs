//! CLIP training throughput (`jghm bench train`), to compare side by side with the PyTorch
//! reference script `clip_train_torch.py` at the same sizes.
//!
//! Two presets ([`TrainPreset`]), each a model and an encoder configuration:
//! * `standard`: the standard random JGHM (10 states, 3 children, image depth 4 = 81 tokens,
//!   text depth 3 = 27 tokens, flip 0.3, seed 1); encoders d = 64, 2 layers, 4 heads, p = 32;
//!   batch 256. The reference's defaults.
//! * `paper`: the paper's simulations — both towers of depth 4 (81 tokens each, the paper's
//!   tree at flip 0.2); encoders d = 128, 5 layers, 4 heads, p = 10; batch 128. Compare with
//!   `clip_train_torch.py --d 128 --layers 5 --text-len 81 --p 10 --batch 128`.
//!
//! A configuration file (`--config`, the JSON of `jghm train --config`) replaces the preset's
//! encoder sizes. Negatives are in-batch in both presets, as in the reference (a configuration
//! file may choose others, and the description says which). One batch is drawn before the
//! clock starts and reused (sampling is not timed), 3 warm-up steps are not timed, and a timed
//! step is forward + backward of both towers, the loss, and the optimiser update.
//!
//! The work of a step is counted from the shapes ([`transformer_flop_per_sample`]), so the
//! throughput is also a rate of arithmetic (GFLOP/s) and a fraction of the machine's f32 FMA
//! peak measured in the same run ([`super::peak`]).

use std::time::Instant;

use serde::Serialize;

use crate::learn::data::Data;
use crate::learn::{
    AdamW, CheckedConfig, Class, ClipPair, ConfigError, PositionInit, TrainConfig, Transformer, TransformerShape,
};
use crate::model::{Jghm, ModelError, Part};
use crate::random_family::paper::PaperSpec;
use crate::random_family::RandomSpec;

/// Untimed steps before the clock starts.
const WARM_UP: usize = 3;

/// What stops the training benchmark.
#[derive(Debug, thiserror::Error)]
pub enum TrainBenchError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("bench train times the transformer class; the configuration names class '{0}'")]
    NotTransformer(String),
}

/// A model and encoder configuration to time (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrainPreset {
    Standard,
    Paper,
}

impl TrainPreset {
    /// The preset's model.
    pub fn model(&self) -> Result<Jghm, ModelError> {
        match self {
            TrainPreset::Standard => {
                let mut spec = RandomSpec::symmetric(10, 3, 4, 1);
                spec.text_depth = 3;
                spec.flip = 0.3;
                spec.build()
            }
            TrainPreset::Paper => PaperSpec::paper(0.2, 0.2).build(),
        }
    }

    /// The preset's encoder configuration, pinned here rather than taken from `train`'s
    /// defaults (which are tuned for accuracy, not for this bench).
    pub fn config(&self) -> TrainConfig {
        let mut cfg = TrainConfig::for_class(Class::Transformer);
        (cfg.width, cfg.layers, cfg.heads, cfg.out, cfg.batch) = match self {
            TrainPreset::Standard => (64, 2, 4, 32, 256),
            TrainPreset::Paper => (128, 5, 4, 10, 128),
        };
        (cfg.normalise, cfg.position_init) = (false, PositionInit::Normal);
        cfg
    }

    /// The arguments of `clip_train_torch.py` for the same sizes.
    pub fn reference_arguments(model: &Jghm, cfg: &TrainConfig) -> String {
        let [image, text, vocab, d, layers, heads, p] = sizes(model, cfg);
        format!(
            "--image-len {image} --text-len {text} --vocab {vocab} --d {d} --layers {layers} --heads {heads} --p {p} --batch {}",
            cfg.batch
        )
    }
}

/// Image and text tokens, vocabulary, width, blocks, heads and output dimension of a run.
fn sizes(model: &Jghm, cfg: &TrainConfig) -> [usize; 7] {
    let part = |p| model.len_of(p);
    [part(Part::Image), part(Part::Text), model.image_vocab(), cfg.width, cfg.layers, cfg.heads, cfg.out]
}

/// The throughput of [`bench_train`], in the keys `jghm bench train --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct TrainThroughput {
    pub pairs_per_second: f64,
    pub ms_per_step: f64,
    pub steps: usize,
    pub batch: usize,
    pub threads: usize,
    pub parameters: usize,
    pub last_loss: f64,
    /// Floating-point operations of one positive pair: forward and backward of both towers, for
    /// the pair and (with K-way negatives) its K − 1 negatives per tower.
    pub flop_per_pair: f64,
    /// `pairs_per_second · flop_per_pair / 1e9`.
    pub gflop_per_second: f64,
    pub configuration: String,
    /// The same sizes for `clip_train_torch.py`.
    pub reference_arguments: String,
}

/// Multiply-add work of one sample through a transformer tower, forward and backward, in FLOP
/// (2 per multiply-add), counting the matrix products only (LayerNorm, GELU, the softmax and
/// the optimiser are a few percent at the paper's sizes):
/// ```text
/// forward per block:  2T(3C² + C² + 4C² + 4C²) + 2·2T²C   (qkv, out, fc, fp; QKᵀ and AV)
/// forward:            L · that + 2CP                        (and the projection)
/// forward + backward: 3 · forward                           (each product has two in backward)
/// ```
pub fn transformer_flop_per_sample(s: &TransformerShape) -> f64 {
    let (t, c, p) = (s.len as f64, s.width as f64, s.out as f64);
    let block = 2.0 * t * 12.0 * c * c + 4.0 * t * t * c;
    3.0 * (s.layers as f64 * block + 2.0 * c * p)
}

/// Times `steps` CLIP steps of `cfg` on `model` (module doc) on the current thread pool.
pub fn bench_train(model: &Jghm, cfg: &TrainConfig, steps: usize) -> Result<TrainThroughput, TrainBenchError> {
    if cfg.class != Class::Transformer {
        return Err(TrainBenchError::NotTransformer(cfg.class.meta().name.to_string()));
    }
    let checked: CheckedConfig = cfg.clone().check(model)?;
    let enc = |p| checked.transformer(model, p);
    let (image, text) = (enc(Part::Image), enc(Part::Text));
    // A positive pair costs one sample per tower in-batch, K per tower with K-way negatives.
    let encoded_per_pair = checked.scheme.encoded(checked.batch) as f64 / checked.batch as f64;
    let flop_per_pair =
        encoded_per_pair * (transformer_flop_per_sample(&image.shape) + transformer_flop_per_sample(&text.shape));
    let mut pair: ClipPair<f32, Transformer> = ClipPair::new(image, text, checked.head(model), checked.scheme);
    let mut params = pair.init(&mut crate::rng::stream(0, 0));
    let mut opt = AdamW::new(&params);
    let mut grads = params.zeros_like();
    let batch = checked.batch;
    let data = Data::Fresh { model, seed: 0 }.batch(0, batch, checked.scheme);
    let mut t0 = Instant::now();
    let mut loss = f64::NAN;
    for s in 0..WARM_UP + steps {
        if s == WARM_UP {
            t0 = Instant::now();
        }
        // The batch is sampled from the model the encoders were built for: it always fits.
        loss = pair.loss_and_grad(&params, &data.images, &data.texts, &mut grads).expect("sampled tokens fit").loss;
        opt.step(&checked.schedule, s, &mut params, &mut grads);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let pairs_per_second = (steps * batch) as f64 / seconds;
    Ok(TrainThroughput {
        pairs_per_second,
        ms_per_step: seconds * 1e3 / steps as f64,
        steps,
        batch,
        threads: rayon::current_num_threads(),
        parameters: params.len(),
        last_loss: loss,
        flop_per_pair,
        gflop_per_second: pairs_per_second * flop_per_pair / 1e9,
        configuration: {
            let [image, text, vocab, d, layers, heads, p] = sizes(model, cfg);
            let products = cfg.products.name();
            let negatives = cfg.scheme.describe();
            format!(
                "image {image} tokens, text {text} tokens, vocabulary {vocab}; d={d}, {layers} layers, {heads} heads, p={p}; {products} products; CLIP loss with {negatives} negatives; AdamW"
            )
        },
        reference_arguments: TrainPreset::reference_arguments(model, cfg),
    })
}
