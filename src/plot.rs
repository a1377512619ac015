//! Figures, drawn with plotters as SVG and PNG from result data (never from live runs).
//!
//! A [`Figure`] is data: axes (labels with units, linear or log scale), series of points with
//! optional error bars, and reference lines (a theory slope, `y = x`, a Bayes level). [`draw`]
//! renders it twice, `<stem>.svg` and `<stem>.png`, atomically. The font is embedded
//! (`assets/DejaVuSans.ttf`), so drawing needs nothing installed.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::cli::files::write_atomic;

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Style {
    /// Markers joined by a line.
    LinePoints,
    /// A dashed line without markers (references: a theory slope, `y = x`, a Bayes level).
    Dashed,
    /// Markers only.
    Points,
}

/// One series: points `(x, y)`, optionally with vertical error bars `(y_lo, y_hi)`.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub errors: Option<Vec<(f64, f64)>>,
    pub style: Style,
}

impl Series {
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, errors: None, style: Style::LinePoints }
    }
    pub fn dashed(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series { label: label.into(), points, errors: None, style: Style::Dashed }
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
}

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded font is valid: registration cannot fail on it.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Colours that stay distinct in print and for colour-blind readers (Okabe–Ito).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Draws `fig` to `<stem>.svg` and `<stem>.png` (1000 × 700), each written atomically.
pub fn draw(fig: &Figure, stem: &Path) -> Result<()> {
    register_font();
    let (w, h) = (1000u32, 700u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        render(fig, &root)?;
        root.present().map_err(|e| anyhow::anyhow!("drawing {}: {e}", fig.title))?;
    }
    write_atomic(&stem.with_extension("svg"), svg.as_bytes())?;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
        render(fig, &root)?;
        root.present().map_err(|e| anyhow::anyhow!("drawing {}: {e}", fig.title))?;
    }
    let mut png = vec![];
    image_png(&pixels, w, h, &mut png).with_context(|| format!("encoding {}", fig.title))?;
    write_atomic(&stem.with_extension("png"), &png)
}

/// PNG encoding of an RGB buffer (plotters' own file encoder cannot write to memory, and the
/// file must be written atomically).
fn image_png(rgb: &[u8], w: u32, h: u32, out: &mut Vec<u8>) -> Result<()> {
    use image::ImageEncoder;
    image::codecs::png::PngEncoder::new(out).write_image(rgb, w, h, image::ExtendedColorType::Rgb8)?;
    Ok(())
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
    } else {
        let span = (hi - lo).max(1e-12 * hi.abs().max(1.0));
        (lo - 0.06 * span, hi + 0.06 * span)
    }
}

fn render<DB: DrawingBackend>(fig: &Figure, root: &DrawingArea<DB, Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("drawing '{}': {e:?}", fig.title);
    root.fill(&WHITE).map_err(err)?;
    let xs = fig.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = fig.series.iter().flat_map(|s| {
        s.points.iter().map(|p| p.1).chain(s.errors.iter().flatten().flat_map(|e| [e.0, e.1]))
    });
    let (x0, x1) = range(xs, fig.x_log);
    let (y0, y1) = range(ys, fig.y_log);
    let mut builder = ChartBuilder::on(root);
    builder.caption(&fig.title, ("sans-serif", 26)).margin(18).x_label_area_size(60).y_label_area_size(90);
    macro_rules! finish {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(fig.x_label.as_str())
                .y_desc(fig.y_label.as_str())
                .label_style(("sans-serif", 17))
                .axis_desc_style(("sans-serif", 20))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(err)?;
            draw_series(fig, &mut chart).map_err(err)?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(160, 160, 160))
                .label_font(("sans-serif", 17))
                .draw()
                .map_err(err)?;
        }};
    }
    match (fig.x_log, fig.y_log) {
        (true, true) => finish!(builder.build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale()).map_err(err)?),
        (true, false) => finish!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(err)?),
        (false, true) => finish!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(err)?),
        (false, false) => finish!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
    }
    Ok(())
}

type Chart<'a, DB, X, Y> = ChartContext<'a, DB, Cartesian2d<X, Y>>;

fn draw_series<DB, X, Y>(fig: &Figure, chart: &mut Chart<'_, DB, X, Y>) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, s) in fig.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let ok = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite() && (!fig.x_log || p.0 > 0.0) && (!fig.y_log || p.1 > 0.0);
        let pts: Vec<(f64, f64)> = s.points.iter().filter(ok).copied().collect();
        let legend_color = color;
        match s.style {
            Style::Dashed => {
                chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 10, 6, color.stroke_width(2)))?
                    .label(&s.label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], legend_color.stroke_width(2)));
            }
            Style::LinePoints | Style::Points => {
                if s.style == Style::LinePoints {
                    chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?;
                }
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 5, color.filled())))?
                    .label(&s.label)
                    .legend(move |(x, y)| Circle::new((x + 12, y), 5, legend_color.filled()));
            }
        }
        if let Some(errors) = &s.errors {
            let bars = s.points.iter().zip(errors).filter(|(p, e)| {
                ok(p) && e.0.is_finite() && e.1.is_finite() && (!fig.y_log || (e.0 > 0.0 && e.1 > 0.0))
            });
            chart.draw_series(bars.map(|(p, e)| {
                ErrorBar::new_vertical(p.0, e.0, p.1, e.1, color.stroke_width(2), 10)
            }))?;
        }
    }
    Ok(())
}
