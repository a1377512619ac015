//! `jghm rates` (the sample-complexity sweep, T12) and `jghm plot` (its figures, redrawn from
//! the result files): parse, call [`crate::rates::run`] and [`crate::plot::rates`], print.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::learn::Class;
use crate::plot::rates::{display, draw_sweep, redraw};
use crate::rates::results::parse_class;
use crate::rates::run::{run_sweep, SweepOptions, SweepOutcome, SweepProgress};
use crate::runs::Shard;

pub const RATES_HELP: &str = "Defaults (when flags are omitted):
  model   standard random family: 4 states, 2 children, 2 levels on both towers (4 tokens over 4
          symbols a side: 256 images x 256 texts, enumerated exactly), flip 0.2, seed 1; written
          to DIR/model.json
  grid    --quick: classes bp,transformer,mlp; n = 256,1024,4096,16384; 3 seeds; at most 1500 steps
          full:    classes bp,transformer,mlp; n = 256,512,...,32768 (8 values); 5 seeds; at most 4000 steps
  runs    batch 32 (in-batch negatives), 20% of the n pairs held out; held-out CLIP loss every 50
          steps, the best parameters kept, stop after 8 (quick) / 10 (full) checks without improvement;
          transformer width 32, 2 layers, lr 1e-3; MLP width 128, lr 1e-3; the BP class learns every
          transition (lr 0.2, at most 1500 steps in both sweeps) with twice the true hidden states
          (still well-specified; at the true size its loss has local minima where two root states merge)
  --settings FILE overrides any field: classes, ns, seeds, seed, steps, eval_every, patience,
          batch, holdout, transformer_width, transformer_layers, mlp_width, bp_restarts,
          bp_states_factor, bp_lr, bp_steps
Writes DIR/results.csv (one row per finished run, rewritten atomically), DIR/fits.json,
DIR/infonce.csv and the figures DIR/{excess_risk,sufficiency_bound,zero_shot,infonce}.{svg,png}.

Examples:
  jghm rates --quick --out plots
  jghm rates --class bp,transformer --n 256,1024,4096 --seeds 3 --out sweep
  jghm rates --out sweep --resume        (continue an interrupted sweep)";

#[derive(Args, Debug)]
pub struct RatesArgs {
    /// Model file (JSON, enumerable: the figures are exact) [default: see below].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Classes, comma-separated: transformer, bp, mlp.
    #[arg(long, value_delimiter = ',')]
    pub class: Option<Vec<String>>,
    /// Sample sizes n, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub n: Option<Vec<usize>>,
    /// Seeds per (class, n).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: Option<u64>,
    /// Step budget of a run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub steps: Option<u64>,
    /// JSON file of sweep settings (fields of rates::Settings; missing fields take the defaults, flags override it).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Seed of the sweep (every run's seed derives from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder.
    #[arg(long, default_value = "rates")]
    pub out: PathBuf,
    /// The quick default sweep (a few minutes).
    #[arg(long)]
    pub quick: bool,
    /// Continue the sweep in --out: skip its finished runs (same model and settings).
    #[arg(long)]
    pub resume: bool,
    /// Run one shard of the plan, K/N (1 <= K <= N): unit i of the unsharded run belongs to
    /// shard i mod N + 1. Combine the N shard folders with `jghm merge OUT DIR..`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A folder written by `jghm rates` (results.csv; infonce.csv and emulation.csv if present),
    /// or by `jghm reproduce` (every risks*.csv, ood*.csv and prompts*.csv is redrawn as its
    /// figure).
    pub dir: PathBuf,
}

pub fn run_rates(a: &RatesArgs, json_out: bool) -> Result<()> {
    let t0 = Instant::now();
    let mut classes = None;
    if let Some(names) = &a.class {
        let parse =
            |n: &String| parse_class(n).with_context(|| format!("unknown class '{n}': use transformer, bp or mlp"));
        classes = Some(names.iter().map(parse).collect::<Result<Vec<Class>>>()?);
    }
    let options = SweepOptions {
        model: a.model.clone(),
        settings_file: a.settings.clone(),
        quick: a.quick,
        classes,
        ns: a.n.clone(),
        seeds: a.seeds.map(|k| k as usize),
        steps: a.steps.map(|s| s as usize),
        seed: a.seed,
        out: a.out.clone(),
        resume: a.resume,
        shard: a.shard,
    };
    let sweep = run_sweep(&options, &mut Bar::default())?;
    if let Some(shard) = a.shard {
        let (dir, runs) = (a.out.display(), sweep.rows.len());
        eprintln!(
            "shard {shard}: {runs} runs in {dir}/results.csv; `jghm merge` of all shards writes the fits and figures"
        );
        return Ok(());
    }
    draw_sweep(&sweep)?;
    report(&sweep, json_out, Some(t0.elapsed().as_secs_f64()));
    Ok(())
}

/// Prints the report of a merged sweep (as `jghm plot` does).
pub fn report_sweep(sweep: &SweepOutcome, json_out: bool) {
    report(sweep, json_out, None);
}

pub fn run_plot(a: &PlotArgs, json_out: bool) -> Result<()> {
    let redrawn = crate::plot::reproduce::redraw_reproduce(&a.dir)?;
    if redrawn.is_empty() || a.dir.join("results.csv").exists() {
        report(&redraw(&a.dir)?, json_out, None);
    }
    for r in redrawn {
        let figures: Vec<String> = r.figures.iter().map(|f| f.display().to_string()).collect();
        if json_out {
            let fits: Vec<_> = r
                .fits
                .iter()
                .map(|(m, a, b, r, from)| serde_json::json!({ "model": m, "a": a, "b": b, "rms": r, "fit_from_m": from }))
                .collect();
            println!("{}", serde_json::json!({ "figures": figures, "fits": fits }));
        } else {
            for (m, a_, b, rms, from) in r.fits {
                println!("fit {m}: risk ≈ a + b/M over M ≥ {from}, a = {a_:.5}, b = {b:.5} (least squares; rms residual {rms:.2e})");
            }
            for f in figures {
                println!("Redrew {f}.png (+ .svg).");
            }
        }
    }
    Ok(())
}

/// The sweep's progress bar (hidden when stderr is not a terminal).
#[derive(Default)]
struct Bar {
    bar: Option<super::progress::Progress>,
    base: u64,
    work: u64,
    runs: usize,
}

impl SweepProgress for Bar {
    fn planned(&mut self, runs: usize, work: u64) {
        (self.bar, self.runs) = (Some(super::progress::Progress::new(work, "rates")), runs);
    }
    fn run_started(&mut self, index: usize, class: Class, n: usize, seed: usize, work: u64) {
        let Some(bar) = &mut self.bar else { return };
        (self.base, self.work) = (self.base + self.work, work);
        bar.set_message(format!("run {}/{}: {}, n = {n}, seed {seed}", index + 1, self.runs, display(class)));
        bar.set_position(self.base);
    }
    fn step(&mut self, steps: u64) {
        if let Some(bar) = &mut self.bar {
            bar.set_position(self.base + steps);
        }
    }
    fn finished(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

fn report(sweep: &SweepOutcome, json_out: bool, wall: Option<f64>) {
    if json_out {
        println!("{}", sweep.json(wall));
    } else {
        println!("{}", sweep.text(display, wall));
    }
}
