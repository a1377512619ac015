//! One figure's experiment, `jghm reproduce risks|prompts|ood`, as a resumable run: the flips
//! and seeds to cover, the points of each (one predictor on one data model, [`super::experiments`]),
//! and the run folder ([`crate::runs`]) that keeps the finished points across interruptions.
//!
//! The folder holds `<figure>-settings.json` (every option that changes a number; a resume
//! must match it) and `<figure>.csv` (every row so far, rewritten after each point). Seeds are
//! the outer loop: an interrupted run has whole seeds first.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use super::experiments::{
    paper_flips, point, point_with_bayes, prompts_point, ExperimentError, Family, PerTask, Predictor, Row, Settings,
    FLIP_PLACEHOLDER, OOD_TRAIN_FLIP,
};
use super::learned::{
    train_learned, train_learned_steps, Budget, Checkpoints, EncoderForm, LearnedClass, LearnedModels, Plan, Protocol,
    Steps,
};
use crate::model::Jghm;
use crate::runs::{merge_rows, read_shards, with_shard, MergeError, RunDir, RunDirError, Shard, Sink};
use crate::score::Pmi;

type Result<T, E = ExperimentError> = std::result::Result<T, E>;

/// The figure a run reproduces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Figure {
    /// The four risks against the flip (the paper's Fig. 2).
    Risks,
    /// The zero-shot risk against the number of prompts (Figs. 5-6).
    Prompts,
    /// Predictors built at [`OOD_TRAIN_FLIP`], evaluated at every flip (Figs. 8-9).
    Ood,
}

impl Figure {
    pub fn name(self) -> &'static str {
        match self {
            Figure::Risks => "risks",
            Figure::Prompts => "prompts",
            Figure::Ood => "ood",
        }
    }
}

/// Which tower's flip an out-of-distribution run varies (the other stays at [`OOD_TRAIN_FLIP`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Vary {
    /// Both towers at the flip of the point.
    Both,
    /// The image tower at the flip of the point, the text tower at [`OOD_TRAIN_FLIP`] (the
    /// paper's Fig. 9 for denoising).
    Image,
    /// The text tower at the flip of the point, the image tower at [`OOD_TRAIN_FLIP`] (the
    /// paper's Fig. 9 for vision-language).
    Text,
}

impl Vary {
    /// `both`, `image` or `text`, as `--vary` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Vary::Both => "both",
            Vary::Image => "image",
            Vary::Text => "text",
        }
    }

    /// `(image flip, text flip)` of the data model at the point's flip `flip`.
    pub fn tower_flips(self, flip: f64) -> (f64, f64) {
        match self {
            Vary::Both => (flip, flip),
            Vary::Image => (flip, OOD_TRAIN_FLIP),
            Vary::Text => (OOD_TRAIN_FLIP, flip),
        }
    }
}

/// Everything a run is asked to do (`jghm reproduce --help` documents each).
#[derive(Clone, Debug)]
pub struct Options {
    pub flips: Option<Vec<f64>>,
    pub bayes_only: bool,
    pub classes: Vec<LearnedClass>,
    /// Model seeds `1..=seeds`.
    pub seeds: u64,
    pub quick: bool,
    pub samples: Option<usize>,
    pub learned_samples: Option<usize>,
    pub budget_seconds: f64,
    pub prompts: Vec<usize>,
    /// Base seed of the Monte Carlo draws.
    pub seed: u64,
    pub out: PathBuf,
    pub resume: bool,
    /// The models the run is on.
    pub family: Family,
    /// The tower(s) whose flip an OOD run varies (risks and prompts: both).
    pub vary: Vary,
    /// Run only this shard of the points ([`units`], [`Shard`]); recorded in the settings file.
    pub shard: Option<Shard>,
    /// The paper's switchable choices for the learned models.
    pub protocol: Protocol,
    /// Fixed step counts for the learned models instead of `budget_seconds`.
    pub steps: Option<Steps>,
    /// With `steps`: stop after this many wall seconds, the current training's checkpoint saved,
    /// for a resume to continue (a job with a time limit). Changes no number, so it is not
    /// in the settings.
    pub stop_after_seconds: Option<f64>,
}

/// What a finished run leaves: every row (resumed ones first) and the flips covered.
pub struct Outcome {
    pub rows: Vec<Row>,
    pub flips: Vec<f64>,
}

/// The flips of a run: `--flips`, else the figure's default; each in `(0, 1]`, sorted, unique.
pub fn flips(figure: Figure, o: &Options) -> Result<Vec<f64>> {
    let mut f = match (&o.flips, figure, o.quick) {
        (Some(f), _, _) => f.clone(),
        (None, Figure::Prompts, _) => vec![OOD_TRAIN_FLIP],
        (None, _, true) => vec![0.02, 0.1, 0.2, 0.3, 0.4],
        (None, _, false) => paper_flips(),
    };
    if f.is_empty() {
        return Err(ExperimentError::NoFlips);
    }
    if let Some(bad) = f.iter().find(|e| !(e.is_finite() && **e > 0.0 && **e <= 1.0)) {
        return Err(ExperimentError::Flip(*bad));
    }
    f.sort_by(|a, b| a.total_cmp(b));
    f.dedup();
    Ok(f)
}

fn check(figure: Figure, o: &Options) -> Result<()> {
    if !(o.budget_seconds.is_finite() && o.budget_seconds > 0.0) {
        return Err(ExperimentError::Budget(o.budget_seconds));
    }
    if o.prompts.is_empty() || o.prompts.contains(&0) || o.prompts.iter().any(|&m| m > 100_000) {
        return Err(ExperimentError::Prompts);
    }
    if let Family::Files(pattern) = &o.family {
        if !pattern.contains(FLIP_PLACEHOLDER) {
            return Err(ExperimentError::Family(format!(
                "--models: the pattern must contain {FLIP_PLACEHOLDER} (one file per flip), got '{pattern}'"
            )));
        }
    }
    if figure != Figure::Ood && o.vary != Vary::Both {
        return Err(ExperimentError::Family("--vary applies to `reproduce ood` only".into()));
    }
    Ok(())
}

/// The settings a resumed run must share with the original (and a shard its shard).
fn meta(figure: Figure, o: &Options, flips: &[f64], s: &Settings) -> Value {
    with_shard(meta_unsharded(figure, o, flips, s), o.shard)
}

fn meta_unsharded(figure: Figure, o: &Options, flips: &[f64], s: &Settings) -> Value {
    json!({
        "command": figure.name(),
        "flips": flips,
        "seeds": o.seeds,
        "bayes_only": o.bayes_only,
        "classes": o.classes.iter().map(|c| c.name()).collect::<Vec<_>>(),
        "budget_seconds": o.budget_seconds,
        "quick": o.quick,
        "prompts": if figure == Figure::Prompts { json!(o.prompts) } else { json!(null) },
        "settings": s,
        "family": o.family.name(),
        // Only OOD runs varying one tower record it: other settings files stay as they were.
        "vary": if o.vary == Vary::Both { json!(null) } else { json!(o.vary.name()) },
        // Runs that train learned models record the protocol and the step counts (Bayes-only
        // settings files stay as they were).
        "protocol": if o.bayes_only { json!(null) } else { json!({ "protocol": o.protocol, "steps": o.steps }) },
    })
}

/// The settings of `meta`, without `family` when resuming a standard-family run whose settings
/// file predates the field (such files name no family and were all of the standard family).
fn settings_for(figure: Figure, o: &Options, meta: Value) -> Value {
    let mut meta = meta;
    if o.resume && o.family == Family::Standard {
        let old = std::fs::read(run_dir(figure, &o.out).settings_path()).ok();
        let old: Option<Value> = old.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if old.is_some_and(|v| v.get("family").is_none()) {
            if let Some(fields) = meta.as_object_mut() {
                fields.remove("family");
            }
        }
    }
    meta
}

/// The run folder of `figure` in `dir`.
pub fn run_dir(figure: Figure, dir: &std::path::Path) -> RunDir {
    let name = figure.name();
    RunDir::new(dir, "run", &format!("{name}-settings.json"), &format!("{name}.csv"))
}

/// Runs (or, with `o.resume`, continues) `figure`; `log` receives the progress lines.
pub fn run(figure: Figure, o: &Options, log: &mut dyn FnMut(&str)) -> Result<Outcome> {
    check(figure, o)?;
    let flips = flips(figure, o)?;
    let mut settings = Settings::new(o.quick, o.samples, o.seed);
    if let Some(n) = o.learned_samples {
        settings.learned_samples = PerTask::all(n);
    }
    let explain = |field: &str| format!("has other settings ('{field}' differs; give the same flags and --shard)");
    let seeds = o.family.model_seeds(o.seeds)?;
    let mine = Shard::select_opt(o.shard, units(&seeds, &flips));
    let settings_file = settings_for(figure, o, meta(figure, o, &flips, &settings));
    let sink = run_dir(figure, &o.out).start::<Row>(&settings_file, o.resume, &explain)?;
    // The first model is built before anything is printed, so that a bad family or file is
    // the command's only line.
    o.family.model(flips[0], flips[0], seeds[0])?;
    let resumed = sink.rows().len();
    log(&format!(
        "jghm reproduce {}: {} family, {} flips x {} seeds{}; the time left is estimated after each flip, from the flips done{}",
        figure.name(),
        o.family.name(),
        flips.len(),
        o.seeds,
        if o.bayes_only {
            ", Bayes only".to_string()
        } else {
            let length = match o.steps {
                Some(st) => format!("{} CLIP steps and {}, {} head steps each", st.clip, st.denoiser, st.next_token),
                None => format!("budget {:.0} s each", o.budget_seconds),
            };
            let p = &o.protocol;
            let encoder = match p.encoder {
                EncoderForm::Ours => "",
                EncoderForm::Paper => ", the paper's encoder",
            };
            format!(
                ", classes {:?}, {length}; negatives {}, {:?} heads, CLIP lr {}, CLIP gradient clip {}{encoder}",
                o.classes, p.negatives, p.heads, p.clip_lr, p.clip_max_norm
            )
        },
        if resumed == 0 { String::new() } else { format!("; resuming with {resumed} rows") }
    ));
    let checkpoints = o.out.join(format!("{}-checkpoints", figure.name()));
    let mut points = Points {
        sink,
        log,
        o,
        s: &settings,
        checkpoints,
        started: Instant::now(),
        flips_done: 0,
        flips_total: mine.len(),
    };
    for seed in seeds {
        let flips: Vec<f64> = mine.iter().filter(|u| u.0 == seed).map(|u| u.1).collect();
        if flips.is_empty() {
            continue;
        }
        match figure {
            Figure::Risks => points.risks_seed(&flips, seed)?,
            Figure::Ood => points.ood_seed(&flips, seed)?,
            Figure::Prompts => points.prompts_seed(&flips, seed)?,
        }
    }
    points.sink.flush()?;
    Ok(Outcome { rows: points.sink.into_rows(), flips })
}

/// The units of work of a run, in its order: every `(model seed, flip)`, seeds the outer loop.
/// A unit's rows depend on the unit and the settings only (the Monte Carlo seeds are the
/// settings' per task, the model is drawn from the unit's seed and flip), which is what makes
/// a run shardable ([`Shard`]). Learned predictors train for a wall-time budget, so their rows
/// differ between any two runs, sharded or not; the Bayes rows do not.
pub fn units(seeds: &[u64], flips: &[f64]) -> Vec<(u64, f64)> {
    seeds.iter().flat_map(|&seed| flips.iter().map(move |&flip| (seed, flip))).collect()
}

/// The predictors of every point of `figure` (the `model` column), as the run computes them.
fn point_models(figure: Figure, bayes_only: bool, classes: &[LearnedClass]) -> Vec<String> {
    let mut out: Vec<String> = match figure {
        Figure::Risks => vec!["bayes".into()],
        Figure::Ood => vec!["bayes".into(), "misspecified-bp".into()],
        Figure::Prompts => vec!["pmi".into()],
    };
    if !bayes_only {
        // The joint class has no score, so no row in the prompts figure.
        let in_figure = |c: &&LearnedClass| figure != Figure::Prompts || **c != LearnedClass::Joint;
        out.extend(classes.iter().filter(in_figure).map(|c| c.name().to_string()));
    }
    out
}

/// `jghm merge` of `figure`: checks that `dirs` hold the shards `1/N ..= N/N` of one run
/// ([`read_shards`]), each with every point of its units, and writes `out` as the unsharded run
/// writes it: `<figure>-settings.json` (without the shard) and `<figure>.csv`, the rows in the
/// order of [`units`] (byte for byte the unsharded file up to the wall times). Returns the
/// options of that run (for its figure, [`crate::plot::reproduce::draw_figures`]) and its rows.
pub fn merge(figure: Figure, dirs: &[PathBuf], out: &Path) -> Result<(Options, Outcome)> {
    let settings_file = run_dir(figure, Path::new("")).settings_file;
    let shards = read_shards(dirs, &settings_file)?;
    let meta = shards[0].settings.clone();
    let invalid = |source| RunDirError::InvalidSettings { path: shards[0].dir.join(&settings_file), source };
    let field = |name: &str| meta.get(name).cloned().unwrap_or(Value::Null);
    let flips: Vec<f64> = serde_json::from_value(field("flips")).map_err(invalid)?;
    let classes: Vec<LearnedClass> = serde_json::from_value(field("classes")).map_err(invalid)?;
    let prompts: Option<Vec<usize>> = serde_json::from_value(field("prompts")).map_err(invalid)?;
    let family = match field("family").as_str() {
        None | Some("standard") => Family::Standard,
        Some("paper") => Family::Paper,
        Some(other) => Family::Files(other.strip_prefix("files:").unwrap_or(other).to_string()),
    };
    let o = Options {
        flips: Some(flips.clone()),
        bayes_only: field("bayes_only").as_bool().unwrap_or(false),
        classes,
        seeds: field("seeds").as_u64().unwrap_or(1),
        quick: field("quick").as_bool().unwrap_or(false),
        samples: None,
        learned_samples: None,
        budget_seconds: field("budget_seconds").as_f64().unwrap_or(0.0),
        prompts: prompts.unwrap_or_default(),
        seed: field("settings").get("seed").and_then(Value::as_u64).unwrap_or(0),
        out: out.to_path_buf(),
        resume: false,
        family,
        vary: match field("vary").as_str() {
            Some("image") => Vary::Image,
            Some("text") => Vary::Text,
            _ => Vary::Both,
        },
        shard: None,
        protocol: field("protocol")
            .get("protocol")
            .map_or(Ok(Protocol::default()), |p| serde_json::from_value(p.clone()))
            .map_err(invalid)?,
        steps: field("protocol")
            .get("steps")
            .map_or(Ok(None), |p| serde_json::from_value(p.clone()))
            .map_err(invalid)?,
        stop_after_seconds: None,
    };
    let units = units(&o.family.model_seeds(o.seeds)?, &flips);
    let models = point_models(figure, o.bayes_only, &o.classes);
    let mut inputs = vec![];
    for sd in &shards {
        let sink = Sink::<Row>::resume(&sd.dir.join(run_dir(figure, Path::new("")).results_file))?;
        let rows = sink.into_rows();
        let mine = sd.shard.select(units.clone());
        let expected = mine.len() * models.len();
        let done = mine
            .iter()
            .flat_map(|&(seed, flip)| models.iter().map(move |m| (m.clone(), flip.to_bits(), seed)))
            .filter(|p| rows.iter().any(|r| r.point() == *p))
            .count();
        if done < expected {
            return Err(MergeError::Unfinished {
                dir: sd.dir.clone(),
                shard: sd.shard,
                rows: done,
                expected,
                what: "points",
            }
            .into());
        }
        inputs.push((sd.shard, run_dir(figure, &sd.dir).results_path(), rows));
    }
    let rows = merge_rows(inputs, |_, _, r: &Row| units.iter().position(|u| *u == (r.seed, r.flip)))?;
    let mut sink = run_dir(figure, out).start::<Row>(&meta, false, &|_| String::new())?;
    sink.extend(rows)?;
    Ok((o, Outcome { rows: sink.into_rows(), flips }))
}

/// The training seed of a learned model: a function of the model seed only.
fn train_seed(model_seed: u64) -> u64 {
    model_seed.wrapping_mul(7919).wrapping_add(17)
}

fn learned<'a>(m: &'a LearnedModels, class: LearnedClass, trained_flip: Option<f64>) -> Predictor<'a> {
    Predictor::Learned {
        name: class.name().to_string(),
        score: m.score(),
        denoiser: m.denoiser(),
        next_token: m.next_token(),
        note: m.describe(),
        trained_flip,
    }
}

/// The points of a run: the sink of finished rows, and what every point needs.
struct Points<'a> {
    sink: Sink<Row>,
    log: &'a mut dyn FnMut(&str),
    o: &'a Options,
    s: &'a Settings,
    /// Where a run fixed by steps keeps its checkpoints, a set per (class, trained flip, seed).
    checkpoints: PathBuf,
    started: Instant,
    flips_done: usize,
    flips_total: usize,
}

impl Points<'_> {
    /// Logs the flips done and the time left at the mean time per flip so far (flips resumed
    /// from a previous run count as done and take no time, so the estimate errs low there).
    fn flip_done(&mut self) {
        self.flips_done += 1;
        let seconds = self.started.elapsed().as_secs_f64();
        let left = seconds / self.flips_done as f64 * (self.flips_total - self.flips_done) as f64;
        (self.log)(&format!(
            "{}/{} flips done after {:.0} s; about {:.1} min left at the rate so far",
            self.flips_done,
            self.flips_total,
            seconds,
            left / 60.0
        ));
    }

    fn done(&self, model: &str, flip: f64, seed: u64) -> bool {
        self.sink.rows().iter().any(|r| r.point() == (model.to_string(), flip.to_bits(), seed))
    }

    /// The data model at the point's flip `flip`: both towers at `flip`, or for an OOD run
    /// varying one tower, that tower at `flip` and the other at [`OOD_TRAIN_FLIP`].
    fn model(&self, flip: f64, seed: u64) -> Result<Jghm> {
        let (image, text) = self.o.vary.tower_flips(flip);
        self.o.family.model(image, text, seed)
    }

    /// Adds a finished point's rows (logged) and rewrites the result file. Rows of a family other
    /// than the standard one, or of one varied tower, say so at the start of their note.
    fn add(&mut self, rows: Vec<Row>) -> Result<()> {
        let mut rows = rows;
        let mut label = vec![];
        if self.o.family != Family::Standard {
            label.push(format!("family {}", self.o.family.name()));
        }
        if self.o.vary != Vary::Both {
            let fixed = if self.o.vary == Vary::Image { "text" } else { "image" };
            label.push(format!("{} flip varied with the {fixed} flip fixed at {OOD_TRAIN_FLIP}", self.o.vary.name()));
        }
        if !label.is_empty() {
            for r in &mut rows {
                r.note = format!("{}; {}", label.join("; "), r.note);
            }
        }
        for r in &rows {
            (self.log)(&format!(
                "  {:<10} {:<16} ε = {:<5} seed {}: risk {:.5} ± {:.5}{}",
                r.task,
                r.model,
                r.flip,
                r.seed,
                r.risk,
                r.stderr,
                r.excess_risk
                    .map_or(String::new(), |e| format!(", excess {e:.5} ± {:.5}", r.excess_stderr.unwrap_or(0.0)))
            ));
        }
        Ok(self.sink.extend(rows)?)
    }

    /// Trains `class` on `model` (of the flip `flip`). A run fixed by steps checkpoints its
    /// trainings in [`Points::checkpoints`] and continues from there when resumed.
    fn train(&mut self, model: &Jghm, class: LearnedClass, flip: f64, seed: u64) -> Result<LearnedModels> {
        let o = self.o;
        let m = match o.steps {
            Some(steps) => {
                std::fs::create_dir_all(&self.checkpoints).map_err(|e| {
                    ExperimentError::Train(format!("cannot create {}: {e}", self.checkpoints.display()))
                })?;
                let saved = Checkpoints {
                    stem: self.checkpoints.join(format!("{}-flip{flip}-seed{seed}", class.name())),
                    deadline: o.stop_after_seconds.map(|s| self.started + std::time::Duration::from_secs_f64(s)),
                };
                let clip =
                    if class == LearnedClass::Joint { String::new() } else { format!("{} CLIP steps, ", steps.clip) };
                (self.log)(&format!(
                    "training {} ({clip}{} and {} head steps) ...",
                    class.name(),
                    steps.denoiser,
                    steps.next_token
                ));
                let plan = Plan::new(class, o.quick, &o.protocol);
                train_learned_steps(model, &plan, steps, seed, Some(&saved))
            }
            None => {
                (self.log)(&format!("training {} (budget {:.0} s) ...", class.name(), o.budget_seconds));
                let budget = Budget { seconds: o.budget_seconds, quick: o.quick };
                train_learned(model, class, &budget, &o.protocol, seed)
            }
        }
        .map_err(ExperimentError::Train)?;
        (self.log)(&format!("  {}", m.describe()));
        Ok(m)
    }

    fn risks_seed(&mut self, flips: &[f64], seed: u64) -> Result<()> {
        let (s, o) = (self.s, self.o);
        for &flip in flips {
            let model = self.model(flip, seed)?;
            if !self.done("bayes", flip, seed) {
                (self.log)(&format!("ε = {flip}, seed {seed}: Bayes"));
                self.add(point(&model, flip, seed, &Predictor::Bayes, s)?)?;
            }
            let classes: &[LearnedClass] = if o.bayes_only { &[] } else { &o.classes };
            for &class in classes {
                if self.done(class.name(), flip, seed) {
                    continue;
                }
                let m = self.train(&model, class, flip, train_seed(seed))?;
                self.add(point(&model, flip, seed, &learned(&m, class, None), s)?)?;
            }
            self.flip_done();
        }
        Ok(())
    }

    fn ood_seed(&mut self, flips: &[f64], seed: u64) -> Result<()> {
        let s = self.s;
        let home = self.o.family.model(OOD_TRAIN_FLIP, OOD_TRAIN_FLIP, seed)?;
        let classes: Vec<LearnedClass> = if self.o.bayes_only { vec![] } else { self.o.classes.clone() };
        let mut trained: Vec<(LearnedClass, LearnedModels)> = vec![];
        for &flip in flips {
            let model = self.model(flip, seed)?;
            let wrong = Predictor::Misspecified(&home, OOD_TRAIN_FLIP);
            match (self.done("bayes", flip, seed), self.done("misspecified-bp", flip, seed)) {
                (false, false) => {
                    (self.log)(&format!("ε = {flip}, seed {seed}: Bayes and BP of the ε = {OOD_TRAIN_FLIP} model"));
                    self.add(point_with_bayes(&model, flip, seed, &wrong, s)?)?;
                }
                (false, true) => {
                    (self.log)(&format!("ε = {flip}, seed {seed}: Bayes"));
                    self.add(point(&model, flip, seed, &Predictor::Bayes, s)?)?;
                }
                (true, false) => {
                    (self.log)(&format!("ε = {flip}, seed {seed}: BP of the ε = {OOD_TRAIN_FLIP} model"));
                    self.add(point(&model, flip, seed, &wrong, s)?)?;
                }
                (true, true) => {}
            }
            for &class in &classes {
                if self.done(class.name(), flip, seed) {
                    continue;
                }
                if !trained.iter().any(|(c, _)| *c == class) {
                    let m = self.train(&home, class, OOD_TRAIN_FLIP, train_seed(seed))?;
                    trained.push((class, m));
                }
                let m = &trained.iter().find(|(c, _)| *c == class).expect("trained").1;
                self.add(point(&model, flip, seed, &learned(m, class, Some(OOD_TRAIN_FLIP)), s)?)?;
            }
            self.flip_done();
        }
        Ok(())
    }

    fn prompts_seed(&mut self, flips: &[f64], seed: u64) -> Result<()> {
        let (s, o) = (self.s, self.o);
        let ms = &o.prompts;
        for &flip in flips {
            let model = self.model(flip, seed)?;
            if !self.done("pmi", flip, seed) {
                (self.log)(&format!("ε = {flip}, seed {seed}: the exact score (PMI) with M prompts"));
                let pmi = Pmi { model: &model };
                let note = "the exact score PMI(x, y) by BP".to_string();
                self.add(prompts_point(&model, flip, seed, &[("pmi", &pmi, note)], ms, s, true)?)?;
            }
            let classes: &[LearnedClass] = if o.bayes_only { &[] } else { &o.classes };
            // The joint class has no score, so no prompt classifier: it has no row here.
            for &class in classes.iter().filter(|c| **c != LearnedClass::Joint) {
                if self.done(class.name(), flip, seed) {
                    continue;
                }
                let m = self.train(&model, class, flip, train_seed(seed))?;
                let score = m.score().expect("every class but the joint one has a score");
                let scores = [(class.name(), score, m.describe())];
                self.add(prompts_point(&model, flip, seed, &scores, ms, s, false)?)?;
            }
            self.flip_done();
        }
        Ok(())
    }
}

/// The rows as a table, one line each (header first, every line ending in a newline).
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<10} {:<16} {:>5} {:>4} {:>5} {:>11} {:>9} {:>11} {:>9}  below-Bayes\n",
        "task", "model", "flip", "seed", "M", "risk", "stderr", "excess", "stderr"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<10} {:<16} {:>5} {:>4} {:>5} {:>11.5} {:>9.5} {:>11} {:>9}  {}\n",
            r.task,
            r.model,
            r.flip,
            r.seed,
            r.prompts.map_or("-".into(), |m| m.to_string()),
            r.risk,
            r.stderr,
            r.excess_risk.map_or("-".into(), |e| format!("{e:.5}")),
            r.excess_stderr.map_or("-".into(), |e| format!("{e:.5}")),
            match r.below_bayes_flag {
                Some(true) => "FLAG: estimation error",
                Some(false) => "no",
                None => "-",
            }
        ));
    }
    out
}
