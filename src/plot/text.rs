//! Text on the PNG figures, laid out glyph by glyph with the embedded font.
//!
//! plotters' bitmap text path (its `ab_glyph` font) draws each glyph's outline at the pen
//! position without the glyph's left side bearing and truncates each pen position to a whole
//! pixel, so letters drift by up to a bearing (about a tenth of an em) and a pixel: "spe cified",
//! "0.862 8". [`GlyphText`] wraps the bitmap backend and draws text itself: the pen advances
//! by `h_advance + kern` in floating point, and each glyph is outlined at its exact pen position
//! (`Glyph::position`), so its pixel bounds include the bearing. Everything else is the bitmap
//! backend's. The SVG output is unaffected: its text is laid out by the viewer.

use ab_glyph::{point, Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

/// The bitmap backend, with its text drawn by [`GlyphText::layout`].
pub struct GlyphText<'a> {
    inner: BitMapBackend<'a>,
    font: FontRef<'static>,
}

type Error = DrawingErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;

/// Glyphs placed on a line: each glyph with its pen position, and the line's box
/// (width = the last pen position, height = ascent − descent, baseline at `ascent` from the top).
pub struct Line {
    pub glyphs: Vec<(GlyphId, f32)>,
    pub width: f32,
    pub ascent: f32,
    pub height: f32,
}

impl<'a> GlyphText<'a> {
    /// Wraps `inner`, drawing text with `font` (an OpenType or TrueType file's bytes).
    pub fn new(inner: BitMapBackend<'a>, font: &'static [u8]) -> Option<Self> {
        Some(GlyphText { inner, font: FontRef::try_from_slice(font).ok()? })
    }

    /// The layout of `text` at `size` pixels (ab_glyph's scale: ascent − descent = `size`):
    /// pen positions `x_{i+1} = x_i + h_advance(g_i) + kern(g_i, g_{i+1})` in `f32`.
    pub fn layout(&self, text: &str, size: f64) -> Line {
        let font = self.font.as_scaled(PxScale::from(size as f32));
        let (mut x, mut prev, mut glyphs) = (0f32, None, vec![]);
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                x += font.kern(p, id);
            }
            glyphs.push((id, x));
            x += font.h_advance(id);
            prev = Some(id);
        }
        Line { glyphs, width: x, ascent: font.ascent(), height: font.ascent() - font.descent() }
    }
}

impl DrawingBackend for GlyphText<'_> {
    type ErrorType = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), Error> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), Error> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Error> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Result<(), Error> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Error> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Error> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Error> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Error> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Result<(), Error> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(&self, text: &str, style: &S) -> Result<(u32, u32), Error> {
        let line = self.layout(text, style.size());
        Ok((line.width.ceil() as u32, line.height.ceil() as u32))
    }

    /// Each glyph outlined at `(pen x, ascent)` of the line's box, the box placed at `pos` by
    /// the style's anchor and rotated by its transform; coverage scales the colour's alpha.
    fn draw_text<S: BackendTextStyle>(&mut self, text: &str, style: &S, pos: BackendCoord) -> Result<(), Error> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let size = style.size();
        let line = self.layout(text, size);
        let (width, height) = (line.width.ceil() as i32, line.height.ceil() as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let scale = PxScale::from(size as f32);
        let mut pixels = vec![];
        for &(id, x) in &line.glyphs {
            let glyph = id.with_scale_and_position(scale, point(x, line.ascent));
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let (px, py) = (bounds.min.x as i32 + gx as i32 + dx, bounds.min.y as i32 + gy as i32 + dy);
                    pixels.push((transform.transform(px, py), coverage));
                });
            }
        }
        let (w, h) = self.get_size();
        for ((x, y), coverage) in pixels {
            let (x, y) = (pos.0 + x, pos.1 + y);
            if coverage > 0.0 && x >= 0 && y >= 0 && x < w as i32 && y < h as i32 {
                let c = BackendColor { alpha: color.alpha * f64::from(coverage.min(1.0)), rgb: color.rgb };
                self.inner.draw_pixel((x, y), c)?;
            }
        }
        Ok(())
    }
}
