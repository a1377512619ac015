//! The width sweep of the BP transformer (T11): at each MLP width, the error against BP and the
//! emulated pair plugged in as a contrastive score next to the exact PMI, written row by row to
//! `emulation.csv` (rate plot (e) of [`crate::plot::emulation`] is drawn from it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{BpTransformer, BuildError, EmulatedScore, EmulationError, Nonlinearity};
use crate::downstream::DownstreamError;
use crate::eval::{evaluate, EvalSpec};
use crate::files::write_atomic;
use crate::learn::checkpoint::sha256_hex;
use crate::model::{Jghm, Part};
use crate::runs::{format::display, format::exponent, BadField, CsvRow, RunDirError, Sink};
use crate::runs::{merge_rows, read_shards, with_shard, MergeError, RunDir, Shard};
use crate::sample::sample_pairs;

/// One width of an emulation sweep: the error against BP, and the emulator pair plugged in as a
/// contrastive score next to the exact PMI.
#[derive(Clone, Debug, Serialize)]
pub struct SweepRow {
    pub width: usize,
    pub parameters: usize,
    pub layers: usize,
    pub max_abs_error: f64,
    pub mean_abs_error: f64,
    pub excess_risk: f64,
    pub excess_risk_stderr: f64,
    pub zero_shot_accuracy: f64,
    /// The binomial standard error of `zero_shot_accuracy`, `√(a (1 − a) / n)` over the `n` test
    /// images.
    pub zero_shot_accuracy_stderr: f64,
    pub oracle_zero_shot_accuracy: f64,
    pub bayes_accuracy: f64,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Eval(#[from] DownstreamError),
    #[error(transparent)]
    Files(#[from] RunDirError),
    #[error("width {width} gave a non-finite error or risk; widths below 4 are too coarse for this model")]
    NotFinite { width: usize },
    #[error("the emulator's output is not finite on some input (widths below 2 or extreme models)")]
    NotFiniteOutput,
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error("merge: invalid settings '{}'", path.display())]
    Settings { path: PathBuf, source: serde_json::Error },
}

/// The transformer of one tower and its error against BP on `samples` sampled inputs of that
/// tower (drawn with `seed`).
pub fn measure(
    model: &Jghm,
    part: Part,
    nonlinearity: Nonlinearity,
    samples: usize,
    seed: u64,
) -> Result<(BpTransformer, EmulationError), SweepError> {
    let net = BpTransformer::new(model, part, nonlinearity)?;
    let inputs: Vec<Vec<usize>> = sample_pairs(model, samples, seed, false)
        .into_iter()
        .map(|p| if part == Part::Image { p.image } else { p.text })
        .collect();
    let err = net.error_against_bp(model, &inputs);
    if !all_finite(&[err.max_abs_error, err.mean_abs_error]) {
        return Err(SweepError::NotFiniteOutput);
    }
    Ok((net, err))
}

/// The file of a sweep in its folder.
pub const FILE: &str = "emulation.csv";

/// The settings file of a sweep in its folder: the widths, every size and seed of the
/// measurement, the SHA-256 of the model's JSON, and the shard of a sharded sweep.
pub const SETTINGS_FILE: &str = "emulation-settings.json";

/// The settings of a sweep, as [`SETTINGS_FILE`] holds them (with the shard, if any).
pub fn settings(model: &Jghm, widths: &[usize], inputs: usize, spec: &EvalSpec, shard: Option<Shard>) -> Value {
    with_shard(
        json!({
            "widths": widths,
            "inputs": inputs,
            "eval_samples": spec.samples,
            "zero_shot_images": spec.zero_shot_images,
            "prompts": spec.prompts,
            "grid": spec.grid,
            "seed": spec.seed,
            "model_sha256": sha256_hex(model.to_json().as_bytes()),
        }),
        shard,
    )
}

/// Measures the emulator at width `width`: error on the image samples `xs`, then the
/// large-batch excess risk and zero-shot accuracy of the emulated pair by [`evaluate`].
pub fn measure_width(model: &Jghm, width: usize, xs: &[Vec<usize>], spec: &EvalSpec) -> Result<SweepRow, SweepError> {
    let score = EmulatedScore::new(model, Nonlinearity::Relu { width })?;
    let err = score.image.error_against_bp(model, xs);
    let report = evaluate(model, &score, spec)?;
    Ok(SweepRow {
        width,
        parameters: score.image.parameters() + score.text.parameters(),
        layers: err.layers,
        max_abs_error: err.max_abs_error,
        mean_abs_error: err.mean_abs_error,
        excess_risk: report.excess_risk,
        excess_risk_stderr: report.excess_risk_stderr,
        zero_shot_accuracy: report.zero_shot_accuracy,
        zero_shot_accuracy_stderr: binomial_stderr(report.zero_shot_accuracy, spec.zero_shot_images),
        oracle_zero_shot_accuracy: report.oracle_zero_shot_accuracy,
        bayes_accuracy: report.bayes_accuracy,
    })
}

/// Whether every figure is a number: one NaN or infinity anywhere makes a row unfit to report
/// (a maximum over errors can stay finite while their mean is NaN, so each is checked).
fn all_finite(figures: &[f64]) -> bool {
    figures.iter().all(|x| x.is_finite())
}

/// `√(a (1 − a) / n)`: the standard error of a fraction `a` of `n` independent trials.
fn binomial_stderr(a: f64, n: usize) -> f64 {
    (a * (1.0 - a) / n as f64).sqrt()
}

/// Measures every width (the same `inputs` image samples and evaluation draws for each: common
/// random numbers, so differences between widths are not noise, and a width's row does not
/// depend on the others) and writes `dir/emulation.csv` after each; refuses a non-finite row
/// before writing it. With `shard`, only that shard's widths (width `i` of the list is unit
/// `i`, [`Shard`]). Writes [`SETTINGS_FILE`] first. `progress` sees each finished row.
pub fn run_sweep(
    model: &Jghm,
    widths: &[usize],
    inputs: usize,
    spec: &EvalSpec,
    dir: &Path,
    shard: Option<Shard>,
    progress: &mut dyn FnMut(&SweepRow),
) -> Result<Vec<SweepRow>, SweepError> {
    std::fs::create_dir_all(dir).map_err(|source| RunDirError::CreateDir { path: dir.to_path_buf(), source })?;
    let meta = settings(model, widths, inputs, spec, shard);
    write_atomic(&dir.join(SETTINGS_FILE), format!("{meta:#}\n").as_bytes()).map_err(RunDirError::from)?;
    let widths = Shard::select_opt(shard, widths.to_vec());
    let xs: Vec<Vec<usize>> = sample_pairs(model, inputs, crate::rng::Purpose::EmulationInputs.seed(spec.seed), false)
        .into_iter()
        .map(|p| p.image)
        .collect();
    let mut sink = Sink::fresh(&dir.join(FILE));
    sink.flush()?;
    for width in widths {
        let row = measure_width(model, width, &xs, spec)?;
        if !all_finite(&[
            row.max_abs_error,
            row.mean_abs_error,
            row.excess_risk,
            row.excess_risk_stderr,
            row.zero_shot_accuracy,
        ]) {
            return Err(SweepError::NotFinite { width });
        }
        progress(&row);
        sink.extend([row])?;
    }
    Ok(sink.into_rows())
}

/// `jghm merge` of an emulation sweep: checks that `dirs` hold the shards `1/N ..= N/N` of one
/// sweep ([`read_shards`]), each finished, and writes `out` as the unsharded sweep writes it:
/// [`SETTINGS_FILE`] (without the shard) and `emulation.csv`, the rows in the order of the
/// widths, byte for byte. The caller draws rate plot (e) from the rows.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Vec<SweepRow>, SweepError> {
    let shards = read_shards(dirs, SETTINGS_FILE)?;
    let meta = shards[0].settings.clone();
    let widths: Vec<usize> = serde_json::from_value(meta.get("widths").cloned().unwrap_or(Value::Null))
        .map_err(|source| SweepError::Settings { path: shards[0].dir.join(SETTINGS_FILE), source })?;
    let mut inputs = vec![];
    for s in &shards {
        let path = s.dir.join(FILE);
        let rows = read(&path)?;
        let expected = s.shard.select(widths.clone()).len();
        if rows.len() < expected {
            return Err(MergeError::Unfinished {
                dir: s.dir.clone(),
                shard: s.shard,
                rows: rows.len(),
                expected,
                what: "widths",
            }
            .into());
        }
        inputs.push((s.shard, path, rows));
    }
    // The j-th row of shard K is unit K - 1 + j N, whose width it must be.
    let rows = merge_rows(inputs, |shard, j, r: &SweepRow| {
        let unit = shard.index - 1 + j * shard.count;
        (widths.get(unit) == Some(&r.width)).then_some(unit)
    })?;
    let mut sink =
        RunDir::new(out, "sweep", SETTINGS_FILE, FILE).start::<SweepRow>(&meta, false, &|_| String::new())?;
    sink.extend(rows)?;
    Ok(sink.into_rows())
}

/// The rows as a table, one line each (header first, every line ending in a newline).
pub fn table(rows: &[SweepRow]) -> String {
    let mut out = format!(
        "{:>8} {:>12} {:>11} {:>11} {:>18} {:>9} {:>9} {:>9}\n",
        "width", "parameters", "max err", "mean err", "excess risk", "zero-shot", "PMI", "Bayes"
    );
    for r in rows {
        out.push_str(&format!(
            "{:>8} {:>12} {:>11.3e} {:>11.3e} {:>9.5} ± {:<6.5} {:>9.4} {:>9.4} {:>9.4}\n",
            r.width,
            r.parameters,
            r.max_abs_error,
            r.mean_abs_error,
            r.excess_risk,
            r.excess_risk_stderr,
            r.zero_shot_accuracy,
            r.oracle_zero_shot_accuracy,
            r.bayes_accuracy
        ));
    }
    out
}

/// Reads `dir/emulation.csv` (for `jghm plot`).
pub fn read(path: &Path) -> Result<Vec<SweepRow>, RunDirError> {
    crate::runs::read_csv(path)
}

/// A line of `emulation.csv`: errors and risks in `LowerExp` (`{:e}`), accuracies in `Display`.
#[derive(Serialize, Deserialize)]
pub struct SweepRecord {
    width: usize,
    parameters: usize,
    layers: usize,
    #[serde(serialize_with = "exponent")]
    max_abs_error: f64,
    #[serde(serialize_with = "exponent")]
    mean_abs_error: f64,
    #[serde(serialize_with = "exponent")]
    excess_risk: f64,
    #[serde(serialize_with = "exponent")]
    excess_risk_stderr: f64,
    #[serde(serialize_with = "display")]
    zero_shot_accuracy: f64,
    #[serde(serialize_with = "exponent")]
    zero_shot_accuracy_stderr: f64,
    #[serde(serialize_with = "display")]
    oracle_zero_shot_accuracy: f64,
    #[serde(serialize_with = "display")]
    bayes_accuracy: f64,
}

impl CsvRow for SweepRow {
    type Record = SweepRecord;
    const HEADER: &'static [&'static str] = &[
        "width",
        "parameters",
        "layers",
        "max_abs_error",
        "mean_abs_error",
        "excess_risk",
        "excess_risk_stderr",
        "zero_shot_accuracy",
        "zero_shot_accuracy_stderr",
        "oracle_zero_shot_accuracy",
        "bayes_accuracy",
    ];
    const WHAT: &'static str = "an emulation sweep of `jghm emulate`";

    fn to_record(&self) -> SweepRecord {
        SweepRecord {
            width: self.width,
            parameters: self.parameters,
            layers: self.layers,
            max_abs_error: self.max_abs_error,
            mean_abs_error: self.mean_abs_error,
            excess_risk: self.excess_risk,
            excess_risk_stderr: self.excess_risk_stderr,
            zero_shot_accuracy: self.zero_shot_accuracy,
            zero_shot_accuracy_stderr: self.zero_shot_accuracy_stderr,
            oracle_zero_shot_accuracy: self.oracle_zero_shot_accuracy,
            bayes_accuracy: self.bayes_accuracy,
        }
    }

    fn from_record(r: SweepRecord) -> Result<SweepRow, BadField> {
        Ok(SweepRow {
            width: r.width,
            parameters: r.parameters,
            layers: r.layers,
            max_abs_error: r.max_abs_error,
            mean_abs_error: r.mean_abs_error,
            excess_risk: r.excess_risk,
            excess_risk_stderr: r.excess_risk_stderr,
            zero_shot_accuracy: r.zero_shot_accuracy,
            zero_shot_accuracy_stderr: r.zero_shot_accuracy_stderr,
            oracle_zero_shot_accuracy: r.oracle_zero_shot_accuracy,
            bayes_accuracy: r.bayes_accuracy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_any_non_finite_figure_is_refused() {
        assert!(all_finite(&[]));
        assert!(all_finite(&[0.0, -1.5, 1e300]));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(!all_finite(&[bad, 1.0]), "{bad} first");
            assert!(!all_finite(&[1.0, bad]), "{bad} last");
            assert!(!all_finite(&[1.0, bad, 2.0]), "{bad} between");
        }
    }

    #[test]
    fn binomial_stderr_is_root_a_one_minus_a_over_n() {
        assert_eq!(binomial_stderr(0.25, 12), (0.25f64 * 0.75 / 12.0).sqrt());
        assert_eq!(binomial_stderr(1.0, 7), 0.0);
        assert_eq!(binomial_stderr(0.0, 7), 0.0);
    }
}
