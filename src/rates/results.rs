//! `results.csv`: one row per finished run of a sweep, rewritten whole and atomically after
//! every run (so an interrupted sweep keeps its finished runs), read back by `--resume` and by
//! `jghm plot`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::measure::Figures;
use crate::files::write_atomic;
use crate::learn::Class;

/// One finished run: what was trained, how training ended, and its exact figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub class: Class,
    /// Pre-training pairs drawn (training part + held-out part).
    pub n: usize,
    /// Seed index `0..seeds` of the sweep.
    pub seed: usize,
    /// The run's own seed (parameters, data, batches), derived from the sweep seed.
    pub run_seed: u64,
    /// Steps taken, and the step whose parameters were kept (lowest held-out loss).
    pub steps: usize,
    pub best_step: usize,
    /// `early` (held-out loss stopped improving) or `budget` (all steps taken).
    pub stopped: String,
    pub held_out_loss: f64,
    pub seconds: f64,
    #[serde(flatten)]
    pub figures: Figures,
}

const HEADER: &str = "class,n,seed,run_seed,steps,best_step,stopped,held_out_loss,seconds,excess_risk,\
excess_image_to_text,excess_text_to_image,zero_shot_accuracy,exact_score_accuracy,bayes_accuracy,zero_shot_excess_risk";

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Transformer => "transformer",
        Class::Bp => "bp",
        Class::Mlp => "mlp",
    }
}

/// Parses a class name as written in the CSV and on the command line.
pub fn parse_class(s: &str) -> Option<Class> {
    match s.trim() {
        "transformer" => Some(Class::Transformer),
        "bp" => Some(Class::Bp),
        "mlp" => Some(Class::Mlp),
        _ => None,
    }
}

impl Row {
    fn to_csv(&self) -> String {
        let f = &self.figures;
        format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            class_name(self.class),
            self.n,
            self.seed,
            self.run_seed,
            self.steps,
            self.best_step,
            self.stopped,
            self.held_out_loss,
            self.seconds,
            f.excess_risk,
            f.excess_image_to_text,
            f.excess_text_to_image,
            f.zero_shot_accuracy,
            f.exact_score_accuracy,
            f.bayes_accuracy,
            f.zero_shot_excess_risk
        )
    }

    fn from_csv(line: &str) -> Option<Row> {
        let c: Vec<&str> = line.split(',').map(str::trim).collect();
        if c.len() != HEADER.split(',').count() {
            return None;
        }
        // Every figure of a finished run is finite (the sweep refuses others): NaN or inf is corruption.
        let num = |i: usize| c[i].parse::<f64>().ok().filter(|v| v.is_finite());
        Some(Row {
            class: parse_class(c[0])?,
            n: c[1].parse().ok()?,
            seed: c[2].parse().ok()?,
            run_seed: c[3].parse().ok()?,
            steps: c[4].parse().ok()?,
            best_step: c[5].parse().ok()?,
            stopped: c[6].to_string(),
            held_out_loss: num(7)?,
            seconds: num(8)?,
            figures: Figures {
                excess_risk: num(9)?,
                excess_image_to_text: num(10)?,
                excess_text_to_image: num(11)?,
                zero_shot_accuracy: num(12)?,
                exact_score_accuracy: num(13)?,
                bayes_accuracy: num(14)?,
                zero_shot_excess_risk: num(15)?,
            },
        })
    }
}

/// Writes every row (header first) to `path`, atomically.
pub fn write(path: &Path, rows: &[Row]) -> Result<()> {
    let mut text = format!("{HEADER}\n");
    for r in rows {
        text.push_str(&r.to_csv());
        text.push('\n');
    }
    Ok(write_atomic(path, text.as_bytes())?)
}

/// Reads `path`; the error names the file and the bad line.
pub fn read(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(HEADER) {
        bail!("'{}' is not a results file of `jghm rates` (unexpected header)", path.display());
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Row::from_csv(l).with_context(|| format!("'{}' line {}: malformed row", path.display(), i + 2)))
        .collect()
}
