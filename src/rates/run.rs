//! A sweep as a resumable run (`jghm rates`): its settings (defaults, a settings file, flags),
//! its folder ([`crate::runs`]: `sweep.json` with the settings and the model's hash, checked on
//! `--resume`; `model.json`; `results.csv`, rewritten after every run), T3's table, and the
//! per-class fits (`fits.json`). The figures are drawn from these files by
//! [`crate::plot::rates`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::fit::{fit, Fit};
use super::infonce;
use super::results::{self, Row};
use super::sweep::{RunError, Settings, SettingsError, Sweep};
use crate::contrastive::Exact;
use crate::files::{write_atomic, FileError};
use crate::info::{Enumeration, InfoError};
use crate::learn::checkpoint::sha256_hex;
use crate::learn::train::StepReport;
use crate::learn::Class;
use crate::model::{Jghm, ModelError};
use crate::random_family::RandomSpec;
use crate::runs::{merge_rows, read_shards, settings_from_file, with_shard, MergeError, RunDir, RunDirError, Shard};

/// Why a sweep (or a redraw) stopped.
#[derive(Debug, thiserror::Error)]
pub enum RatesError {
    #[error(transparent)]
    Files(#[from] RunDirError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("the sweep measures every run exactly, so the model must be small enough to enumerate")]
    TooLarge(#[source] InfoError),
    #[error(transparent)]
    Info(#[from] InfoError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("'{}' has no finished runs to plot", path.display())]
    NoRuns { path: PathBuf },
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error("merge: '{}' does not hold the model its settings name (its SHA-256 differs)", path.display())]
    ModelMismatch { path: PathBuf },
}

type Result<T, E = RatesError> = std::result::Result<T, E>;

/// The default model of the sweep (`jghm rates --help`): the standard random family with 4
/// states, 2 children and 2 levels on both towers, flip 0.2, seed 1.
pub fn default_model() -> RandomSpec {
    RandomSpec { flip: 0.2, ..RandomSpec::symmetric(4, 2, 2, 1) }
}

/// What a sweep is asked to do: each field left `None` keeps the default sweep's (or the
/// settings file's) value.
#[derive(Clone, Debug, Default)]
pub struct SweepOptions {
    pub model: Option<PathBuf>,
    pub settings_file: Option<PathBuf>,
    pub quick: bool,
    pub classes: Option<Vec<Class>>,
    pub ns: Option<Vec<usize>>,
    pub seeds: Option<usize>,
    pub steps: Option<usize>,
    pub seed: u64,
    pub out: PathBuf,
    pub resume: bool,
    /// Run only this shard of the plan ([`plan`], [`Shard`]); recorded in `sweep.json`.
    pub shard: Option<Shard>,
}

impl SweepOptions {
    /// The settings: the default sweep, overlaid by the settings file, then by the flags.
    pub fn settings(&self) -> Result<Settings> {
        let mut s = Settings::default_sweep(self.quick);
        if let Some(path) = &self.settings_file {
            s = settings_from_file(&s, path)?;
        }
        if let Some(classes) = &self.classes {
            s.classes = vec![];
            for &c in classes {
                if !s.classes.contains(&c) {
                    s.classes.push(c);
                }
            }
        }
        if let Some(ns) = &self.ns {
            let mut ns = ns.clone();
            ns.sort_unstable();
            ns.dedup();
            s.ns = ns;
        }
        if let Some(k) = self.seeds {
            s.seeds = k;
        }
        if let Some(steps) = self.steps {
            s.steps = steps;
        }
        s.seed = self.seed;
        Ok(s)
    }

    /// The model and its file's text (the default model's JSON when none is given), read once.
    fn model(&self) -> Result<(Jghm, String)> {
        match &self.model {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| FileError::ReadModel { path: path.clone(), source })?;
                let m =
                    Jghm::from_json(&text).map_err(|source| FileError::InvalidModel { path: path.clone(), source })?;
                Ok((m, text))
            }
            None => {
                let m = default_model().build()?;
                let text = format!("{}\n", m.to_json());
                Ok((m, text))
            }
        }
    }
}

/// What a sweep reports while it runs (a progress bar).
pub trait SweepProgress {
    /// `runs` runs remain, `work` training steps at most in all.
    fn planned(&mut self, runs: usize, work: u64);
    /// Run `index` (0-based) of the remaining ones starts; it takes at most `work` steps.
    fn run_started(&mut self, index: usize, class: Class, n: usize, seed: usize, work: u64);
    /// The current run has taken `steps` steps.
    fn step(&mut self, steps: u64);
    /// Every remaining run has finished.
    fn finished(&mut self);
}

/// Per class: the excess-risk fit and the zero-shot excess-risk fit (`None` when fewer than
/// three `n` have runs).
pub type ClassFits = Vec<(Class, Option<Fit>, Option<Fit>)>;

/// A sweep's rows and fits, as written to its folder.
pub struct SweepOutcome {
    pub dir: PathBuf,
    pub rows: Vec<Row>,
    pub fits: ClassFits,
    /// Runs trained by this invocation (the others were resumed).
    pub fresh_runs: usize,
}

/// Every run `(class, n, seed)`, seed-major (an interrupted sweep keeps whole curves).
pub fn plan(s: &Settings) -> Vec<(Class, usize, usize)> {
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

/// Runs (or, with `o.resume`, continues) a sweep in `o.out`: every file but the figures.
pub fn run_sweep(o: &SweepOptions, progress: &mut dyn SweepProgress) -> Result<SweepOutcome> {
    let settings = o.settings()?;
    let (model, model_text) = o.model()?;
    settings.validate(&model)?;
    let en = Enumeration::new(&model).map_err(RatesError::TooLarge)?;
    let exact = Exact::new(&en);
    let hash = sha256_hex(model_text.as_bytes());
    let meta = with_shard(json!({ "settings": settings, "model_sha256": hash }), o.shard);
    let explain = |field: &str| {
        if field == "shard" {
            "is another shard ('shard' differs; give the same --shard)".to_string()
        } else if field == "model_sha256" {
            "ran on another model (give the same --model)".to_string()
        } else {
            format!("has other settings ('{field}' differs; give the same --class/--n/--seeds/--steps/--seed/--quick)")
        }
    };
    let dir = RunDir::new(&o.out, "sweep", "sweep.json", "results.csv");
    let mut sink = dir.start::<Row>(&meta, o.resume, &explain)?;
    if o.shard.is_some() {
        // A shard with no runs still leaves its (empty) result file for `jghm merge`.
        sink.flush()?;
    }
    if !o.resume {
        write_atomic(&o.out.join("model.json"), model_text.as_bytes())?;
    }
    // T3's table (d) is exact (about 10 s of one core): written by a fresh sweep, kept by a
    // resumed one when it reads back whole (it does not depend on the model or settings). Of a
    // sharded sweep only shard 1 writes it ([`merge`] takes it from there).
    let t3 = o.out.join("infonce.csv");
    let writes_t3 = o.shard.is_none_or(|s| s.index == 1);
    if writes_t3 && !(o.resume && t3.exists() && infonce::read(&t3).is_ok_and(|p| !p.is_empty())) {
        infonce::write(&t3, &infonce::table(&infonce::tiny_model())?)?;
    }
    let sweep = Sweep { model: &model, model_sha256: hash, exact: &exact, settings: &settings };
    let pending: Vec<_> = Shard::select_opt(o.shard, plan(&settings))
        .into_iter()
        .filter(|k| !sink.rows().iter().any(|r| (r.class, r.n, r.seed) == *k))
        .collect();
    progress.planned(pending.len(), pending.iter().map(|k| settings.work(k.0) as u64).sum());
    for (index, &(class, n, seed)) in pending.iter().enumerate() {
        progress.run_started(index, class, n, seed, settings.work(class) as u64);
        let row = sweep.run(class, n, seed, &mut |r: &StepReport| progress.step(r.step as u64))?;
        sink.extend([row])?;
    }
    progress.finished();
    let rows = sink.into_rows();
    let fits = fits(&rows);
    // A shard's rows are part of a sweep: their fits would mislead, `jghm merge` writes them.
    if o.shard.is_none() {
        write_fits(&o.out, &fits)?;
    }
    Ok(SweepOutcome { dir: o.out.clone(), rows, fits, fresh_runs: pending.len() })
}

/// The settings file of a sweep's folder.
pub const SETTINGS_FILE: &str = "sweep.json";

/// `jghm merge` of a sweep: checks that `dirs` hold the shards `1/N ..= N/N` of one sweep
/// ([`read_shards`]), each finished, and writes `out` as the unsharded sweep writes it:
/// `sweep.json` (without the shard), `model.json`, `infonce.csv`, `results.csv` (the rows in
/// [`plan`] order, byte for byte the unsharded file up to the wall times) and `fits.json`. The
/// figures are drawn by the caller from the outcome ([`crate::plot::rates::draw_sweep`]).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<SweepOutcome> {
    let shards = read_shards(dirs, SETTINGS_FILE)?;
    let meta = shards[0].settings.clone();
    let settings: Settings = serde_json::from_value(meta["settings"].clone())
        .map_err(|source| RunDirError::InvalidSettings { path: shards[0].dir.join(SETTINGS_FILE), source })?;
    let plan = plan(&settings);
    let mut inputs = vec![];
    for s in &shards {
        let path = s.dir.join("results.csv");
        let rows = results::read(&path)?;
        let expected = s.shard.select(plan.clone()).len();
        if rows.len() < expected {
            return Err(MergeError::Unfinished {
                dir: s.dir.clone(),
                shard: s.shard,
                rows: rows.len(),
                expected,
                what: "runs",
            }
            .into());
        }
        inputs.push((s.shard, path, rows));
    }
    let rows = merge_rows(inputs, |_, _, r: &Row| plan.iter().position(|k| *k == (r.class, r.n, r.seed)))?;
    let model_path = shards[0].dir.join("model.json");
    let model_text =
        std::fs::read(&model_path).map_err(|source| RunDirError::Read { path: model_path.clone(), source })?;
    if meta["model_sha256"].as_str() != Some(sha256_hex(&model_text).as_str()) {
        return Err(RatesError::ModelMismatch { path: model_path });
    }
    // Shard 1 wrote T3's table; it is copied as it is (computed again if unreadable).
    let t3 = shards[0].dir.join("infonce.csv");
    let t3_bytes = match infonce::read(&t3) {
        Ok(points) if !points.is_empty() => std::fs::read(&t3).ok(),
        _ => None,
    };
    let dir = RunDir::new(out, "sweep", SETTINGS_FILE, "results.csv");
    let mut sink = dir.start::<Row>(&meta, false, &|_| String::new())?;
    write_atomic(&out.join("model.json"), &model_text)?;
    match t3_bytes {
        Some(bytes) => write_atomic(&out.join("infonce.csv"), &bytes)?,
        None => infonce::write(&out.join("infonce.csv"), &infonce::table(&infonce::tiny_model())?)?,
    }
    sink.extend(rows)?;
    let rows = sink.into_rows();
    let fits = fits(&rows);
    write_fits(out, &fits)?;
    Ok(SweepOutcome { dir: out.to_path_buf(), rows, fits, fresh_runs: 0 })
}

/// The rows of the sweep in `dir` and their fits (nothing written): what `jghm plot` redraws.
pub fn refit(dir: &Path) -> Result<SweepOutcome> {
    let csv = dir.join("results.csv");
    let rows = results::read(&csv)?;
    if rows.is_empty() {
        return Err(RatesError::NoRuns { path: csv });
    }
    let fits = fits(&rows);
    Ok(SweepOutcome { dir: dir.to_path_buf(), rows, fits, fresh_runs: 0 })
}

/// The classes present, in the order of [`Class::ALL`] (BP, transformer, MLP).
pub fn classes(rows: &[Row]) -> Vec<Class> {
    Class::ALL.into_iter().filter(|c| rows.iter().any(|r| r.class == *c)).collect()
}

/// The fits of every class present (bootstrap seed 0).
pub fn fits(rows: &[Row]) -> ClassFits {
    classes(rows)
        .into_iter()
        .map(|c| {
            let of = |f: &dyn Fn(&Row) -> f64| -> Vec<(usize, f64)> {
                rows.iter().filter(|r| r.class == c).map(|r| (r.n, f(r))).collect()
            };
            (c, fit(&of(&|r| r.figures.excess_risk), 0), fit(&of(&|r| r.figures.zero_shot_excess_risk), 0))
        })
        .collect()
}

/// The fits as `fits.json` holds them.
pub fn fits_json(fits: &ClassFits) -> Value {
    let mut classes = serde_json::Map::new();
    for (c, excess, zero_shot) in fits {
        let mut v = match excess {
            Some(f) => serde_json::to_value(f).expect("a fit serialises"),
            None => json!({ "slope": null, "slope_ci": null, "floor": null, "method": "fewer than 3 sample sizes" }),
        };
        v["zero_shot"] = zero_shot.as_ref().map_or(Value::Null, |f| serde_json::to_value(f).expect("a fit serialises"));
        v["quantity"] = json!("excess risk l_inf(S) - l_inf(PMI), CLIP average of both directions, nats");
        classes.insert(Class::name(*c).into(), v);
    }
    json!({ "classes": classes, "zero_shot_quantity": "E_X KL(P^PMI_{C|X} || P^S_{C|X}), nats (T8)" })
}

/// Writes `dir/fits.json`, atomically.
pub fn write_fits(dir: &Path, fits: &ClassFits) -> Result<()> {
    Ok(write_atomic(&dir.join("fits.json"), format!("{:#}\n", fits_json(fits)).as_bytes())?)
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

impl SweepOutcome {
    /// The JSON report: `fits.json`'s content with the run count and the folder, and with
    /// `wall` (seconds of a sweep, `None` for a redraw) the timing of this invocation.
    pub fn json(&self, wall: Option<f64>) -> Value {
        let mut v = fits_json(&self.fits);
        v["runs"] = json!(self.rows.len());
        v["out"] = json!(self.dir.display().to_string());
        if let Some(wall) = wall {
            v["wall_seconds"] = json!(wall);
            v["runs_this_invocation"] = json!(self.fresh_runs);
        }
        v
    }

    /// The text report: [`SweepOutcome::table`], the files written and, with `wall`, the timing.
    pub fn text(&self, display: impl Fn(Class) -> &'static str, wall: Option<f64>) -> String {
        let dir = self.dir.display();
        let what = if wall.is_some() {
            format!("Wrote {dir}/results.csv, ")
        } else {
            format!("Redrew from {dir}/results.csv: ")
        };
        let mut out = format!(
            "{}\n{what}{dir}/fits.json and the figures {dir}/{{excess_risk,sufficiency_bound,zero_shot,infonce}}.png (+ .svg).",
            self.table(display)
        );
        if let Some(wall) = wall {
            let _ = write!(out, "\nWall time {wall:.1} s ({} runs trained in this invocation).", self.fresh_runs);
        }
        out
    }

    /// The fits as a table, one line per class (`display` names a class for readers).
    pub fn table(&self, display: impl Fn(Class) -> &'static str) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Fits of log risk against log n (95% interval by bootstrap over seeds; floor by BIC):");
        let _ = writeln!(
            out,
            "{:<27} {:>4}  {:<21} {:>9}   {:<21} {:>9}",
            "class", "runs", "excess risk slope", "floor", "zero-shot slope", "floor"
        );
        for (c, e, z) in &self.fits {
            let runs = self.rows.iter().filter(|r| r.class == *c).count();
            let _ = writeln!(
                out,
                "{:<27} {runs:>4}  {} {}   {} {}",
                display(*c),
                interval(e),
                floor(e),
                interval(z),
                floor(z)
            );
        }
        let _ = write!(out, "T12 expects slopes at most -1/2 (within the interval) above the floor.");
        out
    }
}
