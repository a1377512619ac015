//! Figures, drawn with plotters as SVG and PNG from result data (never from live runs).
//!
//! A [`Figure`] is data: axes (labels with units, linear or log scale), series of points with
//! optional error bars, and reference lines (a theory slope, `y = x`, a Bayes level). [`draw`]
//! renders it twice, `<stem>.svg` and `<stem>.png`, atomically. The font is embedded
//! (`assets/DejaVuSans.ttf`), so drawing needs nothing installed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::files::{write_atomic, FileError};

pub mod emulation;
pub mod merge;
pub mod rates;
pub mod reproduce;
pub mod text;
pub mod tree;

/// Why a figure was not drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing {what}: {reason}")]
    Draw { what: String, reason: String },
    #[error("encoding {what}")]
    Encode { what: String, source: image::ImageError },
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Runs(#[from] crate::runs::RunDirError),
    #[error(transparent)]
    Rates(#[from] crate::rates::run::RatesError),
}

type Result<T, E = PlotError> = std::result::Result<T, E>;

fn draw_error(what: impl std::fmt::Display, reason: impl std::fmt::Display) -> PlotError {
    PlotError::Draw { what: what.to_string(), reason: reason.to_string() }
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Style {
    /// Markers joined by a line.
    LinePoints,
    /// A dashed line without markers (references: a theory slope, `y = x`, a Bayes level).
    Dashed,
    /// Markers only.
    Points,
    /// A wide, light line drawn beneath the others: a reference level that another series may
    /// sit on (Bayes under the exact score), so that both stay visible.
    Band,
}

/// One series: points `(x, y)`, optionally with vertical error bars `(y_lo, y_hi)`.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub errors: Option<Vec<(f64, f64)>>,
    pub style: Style,
    /// Index into the palette (default: the series' position), to pair a fit with its data.
    pub color: Option<usize>,
}

impl Series {
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, errors: None, style: Style::LinePoints, color: None }
    }
    pub fn dashed(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, errors: None, style: Style::Dashed, color: None }
    }
    pub fn points(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, errors: None, style: Style::Points, color: None }
    }
    pub fn band(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, errors: None, style: Style::Band, color: None }
    }
    /// Draws in palette colour `i` (0 blue, 1 vermillion, 2 green, 3 pink, 4 orange, 5 sky, 6 black;
    /// 7-10 darker blue, vermillion, green, pink).
    pub fn with_color(mut self, i: usize) -> Self {
        self.color = Some(i);
        self
    }
    pub fn with_errors(mut self, errors: Vec<(f64, f64)>) -> Self {
        self.errors = Some(errors);
        self
    }
}

/// A figure: title, axis labels (quantity and unit), scales and series.
#[derive(Clone, Debug)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    /// Tick positions on a logarithmic x axis (the sample sizes used); empty: automatic.
    pub x_ticks: Vec<f64>,
}

impl Figure {
    /// An empty figure.
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
        x_log: bool,
        y_log: bool,
    ) -> Self {
        Figure {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log,
            y_log,
            series: vec![],
            x_ticks: vec![],
        }
    }
}

/// A tick label: integers as integers (`1000`, not `1000.0`), very large or small values as
/// powers of ten (`1.5×10⁻⁴`), others with at most four significant digits.
fn tick(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    if !(1e-3..1e6).contains(&a) {
        return power_of_ten(v);
    }
    if (v - v.round()).abs() < 1e-9 * a.max(1.0) {
        return format!("{}", v.round() as i64);
    }
    let digits = (3 - a.log10().floor() as i32).clamp(0, 8) as usize;
    let s = format!("{v:.digits$}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A label of a log axis. When the axis reaches values that [`tick`] writes as powers of ten,
/// every exact power of ten on it is written so too (`10⁻²`, `10⁻⁴`), so that one axis never
/// mixes `0.01` and `10⁻⁴`.
fn log_tick(v: f64, powers: bool) -> String {
    if powers && v > 0.0 {
        let e = v.log10().round();
        if (v / 10f64.powf(e) - 1.0).abs() < 1e-9 {
            return format!("10{}", superscript(e as i32));
        }
    }
    tick(v)
}

/// Whether a log axis over `(lo, hi)` reaches values that [`tick`] writes as powers of ten.
fn needs_powers((lo, hi): (f64, f64)) -> bool {
    lo < 1e-3 || hi >= 1e6
}

/// `v` as `m×10ⁿ` with at most two significant digits in `m` (`10ⁿ` when `m = 1`).
fn power_of_ten(v: f64) -> String {
    let mut e = v.abs().log10().floor();
    let mut m = (v / 10f64.powf(e) * 10.0).round() / 10.0;
    if m.abs() >= 10.0 {
        // 9.96×10⁻⁵ rounds to 10×10⁻⁵: write 10⁻⁴.
        (m, e) = (m / 10.0, e + 1.0);
    }
    let m = format!("{m:.1}");
    let m = m.trim_end_matches('0').trim_end_matches('.');
    let p = format!("10{}", superscript(e as i32));
    if m == "1" {
        p
    } else if m == "-1" {
        format!("−{p}")
    } else {
        format!("{}×{p}", m.replace('-', "−"))
    }
}

/// `n` in superscript digits: `⁻⁴`.
fn superscript(n: i32) -> String {
    const DIGITS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    let digits = n.unsigned_abs().to_string().chars().map(|c| DIGITS[c as usize - '0' as usize]).collect::<String>();
    if n < 0 {
        format!("⁻{digits}")
    } else {
        digits
    }
}

/// The corner of the plot with the fewest data points (markers, error-bar ends, line vertices)
/// in its outer 40% × 40% box, for the legend; ties go to the upper right.
fn emptiest_corner(fig: &Figure, x: (f64, f64), y: (f64, f64)) -> SeriesLabelPosition {
    let unit = |v: f64, (lo, hi): (f64, f64), log: bool| {
        if log {
            (v.log10() - lo.log10()) / (hi.log10() - lo.log10())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    let mut counts = [0usize; 4]; // upper right, upper left, lower right, lower left
    for s in &fig.series {
        let ends = s.errors.iter().flatten().zip(&s.points).flat_map(|(e, p)| [(p.0, e.0), (p.0, e.1)]);
        for (px, py) in s.points.iter().copied().chain(ends) {
            let (u, v) = (unit(px, x, fig.x_log), unit(py, y, fig.y_log));
            if !(u.is_finite() && v.is_finite()) {
                continue;
            }
            let (right, left, top, bottom) = (u > 0.6, u < 0.4, v > 0.6, v < 0.4);
            for (k, inside) in [right && top, left && top, right && bottom, left && bottom].into_iter().enumerate() {
                counts[k] += inside as usize;
            }
        }
    }
    let best = (0..4).min_by_key(|&k| counts[k]).unwrap_or(0);
    match best {
        1 => SeriesLabelPosition::UpperLeft,
        2 => SeriesLabelPosition::LowerRight,
        3 => SeriesLabelPosition::LowerLeft,
        _ => SeriesLabelPosition::UpperRight,
    }
}

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded font is valid: registration cannot fail on it.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Colours that stay distinct in print and for colour-blind readers (Okabe–Ito).
const PALETTE: [RGBColor; 11] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    // Darker companions of 0-3, for a variant of a series drawn in 0-3 (the paper's zero-shot
    // rule beside ours).
    RGBColor(0, 60, 100),
    RGBColor(130, 50, 0),
    RGBColor(0, 90, 60),
    RGBColor(130, 60, 100),
];

/// Draws `fig` to `<stem>.svg` and `<stem>.png` (1000 × 700), each written atomically.
pub fn draw(fig: &Figure, stem: &Path) -> Result<()> {
    register_font();
    let (w, h) = (1000u32, 700u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        render(fig, &root)?;
        root.present().map_err(|e| draw_error(&fig.title, e))?;
    }
    write_atomic(&stem.with_extension("svg"), svg.as_bytes())?;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = bitmap(&mut pixels, (w, h))?.into_drawing_area();
        render(fig, &root)?;
        root.present().map_err(|e| draw_error(&fig.title, e))?;
    }
    let mut png = vec![];
    image_png(&pixels, w, h, &mut png).map_err(|source| PlotError::Encode { what: fig.title.clone(), source })?;
    Ok(write_atomic(&stem.with_extension("png"), &png)?)
}

/// Draws several figures as panels of one image, `cols` per row, into `<stem>.svg` and
/// `<stem>.png` (atomically), each panel rendered as by [`draw`].
pub fn draw_grid(figs: &[Figure], cols: usize, stem: &Path) -> Result<()> {
    register_font();
    let cols = cols.clamp(1, figs.len().max(1));
    let rows = figs.len().div_ceil(cols).max(1);
    let (w, h) = (900 * cols as u32, 640 * rows as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        for (fig, area) in figs.iter().zip(root.split_evenly((rows, cols))) {
            render(fig, &area)?;
        }
        root.present().map_err(|e| draw_error(stem.display(), e))?;
    }
    write_atomic(&stem.with_extension("svg"), svg.as_bytes())?;
    let mut pixels = vec![255u8; (w * h * 3) as usize];
    {
        let root = bitmap(&mut pixels, (w, h))?.into_drawing_area();
        for (fig, area) in figs.iter().zip(root.split_evenly((rows, cols))) {
            render(fig, &area)?;
        }
        root.present().map_err(|e| draw_error(stem.display(), e))?;
    }
    let mut png = vec![];
    image_png(&pixels, w, h, &mut png)
        .map_err(|source| PlotError::Encode { what: stem.display().to_string(), source })?;
    Ok(write_atomic(&stem.with_extension("png"), &png)?)
}

/// The bitmap backend on `pixels`, its text drawn by [`text::GlyphText`] with the embedded font.
pub(crate) fn bitmap(pixels: &mut [u8], size: (u32, u32)) -> Result<text::GlyphText<'_>> {
    text::GlyphText::new(BitMapBackend::with_buffer(pixels, size), FONT)
        .ok_or_else(|| draw_error("the embedded font", "not a valid font file"))
}

/// PNG encoding of an RGB buffer (plotters' own file encoder cannot write to memory, and the
/// file must be written atomically).
fn image_png(rgb: &[u8], w: u32, h: u32, out: &mut Vec<u8>) -> Result<(), image::ImageError> {
    use image::ImageEncoder;
    image::codecs::png::PngEncoder::new(out).write_image(rgb, w, h, image::ExtendedColorType::Rgb8)
}

/// The data range of all series (error bars included), padded; on a log axis, positive only.
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return if log { (0.1, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (l, h) = (lo.log10(), hi.log10().max(lo.log10() + 0.5));
        let pad = 0.06 * (h - l);
        (10f64.powf(l - pad), 10f64.powf(h + pad))
    } else if hi - lo <= 1e-12 * hi.abs().max(1.0) {
        // One value (a run at one flip): a window around it, so the ticks still read.
        let half = 0.05 * lo.abs().max(1.0);
        (lo - half, hi + half)
    } else {
        let span = hi - lo;
        (lo - 0.06 * span, hi + 0.06 * span)
    }
}

fn render<DB: DrawingBackend>(fig: &Figure, root: &DrawingArea<DB, Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| draw_error(format!("'{}'", fig.title), format!("{e:?}"));
    root.fill(&WHITE).map_err(err)?;
    let xs = fig.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = fig
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1).chain(s.errors.iter().flatten().flat_map(|e| [e.0, e.1])));
    let (x0, x1) = range(xs, fig.x_log);
    let (y0, y1) = range(ys, fig.y_log);
    let (x_powers, y_powers) = (needs_powers((x0, x1)), needs_powers((y0, y1)));
    let mut builder = ChartBuilder::on(root);
    builder.caption(&fig.title, ("sans-serif", 26)).margin(18).x_label_area_size(60).y_label_area_size(90);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(fig.x_label.as_str())
                .y_desc(fig.y_label.as_str())
                .x_label_formatter(&|v: &f64| if fig.x_log { log_tick(*v, x_powers) } else { tick(*v) })
                .y_label_formatter(&|v: &f64| if fig.y_log { log_tick(*v, y_powers) } else { tick(*v) })
                .label_style(("sans-serif", 17))
                .axis_desc_style(("sans-serif", 20))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(err)?;
            draw_series(fig, &mut chart).map_err(err)?;
            // No legend box on a panel without a labelled series (an empty one is noise).
            if fig.series.iter().any(|s| !s.label.is_empty()) {
                chart
                    .configure_series_labels()
                    .position(emptiest_corner(fig, (x0, x1), (y0, y1)))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(160, 160, 160))
                    .label_font(("sans-serif", 17))
                    .draw()
                    .map_err(err)?;
            }
        }};
    }
    let ticks = fig.x_ticks.clone();
    match (fig.x_log, fig.y_log) {
        (true, true) if !ticks.is_empty() => finish!(builder
            .build_cartesian_2d((x0..x1).log_scale().with_key_points(ticks), (y0..y1).log_scale())
            .map_err(err)?),
        (true, false) if !ticks.is_empty() => {
            finish!(builder.build_cartesian_2d((x0..x1).log_scale().with_key_points(ticks), y0..y1).map_err(err)?)
        }
        (true, true) => finish!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(err)?),
        (true, false) => finish!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(err)?),
        (false, true) => finish!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(err)?),
        (false, false) => finish!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
    }
    Ok(())
}

type Chart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<X, Y>>;

fn draw_series<DB, X, Y>(
    fig: &Figure,
    chart: &mut Chart<'_, DB, X, Y>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, s) in fig.series.iter().enumerate() {
        let color = PALETTE[s.color.unwrap_or(i) % PALETTE.len()];
        let ok = |p: &&(f64, f64)| {
            p.0.is_finite() && p.1.is_finite() && (!fig.x_log || p.0 > 0.0) && (!fig.y_log || p.1 > 0.0)
        };
        let pts: Vec<(f64, f64)> = s.points.iter().filter(ok).copied().collect();
        let legend_color = color;
        match s.style {
            Style::Dashed => {
                let drawn = chart.draw_series(DashedLineSeries::new(pts.clone(), 10, 6, color.stroke_width(2)))?;
                // An empty label keeps the series out of the legend (e.g. a fit drawn beside its data).
                if !s.label.is_empty() {
                    drawn.label(&s.label).legend(move |(x, y)| {
                        plotters::element::DashedPathElement::new(
                            vec![(x, y), (x + 26, y)],
                            7,
                            4,
                            legend_color.stroke_width(2),
                        )
                    });
                }
            }
            Style::Band => {
                let band = color.mix(0.35).stroke_width(9);
                let drawn = chart.draw_series(LineSeries::new(pts.clone(), band))?;
                if !s.label.is_empty() {
                    drawn.label(&s.label).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 26, y)], legend_color.mix(0.35).stroke_width(9))
                    });
                }
            }
            Style::LinePoints | Style::Points => {
                if s.style == Style::LinePoints {
                    chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
                }
                let drawn = chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))?;
                if !s.label.is_empty() {
                    drawn.label(&s.label).legend(move |(x, y)| Circle::new((x + 12, y), 5, legend_color.filled()));
                }
            }
        }
        if let Some(errors) = &s.errors {
            let bars = s.points.iter().zip(errors).filter(|(p, e)| {
                ok(p) && e.0.is_finite() && e.1.is_finite() && (!fig.y_log || (e.0 > 0.0 && e.1 > 0.0))
            });
            chart.draw_series(
                bars.map(|(p, e)| ErrorBar::new_vertical(p.0, e.0, p.1, e.1, color.stroke_width(2), 10)),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_write_small_and_large_values_as_powers_of_ten() {
        assert_eq!(tick(1e-4), "10⁻⁴");
        assert_eq!(tick(2.5e-4), "2.5×10⁻⁴");
        assert_eq!(tick(-3e7), "−3×10⁷");
        assert_eq!(tick(9.96e-5), "10⁻⁴");
        assert_eq!(tick(0.01), "0.01");
        assert_eq!(tick(1000.0), "1000");
        assert_eq!(tick(0.12345), "0.1235");
    }

    #[test]
    fn a_log_axis_that_needs_powers_writes_every_power_so() {
        assert!(needs_powers((5e-5, 20.0)) && !needs_powers((0.002, 20.0)) && needs_powers((1.0, 2e6)));
        let labels: Vec<String> = [10.0, 1.0, 0.1, 0.01, 1e-4].iter().map(|&v| log_tick(v, true)).collect();
        assert_eq!(labels, ["10¹", "10⁰", "10⁻¹", "10⁻²", "10⁻⁴"]);
        assert_eq!(log_tick(0.01, false), "0.01");
        assert_eq!(log_tick(0.02, true), "0.02");
    }
}
