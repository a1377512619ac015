//! `jghm export`: sampled pairs (or every sequence) with their exact quantities, as safetensors
//! for encoders trained in other frameworks ([`crate::export`]).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use super::progress::Progress;
use crate::export::{enumerate_all, sample_set};
use crate::files::write_atomic;
use crate::learn::checkpoint::ModelFile;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The model file (its SHA-256 is written into the export).
    #[arg(long)]
    pub model: PathBuf,
    /// Number of sampled pairs.
    #[arg(long, required_unless_present = "all", conflicts_with = "all", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub n: Option<u64>,
    /// Seed of the sample (the file does not depend on the number of threads).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the state of every hidden node (`hidden` [N, nodes], by node id).
    #[arg(long, conflicts_with = "all")]
    pub hidden: bool,
    /// Instead of a sample, every image and every text of an enumerable model with log p and
    /// the full PMI matrix (refused, with the size, on a model too large to enumerate).
    #[arg(long)]
    pub all: bool,
    /// Output safetensors file.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &ExportArgs, json_out: bool) -> Result<()> {
    let file = ModelFile::read(&a.model)?;
    let model = &file.model;
    let (bytes, summary) = if a.all {
        let all = enumerate_all(model)?;
        let summary = serde_json::json!({"out": a.out, "images": all.images.len(), "texts": all.texts.len()});
        (all.to_safetensors(model, &file.sha256), summary)
    } else {
        let n = a.n.expect("clap requires --n without --all") as usize;
        let mut progress = Progress::new(n as u64, "export");
        let set = sample_set(model, n, a.seed, a.hidden, &mut |done| progress.set_position(done as u64));
        progress.finish();
        let summary = serde_json::json!({"out": a.out, "pairs": set.len(), "seed": a.seed});
        (set.to_safetensors(model, &file.sha256), summary)
    };
    write_atomic(&a.out, &bytes)?;
    if json_out {
        println!("{summary}");
    } else if a.all {
        println!(
            "wrote every image ({}) and text ({}) with the PMI matrix to {}",
            summary["images"],
            summary["texts"],
            a.out.display()
        );
    } else {
        println!("wrote {} pairs with their exact quantities to {}", summary["pairs"], a.out.display());
    }
    Ok(())
}
