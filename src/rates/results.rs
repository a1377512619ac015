//! `results.csv`: one row per finished run of a sweep, rewritten whole and atomically after
//! every run (so an interrupted sweep keeps its finished runs), read back by `--resume` and by
//! `jghm plot`. The file goes through [`crate::runs`] (serde and `csv`); its numbers keep
//! Rust's `Display` format.

use serde::{Deserialize, Serialize};

use super::measure::Figures;
use crate::learn::Class;
use crate::runs::{format::display, BadField, CsvRow};

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

/// Parses a class name as written in the CSV and on the command line.
pub fn parse_class(s: &str) -> Option<Class> {
    Class::from_name(s.trim())
}

/// A line of `results.csv`, in the file's column order.
#[derive(Serialize, Deserialize)]
pub struct RunRecord {
    class: String,
    n: usize,
    seed: usize,
    run_seed: u64,
    steps: usize,
    best_step: usize,
    stopped: String,
    #[serde(serialize_with = "display")]
    held_out_loss: f64,
    #[serde(serialize_with = "display")]
    seconds: f64,
    #[serde(serialize_with = "display")]
    excess_risk: f64,
    #[serde(serialize_with = "display")]
    excess_image_to_text: f64,
    #[serde(serialize_with = "display")]
    excess_text_to_image: f64,
    #[serde(serialize_with = "display")]
    zero_shot_accuracy: f64,
    #[serde(serialize_with = "display")]
    exact_score_accuracy: f64,
    #[serde(serialize_with = "display")]
    bayes_accuracy: f64,
    #[serde(serialize_with = "display")]
    zero_shot_excess_risk: f64,
}

impl CsvRow for Row {
    type Record = RunRecord;
    const HEADER: &'static [&'static str] = &[
        "class",
        "n",
        "seed",
        "run_seed",
        "steps",
        "best_step",
        "stopped",
        "held_out_loss",
        "seconds",
        "excess_risk",
        "excess_image_to_text",
        "excess_text_to_image",
        "zero_shot_accuracy",
        "exact_score_accuracy",
        "bayes_accuracy",
        "zero_shot_excess_risk",
    ];
    const WHAT: &'static str = "a results file of `jghm rates`";

    fn to_record(&self) -> RunRecord {
        let f = &self.figures;
        RunRecord {
            class: self.class.name().into(),
            n: self.n,
            seed: self.seed,
            run_seed: self.run_seed,
            steps: self.steps,
            best_step: self.best_step,
            stopped: self.stopped.clone(),
            held_out_loss: self.held_out_loss,
            seconds: self.seconds,
            excess_risk: f.excess_risk,
            excess_image_to_text: f.excess_image_to_text,
            excess_text_to_image: f.excess_text_to_image,
            zero_shot_accuracy: f.zero_shot_accuracy,
            exact_score_accuracy: f.exact_score_accuracy,
            bayes_accuracy: f.bayes_accuracy,
            zero_shot_excess_risk: f.zero_shot_excess_risk,
        }
    }

    fn from_record(r: RunRecord) -> Result<Row, BadField> {
        let class = parse_class(&r.class).ok_or_else(|| BadField {
            field: "class",
            problem: format!("unknown class '{}' (transformer, bp or mlp)", r.class),
        })?;
        Ok(Row {
            class,
            n: r.n,
            seed: r.seed,
            run_seed: r.run_seed,
            steps: r.steps,
            best_step: r.best_step,
            stopped: r.stopped,
            held_out_loss: r.held_out_loss,
            seconds: r.seconds,
            figures: Figures {
                excess_risk: r.excess_risk,
                excess_image_to_text: r.excess_image_to_text,
                excess_text_to_image: r.excess_text_to_image,
                zero_shot_accuracy: r.zero_shot_accuracy,
                exact_score_accuracy: r.exact_score_accuracy,
                bayes_accuracy: r.bayes_accuracy,
                zero_shot_excess_risk: r.zero_shot_excess_risk,
            },
        })
    }
}

/// Writes every row (header first) to `path`, atomically.
pub fn write(path: &std::path::Path, rows: &[Row]) -> Result<(), crate::runs::RunDirError> {
    crate::runs::write_csv(path, rows)
}

/// Reads `path`; the error names the file, the line and the field.
pub fn read(path: &std::path::Path) -> Result<Vec<Row>, crate::runs::RunDirError> {
    crate::runs::read_csv(path)
}
