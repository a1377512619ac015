//! `jghm rates` (the sample-complexity sweep, T12) and `jghm plot` (its figures, redrawn from
//! the result files). The sweep, the fits and the figures live in [`crate::rates`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::contrastive::Exact;
use crate::files::{load_model, write_atomic};
use crate::info::Enumeration;
use crate::learn::checkpoint::sha256_hex;
use crate::learn::Class;
use crate::plot::draw;
use crate::plot::rates::{self as fig, display};
use crate::rates::results::{self, parse_class, Row};
use crate::rates::{fit, infonce, Fit, Settings, Sweep};

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
}

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A folder written by `jghm rates` (results.csv; infonce.csv and emulation.csv if present).
    pub dir: PathBuf,
}

/// The default model of the sweep (see [`RATES_HELP`]).
pub fn default_model() -> crate::random_family::RandomSpec {
    crate::random_family::RandomSpec { flip: 0.2, ..crate::random_family::RandomSpec::symmetric(4, 2, 2, 1) }
}

fn settings(a: &RatesArgs) -> Result<Settings> {
    let mut s = Settings::default_sweep(a.quick);
    if let Some(path) = &a.settings {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read settings '{}'", path.display()))?;
        let over: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("settings '{}' are not valid JSON", path.display()))?;
        let serde_json::Value::Object(over) = over else {
            bail!("settings '{}' must be a JSON object", path.display())
        };
        let mut base = serde_json::to_value(&s).expect("settings serialise");
        for (k, v) in over {
            if base.get(&k).is_none() {
                bail!("settings '{}': unknown field '{k}'", path.display());
            }
            base[k] = v;
        }
        s = serde_json::from_value(base).with_context(|| format!("invalid settings '{}'", path.display()))?;
    }
    if let Some(names) = &a.class {
        let mut classes = vec![];
        for name in names {
            let c = parse_class(name).with_context(|| format!("unknown class '{name}': use transformer, bp or mlp"))?;
            if !classes.contains(&c) {
                classes.push(c);
            }
        }
        s.classes = classes;
    }
    if let Some(ns) = &a.n {
        let mut ns = ns.clone();
        ns.sort_unstable();
        ns.dedup();
        s.ns = ns;
    }
    if let Some(k) = a.seeds {
        s.seeds = k as usize;
    }
    if let Some(steps) = a.steps {
        s.steps = steps as usize;
    }
    s.seed = a.seed;
    Ok(s)
}

pub fn run_rates(a: &RatesArgs, json_out: bool) -> Result<()> {
    let t0 = Instant::now();
    let settings = settings(a)?;
    let (model, model_text) = match &a.model {
        Some(path) => {
            let m = load_model(path)?;
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read '{}'", path.display()))?;
            (m, text)
        }
        None => {
            let m = default_model().build()?;
            let text = format!("{}\n", m.to_json());
            (m, text)
        }
    };
    settings.validate(&model).map_err(anyhow::Error::msg)?;
    let en = Enumeration::new(&model)
        .context("the sweep measures every run exactly, so the model must be small enough to enumerate")?;
    let exact = Exact::new(&en);
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let hash = sha256_hex(model_text.as_bytes());
    let done = prepare(&a.out, &settings, &hash, &model_text, a.resume)?;
    // T3's table (d) is exact (about 10 s of one core): written by a fresh sweep, kept by a
    // resumed one when it reads back whole (it does not depend on the model or settings).
    let t3 = a.out.join("infonce.csv");
    if !(a.resume && t3.exists() && infonce::read(&t3).is_ok_and(|p| !p.is_empty())) {
        infonce::write(&t3, &infonce::table(&infonce::tiny_model())?)?;
    }

    let sweep = Sweep { model: &model, model_sha256: hash, exact: &exact, settings: &settings };
    let mut rows = done;
    let pending: Vec<_> =
        plan(&settings).into_iter().filter(|k| !rows.iter().any(|r| (r.class, r.n, r.seed) == *k)).collect();
    let todo = pending.len();
    let bar = ProgressBar::new(pending.iter().map(|k| settings.work(k.0) as u64).sum());
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {percent}% ETA {eta_precise}  {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut finished = 0;
    for (class, n, seed) in pending {
        let base = bar.position();
        bar.set_message(format!("run {}/{todo}: {}, n = {n}, seed {seed}", finished + 1, display(class)));
        let mut progress = |r: &crate::learn::train::StepReport| bar.set_position(base + r.step as u64);
        let row = sweep.run(class, n, seed, &mut progress)?;
        bar.set_position(base + settings.work(class) as u64);
        rows.push(row);
        results::write(&a.out.join("results.csv"), &rows)?;
        finished += 1;
    }
    bar.finish_and_clear();
    let fits = fits(&rows);
    write_fits(&a.out, &fits)?;
    draw_all(&a.out, &rows, &fits)?;
    let wall = t0.elapsed().as_secs_f64();
    report(&rows, &fits, json_out, &a.out, Some((wall, finished)));
    Ok(())
}

/// Every run `(class, n, seed)`, seed-major (an interrupted sweep keeps whole curves).
fn plan(s: &Settings) -> Vec<(Class, usize, usize)> {
    let mut out = vec![];
    for seed in 0..s.seeds {
        for &class in &s.classes {
            for &n in &s.ns {
                out.push((class, n, seed));
            }
        }
    }
    out
}

/// Writes (or, with `--resume`, checks) DIR/sweep.json and DIR/model.json; returns the
/// finished runs to keep.
fn prepare(dir: &Path, s: &Settings, hash: &str, model_text: &str, resume: bool) -> Result<Vec<Row>> {
    let meta_path = dir.join("sweep.json");
    let meta = json!({ "settings": s, "model_sha256": hash });
    let csv = dir.join("results.csv");
    if resume {
        let text = std::fs::read_to_string(&meta_path)
            .with_context(|| format!("--resume: no sweep to resume in '{}' (cannot read sweep.json)", dir.display()))?;
        let old: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("--resume: '{}' is not valid JSON", meta_path.display()))?;
        if old["model_sha256"] != meta["model_sha256"] {
            bail!("--resume: the sweep in '{}' ran on another model (give the same --model)", dir.display());
        }
        if old["settings"] != meta["settings"] {
            bail!(
                "--resume: the sweep in '{}' has other settings (give the same --class/--n/--seeds/--steps/--seed/--quick)",
                dir.display()
            );
        }
        return if csv.exists() { results::read(&csv) } else { Ok(vec![]) };
    }
    if csv.exists() {
        bail!(
            "'{}' already holds a sweep (results.csv): continue it with --resume, or choose another --out",
            dir.display()
        );
    }
    write_atomic(&meta_path, format!("{meta:#}\n").as_bytes())?;
    write_atomic(&dir.join("model.json"), model_text.as_bytes())?;
    Ok(vec![])
}

/// Per class: the excess-risk fit and the zero-shot excess-risk fit (`None` when fewer than
/// three `n` have runs).
pub type ClassFits = Vec<(Class, Option<Fit>, Option<Fit>)>;

fn fits(rows: &[Row]) -> ClassFits {
    fig::classes(rows)
        .into_iter()
        .map(|c| {
            let of = |f: &dyn Fn(&Row) -> f64| -> Vec<(usize, f64)> {
                rows.iter().filter(|r| r.class == c).map(|r| (r.n, f(r))).collect()
            };
            (c, fit(&of(&|r| r.figures.excess_risk), 0), fit(&of(&|r| r.figures.zero_shot_excess_risk), 0))
        })
        .collect()
}

fn class_key(c: Class) -> &'static str {
    match c {
        Class::Bp => "bp",
        Class::Transformer => "transformer",
        Class::Mlp => "mlp",
    }
}

fn fits_json(fits: &ClassFits) -> serde_json::Value {
    let mut classes = serde_json::Map::new();
    for (c, excess, zero_shot) in fits {
        let mut v = match excess {
            Some(f) => serde_json::to_value(f).expect("a fit serialises"),
            None => json!({ "slope": null, "slope_ci": null, "floor": null, "method": "fewer than 3 sample sizes" }),
        };
        v["zero_shot"] =
            zero_shot.as_ref().map_or(serde_json::Value::Null, |f| serde_json::to_value(f).expect("serialises"));
        v["quantity"] = json!("excess risk l_inf(S) - l_inf(PMI), CLIP average of both directions, nats");
        classes.insert(class_key(*c).into(), v);
    }
    json!({ "classes": classes, "zero_shot_quantity": "E_X KL(P^PMI_{C|X} || P^S_{C|X}), nats (T8)" })
}

fn write_fits(dir: &Path, fits: &ClassFits) -> Result<()> {
    Ok(write_atomic(&dir.join("fits.json"), format!("{:#}\n", fits_json(fits)).as_bytes())?)
}

/// Draws (a)-(d) into `dir`, and (e) if `dir/emulation.csv` exists.
fn draw_all(dir: &Path, rows: &[Row], fits: &ClassFits) -> Result<()> {
    let excess: Vec<(Class, Fit)> = fits.iter().filter_map(|(c, f, _)| f.clone().map(|f| (*c, f))).collect();
    draw(&fig::excess_vs_n(rows, &excess), &dir.join("excess_risk"))?;
    draw(&fig::bound_vs_excess(rows), &dir.join("sufficiency_bound"))?;
    draw(&fig::zero_shot_vs_n(rows), &dir.join("zero_shot"))?;
    let t3 = dir.join("infonce.csv");
    if t3.exists() {
        draw(&fig::infonce(&infonce::read(&t3)?), &dir.join("infonce"))?;
    }
    let emulation = dir.join("emulation.csv");
    if emulation.exists() {
        let text =
            std::fs::read_to_string(&emulation).with_context(|| format!("cannot read '{}'", emulation.display()))?;
        let rows = crate::emulate::read_sweep_csv(&text).map_err(anyhow::Error::msg)?;
        crate::plot::emulation::plot_sweep(&rows, dir)?;
    }
    Ok(())
}

fn interval(f: &Option<Fit>) -> String {
    match f {
        Some(f) => format!("{:>6.2} [{:>5.2}, {:>5.2}]", f.slope, f.slope_ci[0], f.slope_ci[1]),
        None => format!("{:>21}", "(fewer than 3 n)"),
    }
}

fn floor(f: &Option<Fit>) -> String {
    match f.as_ref().map(|f| f.floor) {
        Some(Some(v)) => format!("{v:>9.2e}"),
        Some(None) => format!("{:>9}", "not hit"),
        None => format!("{:>9}", "-"),
    }
}

fn report(rows: &[Row], fits: &ClassFits, json_out: bool, dir: &Path, timing: Option<(f64, usize)>) {
    if json_out {
        let mut v = fits_json(fits);
        v["runs"] = json!(rows.len());
        v["out"] = json!(dir.display().to_string());
        if let Some((wall, fresh)) = timing {
            v["wall_seconds"] = json!(wall);
            v["runs_this_invocation"] = json!(fresh);
        }
        println!("{v}");
        return;
    }
    println!("Fits of log risk against log n (95% interval by bootstrap over seeds; floor by BIC):");
    println!(
        "{:<27} {:>4}  {:<21} {:>9}   {:<21} {:>9}",
        "class", "runs", "excess risk slope", "floor", "zero-shot slope", "floor"
    );
    for (c, e, z) in fits {
        let runs = rows.iter().filter(|r| r.class == *c).count();
        println!("{:<27} {runs:>4}  {} {}   {} {}", display(*c), interval(e), floor(e), interval(z), floor(z));
    }
    println!("T12 expects slopes at most -1/2 (within the interval) above the floor.");
    let what = if timing.is_some() { "Wrote {0}/results.csv, " } else { "Redrew from {0}/results.csv: " };
    println!(
        "{}{1}/fits.json and the figures {1}/{{excess_risk,sufficiency_bound,zero_shot,infonce}}.png (+ .svg).",
        what.replace("{0}", &dir.display().to_string()),
        dir.display()
    );
    if let Some((wall, fresh)) = timing {
        println!("Wall time {wall:.1} s ({fresh} runs trained in this invocation).");
    }
}

pub fn run_plot(a: &PlotArgs, json_out: bool) -> Result<()> {
    let csv = a.dir.join("results.csv");
    let rows = results::read(&csv)?;
    if rows.is_empty() {
        bail!("'{}' has no finished runs to plot", csv.display());
    }
    let fits = fits(&rows);
    write_fits(&a.dir, &fits)?;
    draw_all(&a.dir, &rows, &fits)?;
    report(&rows, &fits, json_out, &a.dir, None);
    Ok(())
}
