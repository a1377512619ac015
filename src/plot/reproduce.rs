//! The figures of `jghm reproduce`, built from result rows (never from live runs) as generic
//! [`Figure`]s: the four risks against the flip (the paper's Fig. 2, one panel per task), the
//! out-of-distribution risks (Figs. 8-9), and the zero-shot risk against the number of prompts
//! with the `a + b/M` fits (Figs. 5-6).

use std::collections::BTreeMap;

use super::{draw, draw_grid, Figure, PlotError, Series};
use crate::reproduce::experiments::{fit_prompts, Family, Row, OOD_TRAIN_FLIP};
use crate::reproduce::published::published_bayes;
use crate::reproduce::risks::Task;
use crate::reproduce::run::{Figure as Which, Options, Outcome, Vary};

/// Palette index of a predictor (Bayes and the exact score are black).
fn color(model: &str) -> usize {
    match model {
        "standard" => 1,
        "shallow" => 2,
        "guided" => 3,
        "misspecified-bp" => 4,
        "pmi" => 0,
        _ => 6,
    }
}

/// The predictors present, Bayes first.
fn models(rows: &[Row]) -> Vec<String> {
    let order = ["bayes", "misspecified-bp", "pmi", "standard", "shallow", "guided"];
    let mut out: Vec<String> =
        order.iter().filter(|m| rows.iter().any(|r| r.model == **m)).map(|m| m.to_string()).collect();
    for r in rows {
        if !out.contains(&r.model) {
            out.push(r.model.clone());
        }
    }
    out
}

fn task_title(task: Task) -> &'static str {
    match task {
        Task::Clip => "CLIP: ℓ₄(X→Y) + ℓ₄(Y→X)",
        Task::ZeroShot => "zero-shot (first text token)",
        Task::Denoise => "denoising (σ = 1, sum over 81 leaves)",
        Task::Vlm => "vision-language (positions 2..81)",
    }
}

fn y_label(task: Task) -> &'static str {
    match task {
        Task::Denoise => "squared error",
        _ => "nats",
    }
}

/// Per flip: the mean over model seeds, with bars ±1.96 s.e. (one seed; the Monte Carlo
/// interval) or the range over seeds (several seeds: the spread of the models).
fn over_seeds(rows: &[&Row]) -> Vec<(f64, f64, (f64, f64))> {
    let mut by: BTreeMap<u64, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        by.entry(r.flip.to_bits()).or_default().push(r);
    }
    let mut out: Vec<_> = by
        .into_values()
        .map(|rs| {
            let mean = rs.iter().map(|r| r.risk).sum::<f64>() / rs.len() as f64;
            let bar = if rs.len() == 1 {
                (mean - 1.96 * rs[0].stderr, mean + 1.96 * rs[0].stderr)
            } else {
                let lo = rs.iter().map(|r| r.risk).fold(f64::INFINITY, f64::min);
                (lo, rs.iter().map(|r| r.risk).fold(f64::NEG_INFINITY, f64::max))
            };
            (rs[0].flip, mean, bar)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn seeds_note(rows: &[Row]) -> String {
    let mut seeds: Vec<u64> = rows.iter().map(|r| r.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    if seeds.len() == 1 {
        format!("model seed {}; bars ±1.96 s.e.", seeds[0])
    } else {
        format!("mean over {} model seeds; bars: range over seeds", seeds.len())
    }
}

/// One panel per task: risk against the flip of the data, one series per predictor.
pub fn risk_panels(rows: &[Row], title: &str, budget: &str) -> Vec<Figure> {
    Task::ALL
        .into_iter()
        .map(|task| {
            let of_task: Vec<&Row> = rows.iter().filter(|r| r.task == task.key()).collect();
            let mut fig = Figure::new(
                format!("{title}: {}", task_title(task)),
                format!("flip ε of the data model ({})", seeds_note(rows)),
                format!("risk ({})", y_label(task)),
                false,
                false,
            );
            for model in models(rows) {
                let mine: Vec<&Row> = of_task.iter().copied().filter(|r| r.model == model).collect();
                if mine.is_empty() {
                    continue;
                }
                let stats = over_seeds(&mine);
                let label = match model.as_str() {
                    "bayes" => "Bayes (exact BP)".to_string(),
                    "misspecified-bp" => "BP of the ε = 0.2 model (mis-specified)".to_string(),
                    m => format!("{m} ({budget})"),
                };
                fig.series.push(
                    Series::line(label, stats.iter().map(|s| (s.0, s.1)).collect())
                        .with_errors(stats.iter().map(|s| s.2).collect())
                        .with_color(color(&model)),
                );
            }
            fig
        })
        .collect()
}

/// Adds to each task's panel (in the order of [`Task::ALL`]) the paper's published Bayes values
/// at the run's flips that have one ([`published_bayes`]), as points.
pub fn add_published(panels: &mut [Figure], flips: &[f64]) {
    for (panel, task) in panels.iter_mut().zip(Task::ALL) {
        let points: Vec<(f64, f64)> =
            flips.iter().filter_map(|&flip| published_bayes(task, flip).map(|v| (flip, v))).collect();
        if !points.is_empty() {
            panel
                .series
                .push(Series::points("the paper's published Bayes value (its own Monte Carlo)", points).with_color(4));
        }
    }
}

/// Zero-shot risk against `M` (log axis) for each score, its fit `a + b/M` dashed, and the
/// Bayes risk; a learned score's legend states its training `budget`. Returns the figure and
/// the fits `(model, a, b, rms)` (seed-averaged points).
pub fn prompts_figure(rows: &[Row], flip: f64, budget: &str) -> (Figure, Vec<(String, f64, f64, f64)>) {
    let mut fig = Figure::new(
        format!("Zero-shot risk against the number of prompts M per class (ε = {flip}); dashed: a + b/M"),
        format!("prompts per class M ({})", seeds_note(rows)),
        "zero-shot risk (nats)",
        true,
        false,
    );
    let mut fits = vec![];
    let ms: Vec<usize> = {
        let mut v: Vec<usize> = rows.iter().filter_map(|r| r.prompts).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let (lo, hi) = (ms.first().copied().unwrap_or(1) as f64, ms.last().copied().unwrap_or(1) as f64);
    for model in models(rows) {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.model == model && r.prompts.is_some()).collect();
        if mine.is_empty() {
            continue;
        }
        let points: Vec<(usize, f64, f64)> = ms
            .iter()
            .filter_map(|&m| {
                let rs: Vec<&&Row> = mine.iter().filter(|r| r.prompts == Some(m)).collect();
                (!rs.is_empty()).then(|| {
                    let n = rs.len() as f64;
                    let mean = rs.iter().map(|r| r.risk).sum::<f64>() / n;
                    let se = (rs.iter().map(|r| r.stderr.powi(2)).sum::<f64>()).sqrt() / n;
                    (m, mean, se)
                })
            })
            .collect();
        let fit = fit_prompts(&points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>());
        let name = if model == "pmi" { model.clone() } else { format!("{model} ({budget})") };
        let label = match fit {
            Some(f) => format!("{name}: a = {:.4}, b = {:.4}", f.a, f.b),
            None => name,
        };
        fig.series.push(
            Series::line(label, points.iter().map(|p| (p.0 as f64, p.1)).collect())
                .with_errors(points.iter().map(|p| (p.1 - 1.96 * p.2, p.1 + 1.96 * p.2)).collect())
                .with_color(color(&model)),
        );
        if let Some(f) = fit {
            let grid: Vec<(f64, f64)> =
                (0..=40).map(|i| lo * (hi / lo).powf(i as f64 / 40.0)).map(|m| (m, f.a + f.b / m)).collect();
            fig.series.push(Series::dashed("", grid).with_color(color(&model)));
            fits.push((model.clone(), f.a, f.b, f.rms));
        }
    }
    let bayes: Vec<&Row> = rows.iter().filter(|r| r.model == "bayes").collect();
    if !bayes.is_empty() {
        let b = bayes.iter().map(|r| r.risk).sum::<f64>() / bayes.len() as f64;
        fig.series.push(Series::dashed(format!("Bayes p(y₁ | x) by BP: {b:.4}"), vec![(lo, b), (hi, b)]).with_color(6));
    }
    (fig, fits)
}

/// The `a + b/M` fits of the prompts figure: `(label, a, b, rms residual)`.
pub type PromptFits = Vec<(String, f64, f64, f64)>;

/// `base`, followed by the family when it is not the standard one: `Risk (paper family)`.
fn titled(base: &str, o: &Options) -> String {
    match o.family {
        Family::Standard => base.to_string(),
        _ => format!("{base} ({} family)", o.family.name()),
    }
}

fn budget_note(o: &Options) -> String {
    let vary = match o.vary {
        Vary::Both => String::new(),
        Vary::Image => format!(", text flip fixed at {OOD_TRAIN_FLIP}"),
        Vary::Text => format!(", image flip fixed at {OOD_TRAIN_FLIP}"),
    };
    let quick = if o.quick { ", quick" } else { "" };
    format!("{} family{vary}, budget {:.0} s{quick}", o.family.name(), o.budget_seconds)
}

/// Draws the figure of a finished run into `o.out` (`<figure>.{svg,png}`; the prompts figure
/// once per flip when there are several) and returns the prompts figure's fits.
pub fn draw_figures(which: Which, o: &Options, run: &Outcome) -> Result<PromptFits, PlotError> {
    let (rows, flips) = (&run.rows, &run.flips);
    let stem = o.out.join(which.name());
    match which {
        Which::Risks => {
            let mut panels = risk_panels(rows, &titled("Risk", o), &budget_note(o));
            if o.family == Family::Paper && o.vary == Vary::Both {
                add_published(&mut panels, flips);
            }
            draw_grid(&panels, 2, &stem)?;
            Ok(vec![])
        }
        Which::Ood => {
            let title = titled(&format!("OOD (built at ε = {OOD_TRAIN_FLIP})"), o);
            draw_grid(&risk_panels(rows, &title, &budget_note(o)), 2, &stem)?;
            Ok(vec![])
        }
        Which::Prompts => {
            let mut all = vec![];
            for &flip in flips {
                let mine: Vec<Row> = rows.iter().filter(|r| r.flip == flip).cloned().collect();
                let (fig, fits) = prompts_figure(&mine, flip, &budget_note(o));
                let name = if flips.len() == 1 { stem.clone() } else { o.out.join(format!("prompts-{flip}")) };
                draw(&fig, &name)?;
                all.extend(fits.into_iter().map(|(m, a, b, r)| (format!("{m} ε = {flip}"), a, b, r)));
            }
            Ok(all)
        }
    }
}
