//! Fuzzes the checkpoint loader (`CheckpointFile::from_bytes`, then `eval::checkpoint_score`):
//! any bytes either fail with an error, or give a checkpoint whose learned score can be built
//! and evaluated on a pair without panicking, without allocating past the memory budget, and
//! without printing NaN (a score is finite or the error path took it).
//!
//! The model is fixed (`tiny_model.json`, 3 states, depth 2, 4 leaves a side), so that the
//! seed checkpoints of the corpus (one per class, trained for 3 steps on it) pass the model-hash
//! check and the fuzzer mutates past it into the header, the configuration and the tensors.
#![no_main]

use jghm::eval::checkpoint_score;
use jghm::learn::checkpoint::{sha256_hex, CheckpointFile, ModelFile};
use jghm::model::Jghm;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const MODEL: &str = include_str!("../tiny_model.json");
/// The memory budget the loader is given: a checkpoint needing more is refused by the check.
const BUDGET: u64 = 256 << 20;

fn model() -> &'static ModelFile {
    static FILE: OnceLock<ModelFile> = OnceLock::new();
    FILE.get_or_init(|| ModelFile {
        model: Jghm::from_json(MODEL).expect("the fuzz model is valid"),
        sha256: sha256_hex(MODEL.as_bytes()),
    })
}

fuzz_target!(|data: &[u8]| {
    let file = model();
    let Ok(checkpoint) = CheckpointFile::from_bytes(file, data.to_vec(), Some(BUDGET)) else { return };
    let Ok(learned) = checkpoint_score(&file.model, &checkpoint) else { return };
    let x = vec![0; file.model.image_len()];
    let y = vec![file.model.text_vocab() - 1; file.model.text_len()];
    // A checked checkpoint gives a score; the score may be non-finite only if the weights are
    // (the evaluation path reports that as an error, never as a number).
    let _ = learned.score.score(&x, &y);
});
