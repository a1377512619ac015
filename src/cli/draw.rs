//! `jghm draw`: the picture of a model's tree with every node's exact marginal given the
//! evidence ([`crate::plot::tree`]).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

use crate::evidence::parse_tokens;
use crate::files::load_model;
use crate::model::Part;
use crate::plot::tree::draw_tree;

#[derive(Args, Debug)]
pub struct DrawArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: PathBuf,
    /// Observed image tokens, comma-separated (omit: the image is not observed).
    #[arg(long)]
    pub image: Option<String>,
    /// Observed text tokens, comma-separated (omit: the text is not observed).
    #[arg(long)]
    pub text: Option<String>,
    /// Output picture: a path ending in .svg or .png (written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: &DrawArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model)?;
    let x = a.image.as_deref().map(|s| parse_tokens(Part::Image, s)).transpose()?;
    let y = a.text.as_deref().map(|s| parse_tokens(Part::Text, s)).transpose()?;
    let d = draw_tree(&model, x.as_deref(), y.as_deref(), &a.out)?;
    let (z, p) =
        d.root_marginal.iter().copied().enumerate().fold(
            (0, f64::NEG_INFINITY),
            |b, (s, v)| {
                if v > b.1 {
                    (s, v)
                } else {
                    b
                }
            },
        );
    if json {
        println!(
            "{}",
            serde_json::json!({"out": a.out, "nodes": d.nodes, "leaves": d.leaves, "root_marginal": d.root_marginal})
        );
    } else {
        println!(
            "wrote the tree ({} nodes, {} leaves; root: z = {z} with p = {p:.4}) to {}",
            d.nodes,
            d.leaves,
            a.out.display()
        );
    }
    Ok(())
}
