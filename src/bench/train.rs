//! CLIP training throughput of the standard configuration (`jghm bench train`), to compare side
//! by side with the PyTorch reference script `clip_train_torch.py` (same architecture, same
//! defaults).
//!
//! The model is the standard random JGHM (10 states, 3 children, image depth 4 = 81 tokens,
//! text depth 3 = 27 tokens, flip 0.3, seed 1); encoders d = 64, 2 layers, 4 heads, p = 32;
//! in-batch negatives; AdamW. As in the reference, one batch is drawn before the clock starts
//! and reused (sampling is not timed), 3 warm-up steps are not timed, and a timed step is
//! forward + backward of both towers, the loss, and the optimiser update.

use std::time::Instant;

use serde::Serialize;

use crate::learn::data::Data;
use crate::learn::{AdamW, Class, ClipPair, ConfigError, PositionInit, TrainConfig, Transformer};
use crate::model::{ModelError, Part};
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
    pub configuration: &'static str,
}

/// Times `steps` CLIP steps of `batch` pairs of the standard configuration (module doc) on the
/// current thread pool.
pub fn bench_train(steps: usize, batch: usize) -> Result<TrainThroughput, TrainBenchError> {
    let mut spec = RandomSpec::symmetric(10, 3, 4, 1);
    spec.text_depth = 3;
    spec.flip = 0.3;
    let model = spec.build()?;
    // The standard configuration of `clip_train_torch.py`, pinned here rather than taken from
    // `train`'s default (which is tuned for accuracy in 4 minutes, not for this bench).
    let mut cfg = TrainConfig::for_class(Class::Transformer);
    (cfg.width, cfg.layers, cfg.heads, cfg.out, cfg.normalise) = (64, 2, 4, 32, false);
    cfg.position_init = PositionInit::Normal;
    cfg.batch = batch;
    let cfg = cfg.check(&model)?;
    let enc = |p| cfg.transformer(&model, p);
    let mut pair: ClipPair<f32, Transformer> =
        ClipPair::new(enc(Part::Image), enc(Part::Text), cfg.head(&model), cfg.scheme);
    let mut params = pair.init(&mut crate::rng::stream(0, 0));
    let mut opt = AdamW::new(&params);
    let mut grads = params.zeros_like();
    let data = Data::Fresh { model: &model, seed: 0 }.batch(0, cfg.batch, cfg.scheme);
    let mut t0 = Instant::now();
    let mut loss = f64::NAN;
    for s in 0..WARM_UP + steps {
        if s == WARM_UP {
            t0 = Instant::now();
        }
        // The batch is sampled from the model the encoders were built for: it always fits.
        loss = pair.loss_and_grad(&params, &data.images, &data.texts, &mut grads).expect("sampled tokens fit").loss;
        opt.step(&cfg.schedule, s, &mut params, &mut grads);
    }
    let seconds = t0.elapsed().as_secs_f64();
    Ok(TrainThroughput {
        pairs_per_second: (steps * batch) as f64 / seconds,
        ms_per_step: seconds * 1e3 / steps as f64,
        steps,
        batch,
        threads: rayon::current_num_threads(),
        parameters: params.len(),
        last_loss: loss,
        configuration: "JGHM 10 states, 3 children, image 81 tokens, text 27 tokens; d=64, 2 layers, 4 heads, p=32; in-batch CLIP loss; AdamW",
    })
}
