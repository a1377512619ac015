//! `jghm merge OUT DIR..`: the shards of a sweep combined into the unsharded run's folder.
//! Calls [`crate::plot::merge`], prints each merged run's report.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::plot::merge::{merge, Merged};

/// The text after `jghm merge --help`'s options.
pub const MERGE_HELP: &str = "Every DIR is the --out folder of one shard (`--shard K/N`) of one run of `jghm rates`,
`jghm reproduce risks|prompts|ood` or the width sweep of `jghm emulate` (a folder may hold several
kinds: every kind in the first DIR must be in all). The DIRs must be the shards 1/N..N/N of one
N, each once and finished, with the same settings apart from the shard; otherwise nothing of
that kind is written. OUT receives what the unsharded command writes: the settings file without
the shard, the result rows in the unsharded order (byte for byte the same file, up to the wall
times of each row), and the fits and figures.

Examples:
  jghm merge plots shard-1 shard-2 shard-3
  jghm merge run run-shards/shard-*";

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Output folder (must not hold results yet).
    pub out: PathBuf,
    /// The shard folders, in any order.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

pub fn run(a: &MergeArgs, json_out: bool) -> Result<()> {
    let n = a.dirs.len();
    for m in merge(&a.out, &a.dirs)? {
        match m {
            Merged::Emulation(rows) => {
                if json_out {
                    println!("{}", serde_json::to_string(&rows)?);
                } else {
                    print!("{}", crate::emulate::sweep::table(&rows));
                    println!("merged {n} shards: wrote {}/emulation.csv and rate plot (e)", a.out.display());
                }
            }
            Merged::Reproduce { figure, outcome, fits, .. } => {
                super::reproduce::report_merged(figure, &a.out, &outcome.rows, &fits, json_out);
            }
            Merged::Rates(sweep) => super::rates::report_sweep(&sweep, json_out),
        }
    }
    Ok(())
}
