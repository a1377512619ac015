//! The picture of a JGHM: its tree (root, trunk, image and text towers, leaves with their
//! tokens), each node with its exact marginal `p(z_u | evidence)` computed by belief
//! propagation ([`crate::bp::marginals()`]), so a reader sees BP's answer on the tree.
//!
//! Leaves are laid out left to right in the order of the tree (image tokens, then text tokens
//! below each trunk leaf); each internal node sits above the middle of its children, one row per
//! depth. A node is a box holding a bar chart of its marginal (one bar per state, height the
//! probability); below the box, its most likely state and that state's probability. A leaf also
//! shows its token: `x3 = 2` for the fourth image token observed as 2, `y0 = ?` for an
//! unobserved text token.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{draw_error, image_png, register_font, PlotError, PALETTE};
use crate::bp::{self, BpError};
use crate::evidence::{Evidence, EvidenceError};
use crate::files::{write_atomic, FileError};
use crate::model::{Jghm, Part};

/// The largest tree drawn: beyond it the boxes and labels are too small to read.
pub const MAX_NODES: usize = 200;

/// Why a tree was not drawn.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("the tree has {nodes} nodes, too many to draw legibly (at most {max}); use a smaller model")]
    TooLarge { nodes: usize, max: usize },
    #[error("cannot tell the image format of '{path}': the output must end in .svg or .png")]
    Format { path: String },
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
    #[error(transparent)]
    Bp(#[from] BpError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error(transparent)]
    File(#[from] FileError),
}

/// The two image formats a tree is written in, chosen by the output's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Svg,
    Png,
}

impl Format {
    /// The format named by `path`'s extension (`.svg` or `.png`, any case).
    pub fn of_path(path: &Path) -> Result<Format, TreeError> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => Err(TreeError::Format { path: path.display().to_string() }),
        }
    }
}

/// What was drawn: the tree's size and the root's marginal (as printed on the picture).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TreeDrawing {
    pub nodes: usize,
    pub leaves: usize,
    pub width: u32,
    pub height: u32,
    /// `p(z_root | evidence)`.
    pub root_marginal: Vec<f64>,
}

/// One node placed on the page.
struct Placed {
    x: i32,
    y: i32,
    part: Option<Part>,
    marginal: Vec<f64>,
    /// For a leaf: its side, position and observed token (`None`: not observed).
    leaf: Option<(Part, usize, Option<usize>)>,
}

/// The laid-out tree, ready to render on any backend.
struct Layout {
    nodes: Vec<Placed>,
    edges: Vec<(usize, usize)>,
    width: u32,
    height: u32,
    title: String,
    evidence_line: String,
}

const LEAF_SPACING: i32 = 86;
const ROW_HEIGHT: i32 = 120;
const BOX_W: i32 = 70;
const BOX_H: i32 = 40;
const TOP: i32 = 140;
const SIDE: i32 = 50;

fn colour(part: Option<Part>) -> RGBColor {
    match part {
        None => PALETTE[6],
        Some(Part::Shared) => PALETTE[2],
        Some(Part::Image) => PALETTE[0],
        Some(Part::Text) => PALETTE[1],
    }
}

fn tokens_line(tokens: Option<&[usize]>) -> String {
    match tokens {
        None => "not observed".to_string(),
        Some(t) => t.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
    }
}

fn layout(model: &Jghm, image: Option<&[usize]>, text: Option<&[usize]>) -> Result<Layout, TreeError> {
    let tree = model.tree();
    let n = tree.nodes.len();
    if n > MAX_NODES {
        return Err(TreeError::TooLarge { nodes: n, max: MAX_NODES });
    }
    let evidence = Evidence::tokens(model, image, text)?;
    let marginals = bp::marginals(model, &evidence)?;
    // Depth-first from the root: leaves take the next slot left to right, parents the middle
    // of their children.
    let mut xs = vec![0i32; n];
    let mut depth = vec![0i32; n];
    let mut next_leaf = 0i32;
    fn place(u: usize, d: i32, tree: &crate::model::Tree, xs: &mut [i32], depth: &mut [i32], next: &mut i32) {
        depth[u] = d;
        let children = &tree.nodes[u].children;
        if children.is_empty() {
            xs[u] = SIDE + BOX_W / 2 + *next * LEAF_SPACING;
            *next += 1;
            return;
        }
        for &c in children {
            place(c, d + 1, tree, xs, depth, next);
        }
        let (first, last) = (xs[children[0]], xs[children[children.len() - 1]]);
        xs[u] = (first + last) / 2;
    }
    place(0, 0, tree, &mut xs, &mut depth, &mut next_leaf);
    let max_depth = depth.iter().copied().max().unwrap_or(0);
    let leaves = next_leaf.max(1);
    let width = (2 * SIDE + BOX_W + (leaves - 1) * LEAF_SPACING).max(900) as u32;
    let height = (TOP + max_depth * ROW_HEIGHT + BOX_H + 70) as u32;
    let nodes = (0..n)
        .map(|u| {
            let node = &tree.nodes[u];
            let leaf = tree.leaf_slot[u].map(|(part, pos)| {
                let observed = match part {
                    Part::Image => image.map(|t| t[pos]),
                    Part::Text => text.map(|t| t[pos]),
                    Part::Shared => None,
                };
                (part, pos, observed)
            });
            Placed {
                x: xs[u],
                y: TOP + depth[u] * ROW_HEIGHT,
                part: node.transition.map(|t| t.part),
                marginal: marginals[u].clone(),
                leaf,
            }
        })
        .collect();
    let edges = (0..n).filter_map(|u| tree.nodes[u].parent.map(|p| (p, u))).collect();
    let title = format!(
        "JGHM tree: {n} nodes, {} leaves; bars: each node's exact marginal p(z | evidence) by BP",
        tree.image_leaves.len() + tree.text_leaves.len()
    );
    let evidence_line = format!("image x = {}    text y = {}", tokens_line(image), tokens_line(text));
    Ok(Layout { nodes, edges, width, height, title, evidence_line })
}

/// The most likely state and its probability.
fn top_state(p: &[f64]) -> (usize, f64) {
    p.iter().copied().enumerate().fold((0, f64::NEG_INFINITY), |best, (s, v)| if v > best.1 { (s, v) } else { best })
}

fn render<DB: DrawingBackend>(l: &Layout, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| draw_error("the tree", format!("{e:?}"));
    root.fill(&WHITE).map_err(err)?;
    let font = |size: i32| ("sans-serif", size).into_font();
    let grey = RGBColor(120, 120, 120);
    root.draw(&Text::new(l.title.clone(), (SIDE, 18), font(22).color(&BLACK))).map_err(err)?;
    root.draw(&Text::new(l.evidence_line.clone(), (SIDE, 48), font(16).color(&BLACK))).map_err(err)?;
    // Legend: the colour of each part present, then how to read a box.
    let mut x = SIDE;
    for (label, part) in [
        ("root", None),
        ("trunk", Some(Part::Shared)),
        ("image tower", Some(Part::Image)),
        ("text tower", Some(Part::Text)),
    ] {
        if !l.nodes.iter().any(|n| n.part == part) {
            continue;
        }
        root.draw(&Rectangle::new([(x, 74), (x + 14, 88)], colour(part).filled())).map_err(err)?;
        root.draw(&Text::new(label, (x + 20, 73), font(15).color(&BLACK))).map_err(err)?;
        x += 30 + 9 * label.len() as i32;
    }
    root.draw(&Text::new(
        "under each box: its most likely state z and that state's probability; under each leaf: its token (? = not observed)",
        (SIDE, 98),
        font(14).color(&grey),
    ))
    .map_err(err)?;
    for &(p, c) in &l.edges {
        let (a, b) = (&l.nodes[p], &l.nodes[c]);
        root.draw(&PathElement::new(vec![(a.x, a.y + BOX_H + 18), (b.x, b.y)], grey.stroke_width(1))).map_err(err)?;
    }
    for node in &l.nodes {
        let c = colour(node.part);
        let (x0, y0) = (node.x - BOX_W / 2, node.y);
        root.draw(&Rectangle::new([(x0, y0), (x0 + BOX_W, y0 + BOX_H)], WHITE.filled())).map_err(err)?;
        let s = node.marginal.len().max(1) as i32;
        let inner = BOX_W - 6;
        let bar = (inner / s).max(1);
        let used = bar * s.min(inner);
        let left = x0 + 3 + (inner - used) / 2;
        for (k, &p) in node.marginal.iter().enumerate().take(inner as usize) {
            let h = (p.clamp(0.0, 1.0) * f64::from(BOX_H - 6)).round() as i32;
            if h > 0 {
                let bx = left + k as i32 * bar;
                let gap = i32::from(bar > 2);
                root.draw(&Rectangle::new([(bx, y0 + BOX_H - 3 - h), (bx + bar - gap, y0 + BOX_H - 3)], c.filled()))
                    .map_err(err)?;
            }
        }
        root.draw(&Rectangle::new([(x0, y0), (x0 + BOX_W, y0 + BOX_H)], c.stroke_width(2))).map_err(err)?;
        let (z, p) = top_state(&node.marginal);
        let label = format!("z={z}: {p:.4}");
        root.draw(&Text::new(label, (x0, y0 + BOX_H + 3), font(12).color(&BLACK))).map_err(err)?;
        if let Some((part, pos, observed)) = node.leaf {
            let name = if part == Part::Text { "y" } else { "x" };
            let token = observed.map_or("?".to_string(), |t| t.to_string());
            root.draw(&Text::new(format!("{name}{pos} = {token}"), (x0, y0 + BOX_H + 19), font(13).color(&c)))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// The tree of `model` with every node's exact marginal given the observed image and/or text
/// tokens, as an SVG document. Refuses trees of more than [`MAX_NODES`] nodes.
pub fn tree_svg(
    model: &Jghm,
    image: Option<&[usize]>,
    text: Option<&[usize]>,
) -> Result<(String, TreeDrawing), TreeError> {
    register_font();
    let l = layout(model, image, text)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (l.width, l.height)).into_drawing_area();
        render(&l, &root)?;
        root.present().map_err(|e| draw_error("the tree", e))?;
    }
    Ok((svg, summary(&l)))
}

/// The same picture as PNG bytes.
pub fn tree_png(
    model: &Jghm,
    image: Option<&[usize]>,
    text: Option<&[usize]>,
) -> Result<(Vec<u8>, TreeDrawing), TreeError> {
    register_font();
    let l = layout(model, image, text)?;
    let mut pixels = vec![255u8; (l.width * l.height * 3) as usize];
    {
        let root = super::bitmap(&mut pixels, (l.width, l.height))?.into_drawing_area();
        render(&l, &root)?;
        root.present().map_err(|e| draw_error("the tree", e))?;
    }
    let mut png = vec![];
    image_png(&pixels, l.width, l.height, &mut png)
        .map_err(|source| PlotError::Encode { what: "the tree".to_string(), source })?;
    Ok((png, summary(&l)))
}

fn summary(l: &Layout) -> TreeDrawing {
    TreeDrawing {
        nodes: l.nodes.len(),
        leaves: l.nodes.iter().filter(|n| n.leaf.is_some()).count(),
        width: l.width,
        height: l.height,
        root_marginal: l.nodes[0].marginal.clone(),
    }
}

/// Draws the tree to `out` (SVG or PNG by its extension), written atomically. The format is
/// checked before any work, and nothing is written when drawing fails.
pub fn draw_tree(
    model: &Jghm,
    image: Option<&[usize]>,
    text: Option<&[usize]>,
    out: &Path,
) -> Result<TreeDrawing, TreeError> {
    let bytes_and_summary = match Format::of_path(out)? {
        Format::Svg => tree_svg(model, image, text).map(|(s, d)| (s.into_bytes(), d))?,
        Format::Png => tree_png(model, image, text)?,
    };
    write_atomic(out, &bytes_and_summary.0)?;
    Ok(bytes_and_summary.1)
}
