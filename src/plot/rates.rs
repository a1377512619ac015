//! The figures of a sweep, built from its result files (never from live runs), as generic
//! [`Figure`]s: (a) excess risk vs `n` with the fits and the reference slopes, (b) the T5/T8
//! bound against the excess risk with `y = x`, (c) zero-shot accuracy vs `n` with the
//! exact-score protocol and Bayes, (d) T3's `ℓ_K − log K → ℓ_∞`. (e), the BP-emulation error
//! against width, is drawn by [`super::emulation::plot_sweep`]. [`draw_sweep`] draws them all
//! into the sweep's folder.

use std::collections::BTreeMap;

use std::path::Path;

use super::{draw, Figure, PlotError, Series};
use crate::emulate::{self, SweepRow};
use crate::learn::Class;
use crate::rates::fit::Fit;
use crate::rates::infonce::{self, Point};
use crate::rates::results::Row;
use crate::rates::run::{classes, refit, write_fits, SweepOutcome};

/// Palette index of a class (and of its fit): the class's own ([`Class::color`]).
fn color(class: Class) -> usize {
    class.color()
}
const BLACK: usize = 6;

/// The name a reader sees ([`Class::label`]).
pub fn display(class: Class) -> &'static str {
    class.label()
}

/// Per `n`: the centre and the ±1 standard-error band over seeds of `value`, either on the log
/// scale (geometric mean, band `exp(mean log ± se log)`) or plain (mean ± se).
fn over_seeds(rows: &[Row], class: Class, value: impl Fn(&Row) -> f64, log: bool) -> Vec<(f64, f64, (f64, f64))> {
    let mut by_n: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.class == class) {
        let v = value(r);
        if v.is_finite() && (!log || v > 0.0) {
            by_n.entry(r.n).or_default().push(if log { v.ln() } else { v });
        }
    }
    by_n.into_iter()
        .map(|(n, vs)| {
            let m = vs.len() as f64;
            let mean = vs.iter().sum::<f64>() / m;
            let se = if vs.len() > 1 {
                (vs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (m - 1.0) / m).sqrt()
            } else {
                0.0
            };
            let back = |v: f64| if log { v.exp() } else { v };
            (n as f64, back(mean), (back(mean - se), back(mean + se)))
        })
        .collect()
}

fn seeds_note(rows: &[Row]) -> String {
    let mut per: BTreeMap<(String, usize), usize> = BTreeMap::new();
    for r in rows {
        *per.entry((format!("{:?}", r.class), r.n)).or_default() += 1;
    }
    let (lo, hi) = (per.values().min().copied().unwrap_or(0), per.values().max().copied().unwrap_or(0));
    if lo == hi {
        format!("{lo} seeds")
    } else {
        format!("{lo}-{hi} seeds")
    }
}

/// The points and bars of one class's series: markers without a joining line, so that the
/// class's dashed fit ([`fit_lines`]) stays visible on them.
fn series(label: String, class: Class, stats: &[(f64, f64, (f64, f64))]) -> Series {
    Series::points(label, stats.iter().map(|s| (s.0, s.1)).collect())
        .with_errors(stats.iter().map(|s| s.2).collect())
        .with_color(color(class))
}

/// The fitted power law over the fitted `n`, and the floor over the floor's `n`, dashed.
fn fit_lines(fit: &Fit, class: Class) -> Vec<Series> {
    let line = |n: usize| (n as f64, (fit.intercept + fit.slope * (n as f64).ln()).exp());
    let mut out = vec![];
    if let (Some(&a), Some(&b)) = (fit.fitted_n.first(), fit.fitted_n.last()) {
        out.push(Series::dashed("", vec![line(a), line(b)]).with_color(color(class)));
    }
    if let (Some(floor), Some(&a), Some(&b)) = (fit.floor, fit.floor_n.first(), fit.floor_n.last()) {
        let a = fit.fitted_n.last().copied().unwrap_or(a);
        out.push(Series::dashed("", vec![(a as f64, floor), (b as f64, floor)]).with_color(color(class)));
    }
    out
}

/// Reference power laws `n^slope` through `(x0, y0)` over `[x0, x1]`.
fn reference(label: &str, slope: f64, x0: f64, x1: f64, y0: f64, color: usize) -> Series {
    Series::dashed(label, vec![(x0, y0), (x1, y0 * (x1 / x0).powf(slope))]).with_color(color)
}

/// (a) Excess risk against `n`, one series per class with its fit, and the reference slopes.
pub fn excess_vs_n(rows: &[Row], fits: &[(Class, Fit)]) -> Figure {
    let fit_of = |c: Class| fits.iter().find(|f| f.0 == c).map(|f| &f.1);
    let mut fig = Figure::new(
        "(a) Excess contrastive risk against sample size (T12); dashed: fits",
        "pre-training pairs n",
        "excess risk ℓ∞(Ŝ) − ℓ∞(PMI)  (nats)",
        true,
        true,
    );
    let mut first = vec![];
    for class in classes(rows) {
        let stats = over_seeds(rows, class, |r| r.figures.excess_risk, true);
        let label = match fit_of(class) {
            Some(f) => format!("{}: slope {:.2} [{:.2}, {:.2}]", display(class), f.slope, f.slope_ci[0], f.slope_ci[1]),
            None => display(class).to_string(),
        };
        first.extend(stats.first().map(|s| (s.0, s.1)));
        fig.series.push(series(label, class, &stats));
        if let Some(f) = fit_of(class) {
            fig.series.extend(fit_lines(f, class));
        }
    }
    let (x0, x1) = n_range(rows);
    if let Some(&(_, y)) = first.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        fig.series.push(reference("slope −1/2 (T12's slow rate)", -0.5, x0, x1, y, BLACK));
        fig.series.push(reference("slope −1 (fast rate, parametric)", -1.0, x0, x1, y, 3));
    }
    fig.y_label = format!("excess risk ℓ∞(Ŝ) − ℓ∞(PMI)  (nats; geometric mean, ±1 s.e. over {})", seeds_note(rows));
    fig.x_ticks = n_values(rows);
    fig
}

/// The distinct sample sizes of the runs, ascending: the ticks of an `n` axis.
fn n_values(rows: &[Row]) -> Vec<f64> {
    let mut ns: Vec<usize> = rows.iter().map(|r| r.n).collect();
    ns.sort_unstable();
    ns.dedup();
    ns.into_iter().map(|n| n as f64).collect()
}

fn n_range(rows: &[Row]) -> (f64, f64) {
    let ns = rows.iter().map(|r| r.n as f64);
    (ns.clone().fold(f64::INFINITY, f64::min), ns.fold(0.0, f64::max))
}

/// (b) The downstream loss T8 bounds against the T5 bound (the `X→Y` excess risk), every run,
/// with `y = x`: every point must lie on or below it.
pub fn bound_vs_excess(rows: &[Row]) -> Figure {
    let mut fig = Figure::new(
        "(b) T5/T8: the excess risk bounds what the representation loses",
        "excess risk ℓ∞(Ŝ) − ℓ∞(PMI), image→text = T5 bound on Suff_Y(f)  (nats)",
        "zero-shot excess risk E KL(P̂_PMI ‖ P̂_Ŝ) over images  (nats)",
        true,
        true,
    );
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for class in classes(rows) {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.class == class)
            .map(|r| (r.figures.excess_image_to_text, r.figures.zero_shot_excess_risk))
            .filter(|p| p.0 > 0.0 && p.1 > 0.0 && p.0.is_finite() && p.1.is_finite())
            .collect();
        for p in &pts {
            lo = lo.min(p.0.min(p.1));
            hi = hi.max(p.0.max(p.1));
        }
        fig.series.push(Series::points(format!("{} (one run each)", display(class)), pts).with_color(color(class)));
    }
    if lo < hi {
        fig.series.push(Series::dashed("y = x (the bound)", vec![(lo, lo), (hi, hi)]).with_color(BLACK));
    }
    fig
}

/// (c) Zero-shot accuracy on the root label against `n`, with the exact-score protocol and Bayes.
pub fn zero_shot_vs_n(rows: &[Row]) -> Figure {
    let mut fig = Figure::new(
        "(c) Zero-shot accuracy on the root label (exact prompt ensembles)",
        "pre-training pairs n",
        format!("accuracy (exact over all images; mean ±1 s.e. over {})", seeds_note(rows)),
        true,
        false,
    );
    let (x0, x1) = n_range(rows);
    let mean = |f: &dyn Fn(&Row) -> f64| rows.iter().map(f).sum::<f64>() / rows.len().max(1) as f64;
    let exact = mean(&|r| r.figures.exact_score_accuracy);
    let bayes = mean(&|r| r.figures.bayes_accuracy);
    // Bayes as a wide band beneath everything: the exact score often sits on it, dashed on top.
    fig.series.push(
        Series::band(format!("Bayes, p(z | x) by BP: {bayes:.4}"), vec![(x0, bayes), (x1, bayes)]).with_color(BLACK),
    );
    for class in classes(rows) {
        // No fit here: a line joins the measured n to show the trend.
        let stats = over_seeds(rows, class, |r| r.figures.zero_shot_accuracy, false);
        fig.series.push(
            Series::line(display(class), stats.iter().map(|s| (s.0, s.1)).collect())
                .with_errors(stats.iter().map(|s| s.2).collect())
                .with_color(color(class)),
        );
    }
    fig.series.push(
        Series::dashed(format!("exact score (PMI), same protocol: {exact:.4}"), vec![(x0, exact), (x1, exact)])
            .with_color(4),
    );
    fig.x_ticks = n_values(rows);
    fig
}

/// (d) T3: `ℓ_K − log K` against `K` for each score, the first-order law `ℓ_∞ + c_1/K`, and `ℓ_∞`.
pub fn infonce(points: &[Point]) -> Figure {
    let mut fig = Figure::new(
        "(d) T3: ℓ_K − log K converges to ℓ∞ (exact, 4×4 model)",
        "batch size K (log scale)",
        "ℓ_K(S) − log K, image→text  (nats)",
        true,
        false,
    );
    let mut names: Vec<&str> = vec![];
    for p in points {
        if !names.contains(&p.score.as_str()) {
            names.push(&p.score);
        }
    }
    let (k0, k1) = points.iter().fold((f64::INFINITY, 0.0f64), |(a, b), p| (a.min(p.k as f64), b.max(p.k as f64)));
    // Ticks at the batch sizes computed.
    let mut ks: Vec<f64> = points.iter().map(|p| p.k as f64).collect();
    ks.sort_by(f64::total_cmp);
    ks.dedup();
    fig.x_ticks = ks;
    for (i, name) in names.iter().enumerate() {
        let mine: Vec<&Point> = points.iter().filter(|p| p.score == *name).collect();
        let (limit, c1) = (mine[0].limit, mine[0].rate_constant);
        fig.series.push(
            Series::line(format!("{name}, exact"), mine.iter().map(|p| (p.k as f64, p.loss_minus_log_k)).collect())
                .with_color(i),
        );
        let law: Vec<(f64, f64)> = mine.iter().map(|p| (p.k as f64, limit + c1 / p.k as f64)).collect();
        fig.series.push(Series::dashed(format!("ℓ∞ + c₁/K, c₁ = {c1:.3}"), law).with_color(i));
        let label = if i == 0 { "ℓ∞ (the limit)" } else { "" };
        fig.series.push(Series::dashed(label, vec![(k0, limit), (k1, limit)]).with_color(BLACK));
    }
    fig
}

/// The tables that may sit beside a sweep's `results.csv`: T3's (figure (d)) and an emulation
/// sweep's (figure (e)).
struct Beside {
    infonce: Option<Vec<Point>>,
    emulation: Option<Vec<SweepRow>>,
}

impl Beside {
    /// Reads both if present: a bad one is refused before any figure is drawn.
    fn read(dir: &Path) -> Result<Beside, PlotError> {
        let (t3, emulation) = (dir.join("infonce.csv"), dir.join(emulate::sweep::FILE));
        Ok(Beside {
            infonce: if t3.exists() { Some(infonce::read(&t3)?) } else { None },
            emulation: if emulation.exists() { Some(emulate::sweep::read(&emulation)?) } else { None },
        })
    }
}

/// Draws (a)-(c) of `sweep` into its folder, (d) if `infonce.csv` is there, and (e) if
/// `emulation.csv` is.
pub fn draw_sweep(sweep: &SweepOutcome) -> Result<(), PlotError> {
    draw_with(sweep, &Beside::read(&sweep.dir)?)
}

fn draw_with(sweep: &SweepOutcome, beside: &Beside) -> Result<(), PlotError> {
    let (dir, rows) = (&sweep.dir, &sweep.rows);
    let excess: Vec<(Class, Fit)> = sweep.fits.iter().filter_map(|(c, f, _)| f.clone().map(|f| (*c, f))).collect();
    draw(&excess_vs_n(rows, &excess), &dir.join("excess_risk"))?;
    draw(&bound_vs_excess(rows), &dir.join("sufficiency_bound"))?;
    draw(&zero_shot_vs_n(rows), &dir.join("zero_shot"))?;
    if let Some(points) = &beside.infonce {
        draw(&infonce(points), &dir.join("infonce"))?;
    }
    if let Some(rows) = &beside.emulation {
        super::emulation::plot_sweep(rows, dir)?;
    }
    Ok(())
}

/// `jghm plot DIR`: refits the sweep in `dir` from its `results.csv`, then (every input read
/// and checked first) rewrites `fits.json` and redraws every figure its files allow.
pub fn redraw(dir: &Path) -> Result<SweepOutcome, PlotError> {
    let sweep = refit(dir)?;
    let beside = Beside::read(dir)?;
    write_fits(dir, &sweep.fits)?;
    draw_with(&sweep, &beside)?;
    Ok(sweep)
}
