//! Rate plot (e) of a sweep: the transformer that emulates BP (T11), measured against its width,
//! drawn from the rows of `emulation.csv`.

use std::path::Path;

use super::{draw, Figure, PlotError, Series};
use crate::emulate::SweepRow;

/// Rate plot (e): the error against the width (log-log) with the slope −2 of the
/// piecewise-linear interpolants; and the plugged-in pair's excess risk and zero-shot accuracy
/// against the width, next to the exact PMI's and Bayes's.
pub fn plot_sweep(rows: &[SweepRow], dir: &Path) -> Result<(), PlotError> {
    let pts = |f: &dyn Fn(&SweepRow) -> f64| rows.iter().map(|r| (r.width as f64, f(r))).collect::<Vec<_>>();
    let widths: Vec<f64> = rows.iter().map(|r| r.width as f64).collect();
    let mut reference = vec![];
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        // The W^-2 slope, anchored at the smallest width's mean error.
        let anchor = first.mean_abs_error;
        reference = [first.width, last.width]
            .iter()
            .map(|&w| (w as f64, anchor * (first.width as f64 / w as f64).powi(2)))
            .collect();
    }
    draw(
        &Figure {
            title: "Transformer emulating BP: error against MLP width".into(),
            x_label: "MLP width W (ReLU units per nonlinearity)".into(),
            y_label: "|log p̂(z|x) − log p(z|x)| (nats)".into(),
            x_log: true,
            y_log: true,
            series: vec![
                Series::line("max over samples and states", pts(&|r| r.max_abs_error)),
                Series::line("mean", pts(&|r| r.mean_abs_error)),
                Series::dashed("slope −2 (interpolation theory)", reference),
            ],
            x_ticks: widths.clone(),
        },
        &dir.join("emulation_error"),
    )?;
    let se = rows
        .iter()
        .map(|r| (r.excess_risk - 1.96 * r.excess_risk_stderr, r.excess_risk + 1.96 * r.excess_risk_stderr))
        .collect();
    draw(
        &Figure {
            title: "Emulated BP encoders plugged into the CLIP score".into(),
            x_label: "MLP width W".into(),
            y_label: "excess large-batch risk ℓ∞(Ŝ) − ℓ∞(PMI) (nats)".into(),
            x_log: true,
            y_log: false,
            series: vec![
                Series::line("emulated pair (95% interval)", pts(&|r| r.excess_risk)).with_errors(se),
                Series::dashed("exact PMI (0)", pts(&|_| 0.0)),
            ],
            x_ticks: widths.clone(),
        },
        &dir.join("emulation_excess_risk"),
    )?;
    draw(
        &Figure {
            title: "Zero-shot root-label accuracy of the emulated pair".into(),
            x_label: "MLP width W".into(),
            y_label: "accuracy (fraction of test images)".into(),
            x_log: true,
            y_log: false,
            series: vec![
                Series::band("Bayes (BP root posterior)", pts(&|r| r.bayes_accuracy)).with_color(6),
                Series::line("emulated pair (95% interval over the test images)", pts(&|r| r.zero_shot_accuracy))
                    .with_errors(
                        rows.iter()
                            .map(|r| {
                                let h = 1.96 * r.zero_shot_accuracy_stderr;
                                (r.zero_shot_accuracy - h, r.zero_shot_accuracy + h)
                            })
                            .collect(),
                    )
                    .with_color(0),
                Series::dashed("exact PMI, same prompts", pts(&|r| r.oracle_zero_shot_accuracy)).with_color(1),
            ],
            x_ticks: widths,
        },
        &dir.join("emulation_zero_shot"),
    )
}
