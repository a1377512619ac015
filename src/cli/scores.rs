//! `jghm scores`: the learned score matrix of an enumerable model, written as JSON
//! ([`crate::eval::exact::ScoreMatrix`]) so every exact figure can be recomputed from it.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use crate::eval::checkpoint_score;
use crate::eval::exact::score_matrix;
use crate::files::write_atomic;
use crate::learn::checkpoint::CheckpointFile;

#[derive(Args, Debug)]
pub struct ScoresArgs {
    /// The model file the checkpoint was trained on (its SHA-256 must match the checkpoint's).
    #[arg(long)]
    pub model: PathBuf,
    /// Checkpoint written by `jghm train`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Output JSON file: `{"images": [[tokens], ..], "texts": [[tokens], ..], "scores": [[S(x_i, y_j) ..], ..]}`.
    #[arg(long)]
    pub out: PathBuf,
    /// Refuse a checkpoint whose run would need more than this many bytes [default: the machine's memory].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_memory: Option<u64>,
}

pub fn run(a: &ScoresArgs, json_out: bool) -> Result<()> {
    let budget = a.max_memory.or_else(crate::learn::memory::machine_bytes);
    let (model, file) = CheckpointFile::load(&a.model, &a.checkpoint, budget)?;
    let learned = checkpoint_score(&model.model, &file)?;
    let matrix = score_matrix(&model.model, &*learned.score)?;
    let text = serde_json::to_string(&matrix).expect("the matrix serialises");
    write_atomic(&a.out, text.as_bytes())?;
    let (nx, ny) = (matrix.images.len(), matrix.texts.len());
    if json_out {
        println!("{}", serde_json::json!({"out": a.out, "images": nx, "texts": ny}));
    } else {
        println!("wrote the {nx} x {ny} learned score matrix to {}", a.out.display());
    }
    Ok(())
}
