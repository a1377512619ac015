//! One function per command.

use anyhow::{bail, Result};
use serde_json::json;

use super::*;
use crate::bp;
use crate::evidence::parse_tokens;
use crate::files::{load_model, write_atomic};
use crate::model::{Jghm, ModelError, ModelFile, Part};
use crate::random_family::paper::PaperSpec;
use crate::random_family::RandomSpec;
use crate::sample::sample_pairs;

pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Model(ModelCommand::Random(a)) => model_random(a),
        Command::Model(ModelCommand::Paper(a)) => model_paper(a),
        Command::Model(ModelCommand::Check(a)) => model_check(a, cli.json),
        Command::Sample(a) => sample(a),
        Command::Posterior(a) => posterior(a, cli.json),
        Command::Pmi(a) => pmi(a, cli.json),
        Command::NextToken(a) => next_token(a, cli.json),
        Command::Demo(a) => demo(a, cli.json),
        Command::Train(a) => super::train::run(a, cli.json),
        Command::Eval(a) => super::eval::run(a, cli.json),
        Command::Scores(a) => super::scores::run(a, cli.json),
        Command::Export(a) => super::export::run(a, cli.json),
        Command::Bench(c) => super::bench::run(c, cli.json),
        Command::Emulate(a) => super::emulate::run(a, cli.json),
        Command::Info(a) => super::info::run_info(a, cli.json),
        Command::ClipLoss(a) => super::info::run_clip_loss(a, cli.json),
        Command::Sufficiency(a) => super::info::run_sufficiency(a, cli.json),
        Command::ZeroShot(a) => super::downstream::run_zero_shot(a, cli.json),
        Command::Generate(a) => super::downstream::run_generate(a, cli.json),
        Command::Diffuse(a) => super::downstream::run_diffuse(a, cli.json),
        Command::Rates(a) => super::rates::run_rates(a, cli.json),
        Command::Plot(a) => super::rates::run_plot(a, cli.json),
        Command::Merge(a) => super::merge::run(a, cli.json),
        Command::Reproduce(c) => super::reproduce::run(c, cli.json),
        Command::Draw(a) => super::draw::run(a, cli.json),
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

fn model_random(a: &RandomArgs) -> Result<()> {
    let spec = RandomSpec {
        states: a.states as usize,
        children: a.children as usize,
        depth: a.depth as usize,
        text_children: a.text_children.unwrap_or(a.children) as usize,
        text_depth: a.text_depth.unwrap_or(a.depth) as usize,
        vocab: a.vocab.unwrap_or(a.states) as usize,
        shared_depth: a.shared_depth as usize,
        shared_children: a.shared_children.unwrap_or(a.children) as usize,
        flip: a.flip,
        scale: a.scale,
        seed: a.seed,
    };
    let model = spec.build()?;
    let text = model.to_json();
    match &a.out {
        Some(path) => Ok(write_atomic(path, format!("{text}\n").as_bytes())?),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

fn model_paper(a: &PaperArgs) -> Result<()> {
    let both = a.flip.unwrap_or(f64::NAN);
    let spec = PaperSpec {
        states: a.states as usize,
        children: a.children as usize,
        depth: a.depth as usize,
        image_flip: a.image_flip.unwrap_or(both),
        text_flip: a.text_flip.unwrap_or(both),
        scale: a.scale,
        seed: a.seed,
    };
    write_model(&spec.build()?, a.out.as_deref())
}

fn write_model(model: &crate::model::Jghm, out: Option<&std::path::Path>) -> Result<()> {
    let text = model.to_json();
    match out {
        Some(path) => Ok(write_atomic(path, format!("{text}\n").as_bytes())?),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

fn model_check(a: &CheckArgs, json: bool) -> Result<()> {
    let model = match &a.out {
        None => load_model(&a.model)?,
        Some(out) => {
            let text = std::fs::read_to_string(&a.model)
                .map_err(|e| anyhow::anyhow!("cannot read model file '{}': {e}", a.model.display()))?;
            let mut file: ModelFile = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("'{}': {}", a.model.display(), ModelError::Json(e.to_string())))?;
            let corrected = file.renormalise();
            let model = Jghm::from_file(file).map_err(|e| anyhow::anyhow!("'{}': {e}", a.model.display()))?;
            write_atomic(out, format!("{}\n", model.to_json()).as_bytes())?;
            eprintln!(
                "renormalised every row (largest |sum - 1| corrected: {corrected:.3e}); wrote '{}'",
                out.display()
            );
            model
        }
    };
    let shape = model.shape();
    if json {
        print_json(&serde_json::to_value(&shape)?);
    } else {
        println!("{shape}");
    }
    Ok(())
}

fn sample(a: &SampleArgs) -> Result<()> {
    let model = load_model(&a.model.model)?;
    let pairs = sample_pairs(&model, a.n as usize, a.seed, a.hidden);
    let mut out = String::new();
    for pair in &pairs {
        out.push_str(&serde_json::to_string(pair)?);
        out.push('\n');
    }
    match &a.out {
        Some(path) => Ok(write_atomic(path, out.as_bytes())?),
        None => {
            use std::io::Write;
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            Ok(())
        }
    }
}

fn posterior(a: &PosteriorArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model.model)?;
    let (part, given) = match (&a.image, &a.text) {
        (Some(x), _) => (Part::Image, x),
        (None, Some(y)) => (Part::Text, y),
        (None, None) => bail!("give --image or --text"),
    };
    let post = bp::root_posterior_of(&model, part, &parse_tokens(part, given)?)?;
    let ll = post.log_likelihood;
    ensure_finite(&[("the log-likelihood", ll)], "")?;
    if json {
        print_json(&json!({ "log_likelihood": ll, "posterior": post.root }));
    } else {
        println!("log p({part}) = {ll:.10}");
        println!("root posterior p(z | {part}):");
        for (z, p) in post.root.iter().enumerate() {
            println!("  z = {z:>3}: {p:.10}");
        }
    }
    Ok(())
}

fn pmi(a: &PmiArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model.model)?;
    let p = bp::pmi(&model, &parse_tokens(Part::Image, &a.image)?, &parse_tokens(Part::Text, &a.text)?)?;
    ensure_finite(&[("pmi", p.pmi), ("log p(x, y)", p.log_pxy), ("log p(x)", p.log_px), ("log p(y)", p.log_py)], "")?;
    if json {
        print_json(&json!({ "pmi": p.pmi, "log_pxy": p.log_pxy, "log_px": p.log_px, "log_py": p.log_py }));
    } else {
        println!("PMI(x, y)   = {:.10}", p.pmi);
        println!("log p(x, y) = {:.10}", p.log_pxy);
        println!("log p(x)    = {:.10}", p.log_px);
        println!("log p(y)    = {:.10}", p.log_py);
    }
    Ok(())
}

fn next_token(a: &NextTokenArgs, json: bool) -> Result<()> {
    let model = load_model(&a.model.model)?;
    let x = a.image.as_deref().map(|s| parse_tokens(Part::Image, s)).transpose()?;
    let prefix = if a.prefix.trim().is_empty() { vec![] } else { parse_tokens(Part::Text, &a.prefix)? };
    let dist = bp::next_token_conditional(&model, x.as_deref(), &prefix)?;
    if json {
        print_json(&json!({ "position": prefix.len(), "distribution": dist }));
    } else {
        let i = prefix.len();
        println!("p(y_{i} | y_<{i}{}):", if x.is_some() { ", x" } else { "" });
        for (t, p) in dist.iter().enumerate() {
            println!("  {t:>3}: {p:.10}");
        }
    }
    Ok(())
}

fn demo(a: &DemoArgs, json: bool) -> Result<()> {
    let d = crate::demo::demo(a.seed, a.n as usize)?;
    if json {
        print_json(&serde_json::to_value(&d)?);
        return Ok(());
    }
    println!("Default model: standard random family, 10 states, 3 children, image depth 4 (81 tokens),");
    println!("text depth 3 (27 tokens), flip 0.3, seed {} (`jghm model random --states 10 --children 3 --depth 4 --text-depth 3 --seed {}`).", a.seed, a.seed);
    println!("{} sampled pairs, with exact quantities by belief propagation:\n", a.n);
    let tok = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<String>();
    for (i, r) in d.pairs.iter().enumerate() {
        println!("pair {i}: image {}", tok(&r.image));
        println!("        text  {}", tok(&r.text));
        println!(
            "  log p(x) = {:.4}  log p(y) = {:.4}  log p(x,y) = {:.4}  PMI = {:.4} nats",
            r.log_px, r.log_py, r.log_pxy, r.pmi
        );
        println!(
            "  true root z = {}; BP from the image alone: MAP root {}, p(true root | x) = {:.4}\n",
            r.root, r.map_root_from_image, r.posterior_of_true_root
        );
    }
    Ok(())
}
