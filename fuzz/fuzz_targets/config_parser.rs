//! Fuzzes the training configuration: any bytes through the JSON parser of `TrainConfig` and
//! its check (`TrainConfig::check_within`, ranges and the memory estimate against a budget).
//! A configuration that passes must be buildable within the budget: its encoders are built,
//! its parameters initialised and its CLIP loss computed on one small batch, without a panic,
//! and the loss is finite.
#![no_main]

use jghm::learn::{with_encoders, ClipPair, Encoder, Real, TrainConfig, WithEncoders};
use jghm::learn::data::Data;
use jghm::learn::CheckedConfig;
use jghm::model::{Jghm, Part};
use jghm::rng;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MODEL: &str = include_str!("../tiny_model.json");
/// The memory budget of the check: a configuration needing more is refused.
const BUDGET: u64 = 256 << 20;
/// Positive pairs in the one batch the loss is computed on (the configuration's batch is what
/// the memory check bounds; a batch of its full size would only slow the fuzzer down).
const PAIRS: usize = 2;

fn model() -> &'static Jghm {
    static MODEL_CELL: OnceLock<Jghm> = OnceLock::new();
    MODEL_CELL.get_or_init(|| Jghm::from_json(MODEL).expect("the fuzz model is valid"))
}

struct OneLoss<'a> {
    cfg: &'a CheckedConfig,
    model: &'a Jghm,
}

impl WithEncoders for OneLoss<'_> {
    type Output = f64;
    fn run<R: Real, E: Encoder<R> + 'static>(self, make: &dyn Fn(Part) -> E) -> f64 {
        let mut pair = ClipPair::new(make(Part::Image), make(Part::Text), self.cfg.head(self.model), self.cfg.scheme);
        let params = pair.init(&mut rng::stream(1, 0));
        let batch = Data::Fresh { model: self.model, seed: 1 }.batch(0, PAIRS, self.cfg.scheme);
        pair.loss(&params, &batch.images, &batch.texts).loss
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = serde_json::from_str::<TrainConfig>(text) else { return };
    let model = model();
    let Ok(cfg) = config.check_within(model, Some(BUDGET)) else { return };
    let estimate = jghm::learn::memory::estimate(&cfg, model).total();
    assert!(estimate.is_finite() && estimate > 0.0 && estimate <= BUDGET as f64, "estimate {estimate}");
    let loss = with_encoders(&cfg, model, OneLoss { cfg: &cfg, model });
    assert!(loss.is_finite(), "loss {loss} for {text}");
});
