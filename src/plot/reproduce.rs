//! The figures of `jghm reproduce`, built from result rows (never from live runs) as generic
//! [`Figure`]s: the four risks against the flip (the paper's Fig. 2, one panel per task), the
//! out-of-distribution risks (Figs. 8-9), and the zero-shot risk against the number of prompts
//! with the `a + b/M` fits (Figs. 5-6).

use std::collections::BTreeMap;

use super::{draw, draw_grid, Figure, PlotError, Series};
use crate::reproduce::experiments::{fit_prompts, prompts_fit_from, Row, OOD_TRAIN_FLIP};
use crate::reproduce::published::published_bayes;
use crate::reproduce::risks::{Task, PAPER_RULE};
use crate::reproduce::run::{Figure as Which, Options, Outcome};

/// Palette index of a predictor (Bayes and the exact score are black); a score under the
/// paper's zero-shot rule takes the darker companion of its score's colour.
fn color(model: &str) -> usize {
    if let Some(base) = model.strip_suffix(PAPER_RULE) {
        return match color(base) {
            c @ 0..=3 => c + 7,
            c => c,
        };
    }
    match model {
        "standard" => 1,
        "shallow" => 2,
        "guided" => 3,
        "misspecified-bp" => 4,
        "joint" => 5,
        "pmi" => 0,
        _ => 6,
    }
}

/// The predictors present, Bayes first.
fn models(rows: &[Row]) -> Vec<String> {
    let order = ["bayes", "misspecified-bp", "pmi", "standard", "shallow", "guided", "joint"];
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

/// What a panel of [`task_panels`] plots against the flip.
#[derive(Clone, Copy, PartialEq)]
enum Quantity {
    Risk,
    /// Predictor minus Bayes, paired on the same samples.
    Excess,
}

/// One panel per task: the risk (or the excess risk over Bayes) against the flip of the data,
/// one series of markers per predictor that has one, at the measured flips only (a line would
/// imply values between them).
fn task_panels(rows: &[Row], title: &str, budget: &str, quantity: Quantity) -> Vec<Figure> {
    Task::ALL
        .into_iter()
        .map(|task| {
            let of_task: Vec<&Row> = rows.iter().filter(|r| r.task == task.key()).collect();
            let (name, axis) = match quantity {
                Quantity::Risk => ("", "risk"),
                Quantity::Excess => ("excess ", "excess risk over Bayes"),
            };
            // The excess row sits under the risk row, whose titles name the run.
            let heading = match quantity {
                Quantity::Risk => format!("{title}: {}", task_title(task)),
                Quantity::Excess => format!("{name}over Bayes: {}", task_title(task)),
            };
            let mut fig = Figure::new(
                heading,
                format!("flip ε of the data model ({})", seeds_note(rows)),
                format!("{axis} ({})", y_label(task)),
                false,
                false,
            );
            for model in models(rows) {
                let mine: Vec<&Row> = of_task.iter().copied().filter(|r| r.model == model).collect();
                let stats = match quantity {
                    Quantity::Risk => over_seeds(&mine),
                    Quantity::Excess => excess_over_seeds(&mine),
                };
                if stats.is_empty() {
                    continue;
                }
                let label = match model.as_str() {
                    "bayes" => "Bayes (exact BP)".to_string(),
                    "misspecified-bp" => "BP of the ε = 0.2 model (mis-specified)".to_string(),
                    m => format!("{m} ({budget})"),
                };
                fig.series.push(
                    Series::points(label, stats.iter().map(|s| (s.0, s.1)).collect())
                        .with_errors(stats.iter().map(|s| s.2).collect())
                        .with_color(color(&model)),
                );
            }
            fig
        })
        .collect()
}

/// One panel per task: risk against the flip of the data, one series per predictor.
pub fn risk_panels(rows: &[Row], title: &str, budget: &str) -> Vec<Figure> {
    task_panels(rows, title, budget, Quantity::Risk)
}

/// Per flip, the excess risks (predictor minus Bayes, paired) of [`over_seeds`]' rows: the
/// mean over seeds with bars ±1.96 paired s.e. (one seed) or the range over seeds.
fn excess_over_seeds(rows: &[&Row]) -> Vec<(f64, f64, (f64, f64))> {
    let as_risk: Vec<Row> = rows
        .iter()
        .filter_map(|r| {
            let excess = r.excess_risk?;
            Some(Row { risk: excess, stderr: r.excess_stderr.unwrap_or(0.0), ..(*r).clone() })
        })
        .collect();
    over_seeds(&as_risk.iter().collect::<Vec<_>>())
}

/// One panel per task: the excess risk over Bayes against the flip, one series per predictor
/// that has one (none for a Bayes-only run: then no panels).
pub fn excess_panels(rows: &[Row], title: &str, budget: &str) -> Vec<Figure> {
    if rows.iter().all(|r| r.excess_risk.is_none()) {
        return vec![];
    }
    task_panels(rows, title, budget, Quantity::Excess)
}

/// The risk panels, and below them the excess-risk panels when the run has any: a grid of 2
/// columns (risks only) or 4 (risks on the first row, excess risks on the second).
fn draw_risks_and_excess(
    mut panels: Vec<Figure>,
    excess: Vec<Figure>,
    stem: &std::path::Path,
) -> Result<(), PlotError> {
    let cols = if excess.is_empty() { 2 } else { 4 };
    panels.extend(excess);
    draw_grid(&panels, cols, stem)
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

/// Zero-shot risk against `M` (log axis) for each score, its least-squares fit `a + b/M` over
/// the tail `M ≥ prompts_fit_from(ms)` dashed over that tail only, and the Bayes risk; a learned
/// score's legend states its training `budget`. Returns the figure and the fits
/// `(model, a, b, rms, from)` (seed-averaged points).
pub fn prompts_figure(rows: &[Row], flip: f64, budget: &str) -> (Figure, PromptFits) {
    let mut fig = Figure::new(
        format!("Zero-shot risk against the number of prompts M per class (ε = {flip})"),
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
    let from = prompts_fit_from(&ms);
    fig.x_ticks = ms.iter().map(|&m| m as f64).collect();
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
        let fit = fit_prompts(&points.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(), from);
        let name = if model == "pmi" { model.clone() } else { format!("{model} ({budget})") };
        let label = match fit {
            Some(f) => format!("{name}; dashed: a + b/M over M ≥ {}, a = {:.4}, b = {:.4}", f.from, f.a, f.b),
            None => name,
        };
        // Markers and bars without a joining line, so that the dashed fit stays visible on them.
        fig.series.push(
            Series::points(label, points.iter().map(|p| (p.0 as f64, p.1)).collect())
                .with_errors(points.iter().map(|p| (p.1 - 1.96 * p.2, p.1 + 1.96 * p.2)).collect())
                .with_color(color(&model)),
        );
        if let Some(f) = fit {
            let start = f.from as f64;
            let grid: Vec<(f64, f64)> =
                (0..=40).map(|i| start * (hi / start).powf(i as f64 / 40.0)).map(|m| (m, f.a + f.b / m)).collect();
            fig.series.push(Series::dashed("", grid).with_color(color(&model)));
            fits.push((model.clone(), f.a, f.b, f.rms, f.from));
        }
    }
    let bayes: Vec<&Row> = rows.iter().filter(|r| r.model == "bayes").collect();
    if !bayes.is_empty() {
        let b = bayes.iter().map(|r| r.risk).sum::<f64>() / bayes.len() as f64;
        fig.series.push(Series::dashed(format!("Bayes p(y₁ | x) by BP: {b:.4}"), vec![(lo, b), (hi, b)]).with_color(6));
    }
    (fig, fits)
}

/// The `a + b/M` fits of the prompts figure: `(label, a, b, rms residual, smallest M fitted)`.
pub type PromptFits = Vec<(String, f64, f64, f64, usize)>;

/// What a run's rows say of the run in their notes, the only source of a figure's labels (so
/// that a figure redrawn from its CSV is the figure the run drew): the family when it is not the
/// standard one (`family paper; …`), the tower an OOD run varied (`image flip varied with the
/// text flip fixed at 0.2; …`), and the training budget of the learned rows.
struct RunLabels {
    family: Option<String>,
    varied: Option<String>,
    budget: String,
}

fn run_labels(rows: &[Row]) -> RunLabels {
    let parts: Vec<&str> = rows.first().map_or(vec![], |r| r.note.split("; ").collect());
    RunLabels {
        family: parts.iter().find_map(|p| p.strip_prefix("family ")).map(str::to_string),
        varied: parts.iter().find(|p| p.contains(" flip varied with the ")).map(|p| p.to_string()),
        budget: budget_of_notes(rows),
    }
}

impl RunLabels {
    /// `base`, followed by the family when it is not the standard one: `Risk (paper family)`.
    fn titled(&self, base: &str) -> String {
        match &self.family {
            Some(f) => format!("{base} ({f} family)"),
            None => base.to_string(),
        }
    }

    /// The legend's note on a learned predictor: `budget 60 s, quick` (with the tower held
    /// fixed when one was: `text flip fixed at 0.2, budget 60 s`).
    fn learned_note(&self) -> String {
        let fixed = self.varied.as_deref().and_then(|v| v.split(" with the ").nth(1));
        let budget = (!self.budget.is_empty()).then_some(self.budget.as_str());
        let parts: Vec<&str> = fixed.into_iter().chain(budget).collect();
        if parts.is_empty() {
            "exact".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Draws the figure of a finished run into `o.out` (`<figure>.{svg,png}`; the prompts figure
/// once per flip when there are several) and returns the prompts figure's fits.
pub fn draw_figures(which: Which, o: &Options, run: &Outcome) -> Result<PromptFits, PlotError> {
    Ok(draw_run(which, &run.rows, &run.flips, &o.out.join(which.name()))?.fits)
}

/// The figures drawn from one result file (their stems, without `.svg`/`.png`) and the
/// prompts figures' fits (empty for the other figures).
pub struct Redrawn {
    pub figures: Vec<std::path::PathBuf>,
    pub fits: PromptFits,
}

/// Draws `which` from a run's rows at `<stem>.{svg,png}` (the prompts figure of several flips at
/// `<stem>-<flip>.{svg,png}`, one per flip), labelled from the rows' notes ([`RunLabels`]).
/// Returns the stems drawn, with the prompts figures' fits.
fn draw_run(which: Which, rows: &[Row], flips: &[f64], stem: &std::path::Path) -> Result<Redrawn, PlotError> {
    let labels = run_labels(rows);
    match which {
        Which::Risks => {
            let mut panels = risk_panels(rows, &labels.titled("Risk"), &labels.learned_note());
            if labels.family.as_deref() == Some("paper") && labels.varied.is_none() {
                add_published(&mut panels, flips);
            }
            let excess = excess_panels(rows, &labels.titled("Risk"), &labels.learned_note());
            draw_risks_and_excess(panels, excess, stem)?;
            Ok(Redrawn { figures: vec![stem.to_path_buf()], fits: vec![] })
        }
        Which::Ood => {
            let base = match &labels.varied {
                Some(v) => {
                    format!("OOD (built at ε = {OOD_TRAIN_FLIP}; {})", v.split(" with the ").next().unwrap_or(v))
                }
                None => format!("OOD (built at ε = {OOD_TRAIN_FLIP})"),
            };
            let title = labels.titled(&base);
            let panels = risk_panels(rows, &title, &labels.learned_note());
            draw_risks_and_excess(panels, excess_panels(rows, &title, &labels.learned_note()), stem)?;
            Ok(Redrawn { figures: vec![stem.to_path_buf()], fits: vec![] })
        }
        Which::Prompts => {
            let mut out = Redrawn { figures: vec![], fits: vec![] };
            for &flip in flips {
                let mine: Vec<Row> = rows.iter().filter(|r| r.flip == flip).cloned().collect();
                let (fig, fits) = prompts_figure(&mine, flip, &labels.learned_note());
                let name = flip_stem(stem, flip, flips.len());
                draw(&fig, &name)?;
                out.figures.push(name);
                out.fits.extend(fits.into_iter().map(|(m, a, b, r, from)| (format!("{m} ε = {flip}"), a, b, r, from)));
            }
            Ok(out)
        }
    }
}

/// `stem`, or `<stem>-<flip>` when a prompts run covers several flips.
fn flip_stem(stem: &std::path::Path, flip: f64, flips: usize) -> std::path::PathBuf {
    if flips == 1 {
        return stem.to_path_buf();
    }
    let name = stem.file_name().and_then(|s| s.to_str()).unwrap_or("prompts");
    stem.with_file_name(format!("{name}-{flip}"))
}

/// The training budget of the learned rows, read off their notes (`...; budget 60 s; quick`
/// gives `budget 60 s, quick`); empty when every row is exact.
fn budget_of_notes(rows: &[Row]) -> String {
    let learned: Vec<&Row> = rows
        .iter()
        .filter(|r| !matches!(r.model.as_str(), "bayes" | "pmi" | "misspecified-bp") && !r.model.ends_with(PAPER_RULE))
        .collect();
    let budget = learned.iter().find_map(|r| r.note.find("budget ").map(|i| r.note[i..].replace("; ", ", ")));
    // A run fixed by steps names its CLIP steps (`CLIP 3000 steps in …`), its CLIP learning
    // rate (`lr 1e-3 cosine`) when the rows are recent enough to record it, and the paper's
    // encoder when it was used.
    let steps = || {
        learned.iter().find_map(|r| {
            let rest = &r.note[r.note.find("CLIP ")? + 5..];
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let lr = r.note.find(" lr ").and_then(|i| r.note[i + 4..].split(' ').next()).map(|lr| format!(", lr {lr}"));
            let encoder = if r.note.contains("the paper's encoder") { ", the paper's encoder" } else { "" };
            (!n.is_empty() && rest[n.len()..].starts_with(" steps"))
                .then(|| format!("{n} CLIP steps{}{encoder}", lr.unwrap_or_default()))
        })
    };
    let fixed = || learned.iter().any(|r| r.note.contains("fixed step counts")).then(|| "fixed steps".to_string());
    budget.or_else(steps).or_else(fixed).unwrap_or_default()
}

/// The figure a result file of `jghm reproduce` holds, by its name: `risks*.csv`, `ood*.csv`,
/// `prompts*.csv` (as the command and `jghm merge` name them); `None` for any other file.
fn figure_of_file(path: &std::path::Path) -> Option<Which> {
    if path.extension().is_none_or(|x| x != "csv") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    [Which::Risks, Which::Ood, Which::Prompts].into_iter().find(|w| stem.starts_with(w.name()))
}

/// Redraws every figure of `jghm reproduce` in `dir` from its result file alone: each
/// `risks*.csv`, `ood*.csv` and `prompts*.csv` becomes `<stem>.{svg,png}` (a prompts file of
/// several flips, `<stem>-<flip>.{svg,png}` each), exactly as the run drew it. Returns what
/// each file gave (nothing when `dir` cannot be listed).
pub fn redraw_reproduce(dir: &std::path::Path) -> Result<Vec<Redrawn>, PlotError> {
    // A folder that cannot be listed holds no figure (the caller reports it).
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(vec![]) };
    let mut files: Vec<(std::path::PathBuf, Which)> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter_map(|p| figure_of_file(&p).map(|w| (p, w))).collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = vec![];
    for (file, which) in files {
        let rows = crate::reproduce::experiments::read_csv(&file)?;
        let mut flips: Vec<f64> = rows.iter().map(|r| r.flip).collect();
        flips.sort_by(f64::total_cmp);
        flips.dedup();
        out.push(draw_run(which, &rows, &flips, &file.with_extension(""))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::Style;

    fn row(model: &str, prompts: Option<usize>, risk: f64) -> Row {
        Row {
            task: "zero-shot".into(),
            model: model.into(),
            flip: 0.2,
            seed: 1,
            prompts,
            trained_flip: None,
            risk,
            stderr: 0.01,
            excess_risk: None,
            excess_stderr: None,
            below_bayes_flag: None,
            units: 8,
            seconds: 0.0,
            note: String::new(),
        }
    }

    const MS: [usize; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

    /// Synthetic `a + b/M` data: the fit recovers `a` and `b` to round-off, over every `M` and
    /// over the tail; with a perturbation below the tail only, the tail fit is unchanged (and
    /// the fit over every `M` is not). Swapping `a` and `b`, or fitting on `M` instead of `1/M`,
    /// fails the first assertion.
    #[test]
    fn prompt_fit_recovers_a_and_b_from_synthetic_data() {
        let (a, b) = (1.879, 3.25);
        let exact: Vec<(usize, f64)> = MS.iter().map(|&m| (m, a + b / m as f64)).collect();
        for from in [1, 16] {
            let f = fit_prompts(&exact, from).unwrap();
            assert!((f.a - a).abs() < 1e-12 && (f.b - b).abs() < 1e-12 && f.rms < 1e-12, "from {from}: {f:?}");
            assert_eq!(f.from, from);
        }
        let bent: Vec<(usize, f64)> = exact.iter().map(|&(m, y)| (m, if m < 16 { y + 0.7 } else { y })).collect();
        let tail = fit_prompts(&bent, 16).unwrap();
        assert!((tail.a - a).abs() < 1e-12 && (tail.b - b).abs() < 1e-12);
        assert!((fit_prompts(&bent, 1).unwrap().a - a).abs() > 0.05);
        // Least squares: the residuals are orthogonal to 1 and 1/M.
        let noisy: Vec<(usize, f64)> =
            exact.iter().enumerate().map(|(i, &(m, y))| (m, y + 0.01 * ((i * 7 % 5) as f64 - 2.0))).collect();
        let f = fit_prompts(&noisy, 1).unwrap();
        let r: Vec<(f64, f64)> = noisy.iter().map(|&(m, y)| (1.0 / m as f64, y - f.a - f.b / m as f64)).collect();
        assert!(r.iter().map(|p| p.1).sum::<f64>().abs() < 1e-12);
        assert!(r.iter().map(|p| p.0 * p.1).sum::<f64>().abs() < 1e-12);
        assert_eq!(fit_prompts(&exact[..1], 1), None);
        assert_eq!(fit_prompts(&exact, 256), None);
    }

    #[test]
    fn the_fitted_tail_is_the_upper_half_of_the_log_grid() {
        assert_eq!(prompts_fit_from(&MS), 16);
        assert_eq!(prompts_fit_from(&[1, 2, 4, 8]), 2);
        assert_eq!(prompts_fit_from(&[4, 8, 16]), 4);
        assert_eq!(prompts_fit_from(&[]), 1);
    }

    /// The dashed curve of the figure is the fit of the points drawn: on synthetic rows (two
    /// seeds averaged) every dashed point lies on `a + b/M` with the fitted `a`, `b`, which
    /// equal the generating values; the curve spans the fitted tail only.
    #[test]
    fn the_prompts_figure_draws_the_fit_of_its_points() {
        let (a, b) = (2.0, 4.0);
        let mut rows = vec![row("bayes", None, 1.9)];
        for seed_shift in [-0.01, 0.01] {
            rows.extend(MS.iter().map(|&m| row("pmi", Some(m), a + b / m as f64 + seed_shift)));
        }
        let (fig, fits) = prompts_figure(&rows, 0.2, "");
        assert_eq!(fits.len(), 1);
        let (_, fa, fb, rms, from) = fits[0].clone();
        assert!((fa - a).abs() < 1e-12 && (fb - b).abs() < 1e-12 && rms < 1e-12 && from == 16);
        let data = fig.series.iter().find(|s| s.style == Style::Points).unwrap();
        assert_eq!(data.points.len(), MS.len());
        let dashed = fig.series.iter().find(|s| s.style == Style::Dashed && s.label.is_empty()).unwrap();
        assert!((dashed.points[0].0 - 16.0).abs() < 1e-12 && (dashed.points.last().unwrap().0 - 128.0).abs() < 1e-9);
        assert!(dashed.points.iter().all(|&(m, y)| (y - (fa + fb / m)).abs() < 1e-12));
    }
}
