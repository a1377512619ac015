//! The command line: parses, calls the library, prints. No mathematics lives here.
//!
//! Every command takes `--json` (machine-readable output on stdout). Every error ends as one
//! line on stderr (`error: ...`) and exit code 1 (2 for a malformed command line).

pub mod bench;
pub mod bench_train;
mod commands;
pub mod downstream;
pub mod draw;
mod emulate;
pub mod eval;
pub mod export;
pub mod info;
pub mod merge;
mod progress;
pub mod rates;
pub mod reproduce;
pub mod scores;
pub mod train;

use clap::{Args, Parser, Subcommand};

/// Exact ground truth for contrastive pre-training on Joint Generative Hierarchical Models.
#[derive(Parser, Debug)]
#[command(name = "jghm", version, about, long_about = None, after_help = EXAMPLES)]
pub struct Cli {
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "Examples:
  jghm model random --states 10 --children 3 --depth 4 --seed 1 --out model.json
  jghm sample --model model.json --n 5 --seed 7
  jghm posterior --model model.json --image 0,1,2,...
  jghm demo";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make or inspect models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Draw i.i.d. pairs (x, y) by ancestral sampling; writes JSON lines {"image": [..], "text": [..]}.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm sample --model model.json --n 1000 --seed 7 > pairs.jsonl"
    )]
    Sample(SampleArgs),
    /// Log-likelihood of an image (or a text) and the exact root posterior p(z | x), by BP.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm posterior --model model.json --image 0,3,1,2 --json\n  \
        prints {\"log_likelihood\": .., \"posterior\": [..]}"
    )]
    Posterior(PosteriorArgs),
    /// Pointwise mutual information PMI(x, y) = log p(x, y) - log p(x) - log p(y), exactly.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm pmi --model model.json --image 0,3,1,2 --text 1,1,0,2 --json\n  \
        prints {\"pmi\": .., \"log_pxy\": .., \"log_px\": .., \"log_py\": ..}"
    )]
    Pmi(PmiArgs),
    /// Next-token conditional p(y_i | y_<i, x) of the text given a prefix (and optionally an image).
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm next-token --model model.json --image 0,3,1,2 --prefix 1,1 --json\n  \
        prints {\"position\": 2, \"distribution\": [..]}"
    )]
    NextToken(NextTokenArgs),
    /// A transformer with explicit weights that computes BP (T11): its error against exact BP.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm emulate --model model.json --width 1024 --samples 1000 --json\n  \
        prints {\"max_abs_error\": .., \"mean_abs_error\": .., \"layers\": 9, \"width\": 1024, \"parameters\": ..}"
    )]
    Emulate(emulate::EmulateArgs),
    /// The main job on a default model: build it, sample pairs, print exact quantities.
    #[command(allow_negative_numbers = true, after_help = "Example:\n  jghm demo --seed 1")]
    Demo(DemoArgs),
    /// Train a learned pair (transformer, BP class or MLP) by the CLIP loss; writes safetensors checkpoints.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm train --model model.json --class transformer --steps 2000 --max-seconds 240 --seed 1 --out clip.safetensors\n  \
        jghm train --model model.json --class bp --max-seconds 120 --seed 1 --out bp.safetensors --json"
    )]
    Train(train::TrainArgs),
    /// Measure a trained checkpoint against the exact ground truth: excess risk (T4), T5 bounds, zero-shot, PMI correlation.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm eval --model model.json --checkpoint clip.safetensors --samples 200 --json\n  \
        prints {\"excess_risk\": .., \"excess_risk_stderr\": .., \"sufficiency_bound_image\": .., \"sufficiency_bound_text\": .., \"zero_shot_accuracy\": .., \"oracle_zero_shot_accuracy\": .., \"bayes_accuracy\": .., \"pmi_correlation\": .., ..}"
    )]
    Eval(eval::EvalArgs),
    /// Export sampled pairs (or every sequence, --all) with their exact log-probabilities, PMI and root posteriors, as safetensors.
    #[command(
        after_help = "Example:\n  jghm export --model model.json --n 100000 --seed 1 --out pairs.safetensors\n  \
        jghm export --model tiny.json --all --out all.safetensors\n  \
        then, in Python: safetensors.numpy.load_file(\"pairs.safetensors\")[\"images\"]"
    )]
    Export(export::ExportArgs),
    /// Write the learned score matrix S(x, y) of an enumerable model over every image and text (JSON).
    #[command(
        after_help = "Example:\n  jghm scores --model model.json --checkpoint clip.safetensors --out scores.json"
    )]
    Scores(scores::ScoresArgs),
    /// Exact I(X;Y), H(X), H(Y), H(Z), I(Z;X), I(Z;Y) by enumeration (else Monte Carlo with stderr).
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm info --model model.json --exact --json\n  \
        prints {\"mutual_information\": .., \"stderr\": 0.0, \"method\": \"exact enumeration\", \"entropy_image\": .., ..}\n  \
        jghm info --model big.json --samples 100000 --seed 1"
    )]
    Info(info::InfoArgs),
    /// The CLIP loss L_K (both directions) of a score, its optimum at the PMI and the excess (T2-T4).
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm clip-loss --model model.json --batch 4 --score perturbed:0.5 --exact --json\n  \
        prints {\"loss\": .., \"stderr\": 0.0, \"optimum\": .., \"excess\": .., ..}\n  \
        jghm clip-loss --model model.json --batch inf --score t7 --samples 2000 --seed 1"
    )]
    ClipLoss(info::ClipLossArgs),
    /// The sufficiency gap Suff of a statistic in three forms, with I(X;Y) and I(T;Y) (T5-T6).
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm sufficiency --model model.json --statistic map-root --exact --json\n  \
        prints {\"sufficiency\": .., \"mutual_information\": .., \"statistic_information\": .., ..}\n  \
        jghm sufficiency --model model.json --statistic first-tokens:2 --side text"
    )]
    Sufficiency(info::SufficiencyArgs),
    /// Sample-complexity sweep (T12): train each class at each n and seed, measure exactly, fit the rates, draw the figures.
    #[command(after_help = rates::RATES_HELP)]
    Rates(rates::RatesArgs),
    /// Redraw a sweep's figures (and fits.json) from DIR/results.csv (and infonce.csv, emulation.csv), and prompts figures from DIR/prompts*.csv.
    #[command(after_help = "Example:\n  jghm plot plots")]
    Plot(rates::PlotArgs),
    /// Combine the shard folders of a sweep (--shard K/N of rates, reproduce, emulate --widths) into OUT, with its figures.
    #[command(after_help = merge::MERGE_HELP)]
    Merge(merge::MergeArgs),
    /// Zero-shot classification of a label read off the text, against Bayes, with the T8 bounds.
    #[command(
        after_help = "Example:\n  jghm zero-shot --model model.json --score pmi --label text-token:0 --prompts 64 --samples 2000 --seed 1 --json\n  \
        prints {\"accuracy\": .., \"bayes_accuracy\": .., \"log_loss\": .., \"bayes_log_loss\": .., \"excess_log_loss\": .., \"bound\": {..}, ..}\n  \
        jghm zero-shot --model model.json --score t7 --label root --exact"
    )]
    ZeroShot(downstream::ZeroShotArgs),
    /// Text from an image: samples from p(y|x) (exact), Q^S (resampling) or P(y | f(x)); --kl for the divergence (T9).
    #[command(
        after_help = "Example:\n  jghm generate --model model.json --image 0,2,1,1 --from pmi --n 5 --seed 1 --kl\n  \
        jghm generate --model model.json --image 0,2,1,1 --from statistic:map-root --n 5 --kl --json"
    )]
    Generate(downstream::GenerateArgs),
    /// Image from text by DDPM with the exact Bayes denoiser (BP with soft evidence); TV to p(x|y) (T10 with --t10).
    #[command(
        after_help = "Example:\n  jghm diffuse --model model.json --text 2,2,0,1 --steps 400 --samples 2000 --seed 1 --json\n  \
        prints {\"tv_to_exact\": .., \"tv_reference\": .., ..}\n  \
        jghm diffuse --model model.json --text 2,2,0,1 --condition statistic:map-root --steps 100 --samples 500 --t10 200"
    )]
    Diffuse(downstream::DiffuseArgs),
    /// Throughput benchmarks of exact inference (timings, for the README's performance table).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// The paper's simulations: the four risks against ε, zero-shot against prompts, out of distribution.
    #[command(subcommand)]
    Reproduce(reproduce::ReproduceCommand),
    /// Draw the model's tree (SVG or PNG) with every node's exact marginal given the evidence, by BP.
    #[command(after_help = "Example:\n  jghm draw --model model.json --image 0,2,1,1 --out tree.svg\n  \
        jghm draw --model model.json --image 0,2,1,1 --text 2,2,0,1 --out tree.png")]
    Draw(draw::DrawArgs),
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Draw a model of the standard random family (the book, The JGHM) and write its JSON.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm model random --states 10 --children 3 --depth 4 --text-depth 3 --flip 0.3 --seed 1 --out model.json"
    )]
    Random(RandomArgs),
    /// Draw the paper's own model (its generator: NumPy's legacy RandomState, np.random.seed(42), text tower first) and write its JSON.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm model paper --flip 0.2 --out paper.json\n  jghm model paper --image-flip 0.3 --text-flip 0.2 --seed 42 --out paper.json"
    )]
    Paper(PaperArgs),
    /// Validate a model file and describe its shape.
    #[command(
        allow_negative_numbers = true,
        after_help = "Example:\n  jghm model check --model model.json\n  \
        jghm model check --model handwritten.json --renormalise --out model.json"
    )]
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Model file (JSON).
    #[arg(long)]
    pub model: std::path::PathBuf,
    /// Divide every row (and the prior) by its sum first, for hand-written rows such as 0.3333,
    /// and write the renormalised model to --out.
    #[arg(long, requires = "out")]
    pub renormalise: bool,
    /// Where the renormalised model is written (atomically).
    #[arg(long, requires = "renormalise")]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct ModelArg {
    /// Model file (JSON).
    #[arg(long)]
    pub model: std::path::PathBuf,
}

#[derive(Args, Debug)]
pub struct RandomArgs {
    /// States S at the root and every internal level.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub states: u32,
    /// Children per node of the image tower (and of the trunk).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub children: u32,
    /// Levels of the image tower.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub depth: u32,
    /// Children per node of the text tower [default: --children].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub text_children: Option<u32>,
    /// Levels of the text tower [default: --depth].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub text_depth: Option<u32>,
    /// Vocabulary of both towers' last level [default: --states].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub vocab: Option<u32>,
    /// Levels of a shared trunk above both towers.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=32))]
    pub shared_depth: u32,
    /// Children per trunk node [default: --children].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub shared_children: Option<u32>,
    /// Flip ε in [0, 1]: Ψ = (1 - ε) P + ε R.
    #[arg(long, default_value_t = 0.3)]
    pub flip: f64,
    /// Scale s of the Gaussian logits of R.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed of the random draws (the draws do not depend on --flip or --scale). Seeds that pick a
    /// model default to 1 (as `demo`, `rates`, `reproduce`); seeds of draws from a model to 0.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the model here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct PaperArgs {
    /// Flip ε of both towers (overridden per tower by --image-flip / --text-flip).
    #[arg(long, required_unless_present_all = ["image_flip", "text_flip"])]
    pub flip: Option<f64>,
    /// Flip of the image tower [default: --flip].
    #[arg(long)]
    pub image_flip: Option<f64>,
    /// Flip of the text tower [default: --flip].
    #[arg(long)]
    pub text_flip: Option<f64>,
    /// The argument of np.random.seed, in [0, 2^32 - 1].
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// States S at every level.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub states: u32,
    /// Children per node of both towers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub children: u32,
    /// Levels of both towers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub depth: u32,
    /// Scale of the Gaussian logits.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Write the model here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Number of pairs.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub n: u64,
    /// Seed (the output does not depend on the number of threads).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the state of every node ("hidden", by node id in depth-first order).
    #[arg(long)]
    pub hidden: bool,
    /// Write the pairs here (atomically) instead of stdout.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
pub struct PosteriorArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Image tokens, comma-separated.
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    pub image: Option<String>,
    /// Text tokens, comma-separated.
    #[arg(long)]
    pub text: Option<String>,
}

#[derive(Args, Debug)]
pub struct PmiArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Image tokens, comma-separated.
    #[arg(long)]
    pub image: String,
    /// Text tokens, comma-separated.
    #[arg(long)]
    pub text: String,
}

#[derive(Args, Debug)]
pub struct NextTokenArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Image tokens, comma-separated (omit for p(y_i | y_<i) alone).
    #[arg(long)]
    pub image: Option<String>,
    /// The text prefix y_<i, comma-separated (empty string for the first token).
    #[arg(long, default_value = "")]
    pub prefix: String,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Seed of the model and of the samples.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of sampled pairs to show.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub n: u64,
}

/// Runs the command line; returns the process exit code.
/// Clap's message on one line: everything before its usage block (the missing arguments, the
/// valid values, the "did you mean" tip), joined with "; ".
fn one_line(rendered: &str) -> String {
    let lines: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match lines.split_first() {
        None => "error: invalid command line".to_string(),
        Some((first, rest)) if first.ends_with(':') => format!("{first} {}", rest.join(", ")),
        Some((first, rest)) => std::iter::once(*first).chain(rest.iter().copied()).collect::<Vec<_>>().join("; "),
    }
}

/// A rate rounded to an integer with thousands separators: `1234567.8` → `1,234,568`.
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// Refuses to print a non-finite number as if it were one: an error naming the first field that
/// is not finite, with `cause` (the likely reason, in parentheses) appended when not empty.
fn ensure_finite(fields: &[(&str, f64)], cause: &str) -> anyhow::Result<()> {
    match fields.iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((name, v)) if cause.is_empty() => anyhow::bail!("{name} is {v}, not a finite number"),
        Some((name, v)) => anyhow::bail!("{name} is {v}, not a finite number ({cause})"),
    }
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: print and succeed.
            let _ = e.print();
            return 0;
        }
        Err(e) => {
            eprintln!("{} (see --help)", one_line(&e.to_string()));
            return 2;
        }
    };
    match commands::run(&cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_print_with_thousands_separators() {
        for (x, want) in [(0.4, "0"), (999.6, "1,000"), (1234567.8, "1,234,568"), (-12345.0, "-12,345"), (-0.2, "0")] {
            assert_eq!(super::grouped(x), want);
        }
    }
}
