//! Entropies and mutual informations of a JGHM (the book, Belief propagation): exact by enumeration, or Monte Carlo.
//!
//! # The separator `W`
//! `X ⟂ Y | W`, where `W` is the root `z` in the two-tower model and the joint state of the trunk
//! leaves with a shared trunk. Hence
//!
//! ```text
//! p(x, y) = Σ_w p(w) p(x | w) p(y | w)   and   PMI(x, y) = log Σ_w p(w | x) p(w | y) / p(w)   (T7)
//! ```
//!
//! so the exact tables enumerate the images and the texts *separately* (one BP pass each, giving
//! `log p(x)` and `p(w | x)`) and combine them pair by pair through `W`: the work is
//! `|X|·|Y|·|W|` (`|W| = S_0` without a trunk), instead of one joint pass per pair.
//!
//! # Work limits (documented once, here)
//! - [`WORK_LIMIT`]: `|X|·|Y|·|W| ≤ 4·10^8` multiply-adds, a few seconds on one core.
//! - [`SIDE_LIMIT`]: at most `2^22` sequences per side are held in memory (with their posteriors).
//! - [`CUT_LIMIT`]: a separator or a layer has at most `2^16` joint states.
//!
//! An exact request beyond a limit is refused at once ([`InfoError::TooLarge`]) with the size and
//! the alternative (Monte Carlo); nothing is allocated first.
//!
//! # Monte Carlo
//! `n` pairs are drawn by [`crate::sample::sample_pairs`] (reproducible from the seed whatever the
//! thread count); each quantity is the mean of a per-pair term with its standard error
//! `sd / √n` and the normal 95% interval `mean ± 1.96 se`. The per-pair terms are exact given the
//! pair (`PMI(x, y)`, `-log p(x)`, `KL(p(z | x) ‖ π)`: Rao-Blackwellised over `z`).

use rayon::prelude::*;
use serde::Serialize;

use crate::bp::{self, fast::FastBp, Tokens, Workspace};
use crate::logspace::log_sum_exp;
use crate::model::{Jghm, Part};
use crate::sample::sample_pairs;

/// Sequences per block of the batched enumeration of one side.
pub const ENUMERATION_BLOCK: usize = 1 << 16;

/// Largest exact work `|X|·|Y|·|W|` (multiply-adds) accepted.
pub const WORK_LIMIT: f64 = 4e8;
/// Largest number of sequences of one side held in an exact table.
pub const SIDE_LIMIT: f64 = 4_194_304.0;
/// Largest number of joint states of a separator or layer (`Π_{u ∈ D} S_u`).
pub const CUT_LIMIT: f64 = 65_536.0;

/// Why an information quantity cannot be computed as asked.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InfoError {
    #[error("exact enumeration is too large: {what} is {size:.3e}, above the limit {limit:.1e}; {instead}")]
    TooLarge { what: String, size: f64, limit: f64, instead: String },
    #[error("Monte Carlo needs at least 2 samples (got {0}) to estimate a standard error")]
    TooFewSamples(usize),
}

/// How a number was obtained.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Method {
    /// Exact enumeration (f64, log domain).
    Exact,
    /// Monte Carlo over `samples` i.i.d. draws of seed `seed`.
    MonteCarlo { samples: usize, seed: u64 },
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Exact => write!(f, "exact enumeration"),
            Method::MonteCarlo { samples, seed } => write!(f, "Monte Carlo ({samples} samples, seed {seed})"),
        }
    }
}

/// A value with its standard error and 95% interval (`stderr = 0` and a point interval if exact).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub stderr: f64,
    pub ci95: [f64; 2],
}

impl Estimate {
    pub fn exact(value: f64) -> Self {
        Estimate { value, stderr: 0.0, ci95: [value, value] }
    }

    /// Mean, `se = sd / √n` (sample sd with `n - 1`), interval `mean ± 1.96 se`.
    /// Sums in the order given, so the result is reproducible.
    pub fn from_samples(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let stderr = (var / n).sqrt();
        Estimate { value: mean, stderr, ci95: [mean - 1.96 * stderr, mean + 1.96 * stderr] }
    }

    /// Whether `self ≤ bound`: exactly (both standard errors 0), or within Monte Carlo error
    /// (`self − bound ≤ 3 √(se² + se_bound²)`), with `1e-12` of round-off either way.
    pub fn at_most(&self, bound: &Estimate) -> Verdict {
        let gap = self.value - bound.value;
        let slack = 3.0 * self.stderr.hypot(bound.stderr);
        if gap <= 1e-12 {
            Verdict::Holds
        } else if gap <= slack + 1e-12 {
            Verdict::HoldsWithinError
        } else {
            Verdict::Violated
        }
    }

    /// `value` alone when exact, `value ± stderr` otherwise, with `digits` decimals ([`fixed`]).
    pub fn display(&self, digits: usize) -> String {
        if self.stderr > 0.0 {
            format!("{} ± {}", fixed(self.value, digits), fixed(self.stderr, digits))
        } else {
            fixed(self.value, digits)
        }
    }
}

/// `v` with `digits` decimals, a value that rounds to zero printed without a sign (no `-0.000`).
pub fn fixed(v: f64, digits: usize) -> String {
    let text = format!("{v:.digits$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => text,
    }
}

/// The verdict on a printed inequality `a ≤ b` between estimates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// `a ≤ b` as computed.
    Holds,
    /// `a > b`, but by less than 3 standard errors of the difference.
    HoldsWithinError,
    /// `a > b` beyond 3 standard errors: the theorem, or its computation, is wrong.
    Violated,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Holds => "holds",
            Verdict::HoldsWithinError => "holds within Monte Carlo error (3 standard errors)",
            Verdict::Violated => "VIOLATED beyond 3 standard errors",
        })
    }
}

/// A set of nodes `D` (an antichain) and the law `p(v_D)` of their joint state.
///
/// Joint states are numbered in mixed radix, the first node most significant.
#[derive(Clone, Debug)]
pub struct Cut {
    pub nodes: Vec<usize>,
    pub radix: Vec<usize>,
    /// `p(v_D)` for every joint state.
    pub prior: Vec<f64>,
}

impl Cut {
    /// The separator `W` of `X` and `Y`: the trunk leaves (the root without a trunk).
    pub fn separator(model: &Jghm) -> Result<Cut, InfoError> {
        Cut::new(model, model.tree().trunk_leaves.clone())
    }

    /// A cut through `nodes`; its prior by an upward pass over their ancestors with one-hot
    /// evidence at `D`: `p(v_D) = Σ_{ancestors} π(z) Π Ψ`.
    pub fn new(model: &Jghm, nodes: Vec<usize>) -> Result<Cut, InfoError> {
        let tree = model.tree();
        let radix: Vec<usize> = nodes.iter().map(|&u| tree.nodes[u].states).collect();
        let size = radix.iter().map(|&r| r as f64).product::<f64>();
        if size > CUT_LIMIT {
            return Err(InfoError::TooLarge {
                what: format!("the joint state space of {} nodes", nodes.len()),
                size,
                limit: CUT_LIMIT,
                instead: "use a statistic with fewer nodes, or Monte Carlo".into(),
            });
        }
        let mut cut = Cut { nodes, radix, prior: vec![] };
        cut.prior = (0..size as usize).map(|a| cut.log_prior_of(model, a).exp()).collect();
        Ok(cut)
    }

    /// Number of joint states `|W|`.
    pub fn size(&self) -> usize {
        self.prior.len()
    }

    /// The states of the cut's nodes in joint state `a`.
    pub fn decode(&self, mut a: usize) -> Vec<usize> {
        let mut states = vec![0; self.radix.len()];
        for (s, r) in states.iter_mut().zip(&self.radix).rev() {
            *s = a % r;
            a /= r;
        }
        states
    }

    /// `log p(v_D = decode(a))` by an upward pass restricted to the ancestors of `D`.
    fn log_prior_of(&self, model: &Jghm, a: usize) -> f64 {
        let tree = model.tree();
        let states = self.decode(a);
        let n = tree.nodes.len();
        // h[u] = log p(v_D below u | z_u); None for a node with no cut node below it.
        let mut h: Vec<Option<Vec<f64>>> = vec![None; n];
        for (&u, &s) in self.nodes.iter().zip(&states) {
            h[u] = Some((0..tree.nodes[u].states).map(|b| if b == s { 0.0 } else { f64::NEG_INFINITY }).collect());
        }
        for u in (0..n).rev() {
            if h[u].is_some() {
                continue;
            }
            let node = &tree.nodes[u];
            let mut acc: Option<Vec<f64>> = None;
            for &w in &node.children {
                let Some(hw) = &h[w] else { continue };
                let psi = model.transition(tree.nodes[w].transition.expect("child"));
                // μ_w(a) = log Σ_b Ψ_w(a, b) exp(h_w(b))
                let mu: Vec<f64> = (0..node.states)
                    .map(|a| {
                        log_sum_exp(&hw.iter().enumerate().map(|(b, hb)| psi[(a, b)].ln() + hb).collect::<Vec<_>>())
                    })
                    .collect();
                let sum = acc.get_or_insert_with(|| vec![0.0; node.states]);
                sum.iter_mut().zip(&mu).for_each(|(s, m)| *s += m);
            }
            h[u] = acc;
        }
        let root = h[0].as_ref().expect("every cut node lies below the root");
        log_sum_exp(&model.prior().iter().zip(root).map(|(p, hr)| p.ln() + hr).collect::<Vec<_>>())
    }

    /// After an upward pass whose evidence lies below the cut:
    /// `p(v_D | e) = p(v_D) exp(Σ_{u ∈ D} h_u(v_u)) / p(e)`, written into `out`.
    pub fn posterior_into(&self, model: &Jghm, ws: &Workspace, out: &mut [f64]) {
        let ll = ws.log_likelihood();
        for (a, o) in out.iter_mut().enumerate() {
            let states = self.decode(a);
            let h: f64 = self.nodes.iter().zip(&states).map(|(&u, &s)| ws.h(model, u)[s]).sum();
            *o = if self.prior[a] > 0.0 { (self.prior[a].ln() + h - ll).exp() } else { 0.0 };
        }
    }
}

/// Upward pass with evidence on one side only.
pub(crate) fn upward_side(ws: &mut Workspace, model: &Jghm, part: Part, tokens: &[usize]) -> f64 {
    let obs = match part {
        Part::Image => Tokens { image: Some(tokens), text: None },
        _ => Tokens { image: None, text: Some(tokens) },
    };
    ws.upward(model, &obs)
}

/// Every sequence of one side with positive probability, with `log p(x)`, `p(w | x)` and
/// `p(z | x)`. Rows are in mixed-radix order of the tokens (first token most significant).
#[derive(Clone, Debug)]
pub struct SideTable {
    pub part: Part,
    pub tokens: Vec<Vec<usize>>,
    /// `log p(x)`.
    pub log_p: Vec<f64>,
    /// `p(w | x)`, row-major `len × |W|`.
    pub latent: Vec<f64>,
    /// `p(z | x)` over root states, row-major `len × S_0`.
    pub root: Vec<f64>,
    pub latent_size: usize,
    pub root_size: usize,
}

/// Number of sequences of one side, `V^N`.
pub fn side_size(model: &Jghm, part: Part) -> f64 {
    (model.vocab_of(part) as f64).powi(model.len_of(part) as i32)
}

impl SideTable {
    /// Enumerates one side (refused beyond [`SIDE_LIMIT`]); parallel over fixed chunks of
    /// [`bp::CHUNK`] sequences, combined in order.
    pub fn new(model: &Jghm, part: Part, cut: &Cut) -> Result<SideTable, InfoError> {
        let size = side_size(model, part);
        if size > SIDE_LIMIT {
            return Err(InfoError::TooLarge {
                what: format!("the number of {part} sequences ({}^{})", model.vocab_of(part), model.len_of(part)),
                size,
                limit: SIDE_LIMIT,
                instead: "use Monte Carlo (--samples N --seed S)".into(),
            });
        }
        let (n, len, vocab) = (size as usize, model.len_of(part), model.vocab_of(part));
        let (nw, s0) = (cut.size(), model.root_states());
        if cut.nodes == [0] {
            return Ok(SideTable::by_fast_bp(model, part, n, len, vocab));
        }
        let chunks: Vec<SideTable> = (0..n.div_ceil(bp::CHUNK))
            .into_par_iter()
            .map(|c| {
                let mut ws = Workspace::new(model);
                let mut t = SideTable::empty(part, nw, s0);
                let (mut w, mut z) = (vec![0.0; nw], vec![0.0; s0]);
                for index in c * bp::CHUNK..((c + 1) * bp::CHUNK).min(n) {
                    let tokens = decode_sequence(index, len, vocab);
                    let ll = upward_side(&mut ws, model, part, &tokens);
                    if ll == f64::NEG_INFINITY {
                        continue;
                    }
                    cut.posterior_into(model, &ws, &mut w);
                    ws.root_posterior_into(model, &mut z);
                    t.push(tokens, ll, &w, &z);
                }
                t
            })
            .collect();
        let mut table = SideTable::empty(part, nw, s0);
        for c in chunks {
            table.tokens.extend(c.tokens);
            table.log_p.extend(c.log_p);
            table.latent.extend(c.latent);
            table.root.extend(c.root);
        }
        Ok(table)
    }

    /// Without a trunk the separator is the root, so `p(w | x) = p(z | x)`: the batched
    /// [`FastBp`] gives `log p(x)` and the posterior of [`ENUMERATION_BLOCK`] sequences at a
    /// time (parallel inside, in order across blocks), so the work memory is one block's.
    fn by_fast_bp(model: &Jghm, part: Part, n: usize, len: usize, vocab: usize) -> SideTable {
        let s0 = model.root_states();
        let fast = FastBp::for_batch(model, n);
        let mut table = SideTable::empty(part, s0, s0);
        let block = ENUMERATION_BLOCK.min(n);
        let (mut post, mut ll) = (vec![0.0; block * s0], vec![0.0; block]);
        for first in (0..n).step_by(block) {
            let m = block.min(n - first);
            let tokens: Vec<Vec<usize>> =
                (first..first + m).into_par_iter().map(|i| decode_sequence(i, len, vocab)).collect();
            fast.root_posteriors_into(part, &tokens, &mut post[..m * s0], &mut ll[..m]);
            for (i, x) in tokens.into_iter().enumerate() {
                if ll[i] > f64::NEG_INFINITY {
                    let z = &post[i * s0..(i + 1) * s0];
                    table.push(x, ll[i], z, z);
                }
            }
        }
        table
    }

    fn empty(part: Part, latent_size: usize, root_size: usize) -> Self {
        SideTable { part, tokens: vec![], log_p: vec![], latent: vec![], root: vec![], latent_size, root_size }
    }

    fn push(&mut self, tokens: Vec<usize>, ll: f64, w: &[f64], z: &[f64]) {
        self.tokens.push(tokens);
        self.log_p.push(ll);
        self.latent.extend_from_slice(w);
        self.root.extend_from_slice(z);
    }

    /// Number of sequences with positive probability.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
    /// `p(x_i)`.
    pub fn p(&self, i: usize) -> f64 {
        self.log_p[i].exp()
    }
    /// `p(w | x_i)`.
    pub fn latent_row(&self, i: usize) -> &[f64] {
        &self.latent[i * self.latent_size..(i + 1) * self.latent_size]
    }
    /// `p(z | x_i)`.
    pub fn root_row(&self, i: usize) -> &[f64] {
        &self.root[i * self.root_size..(i + 1) * self.root_size]
    }
    /// `H = -Σ_x p(x) log p(x)`.
    pub fn entropy(&self) -> f64 {
        -self.log_p.iter().map(|l| l.exp() * l).sum::<f64>()
    }
    /// `I(Z; X) = Σ_x p(x) KL(p(z | x) ‖ π)`.
    pub fn root_information(&self, prior: &[f64]) -> f64 {
        (0..self.len()).map(|i| self.p(i) * kl(self.root_row(i), prior)).sum()
    }
}

/// Tokens number `index` in mixed radix (first token most significant).
pub fn decode_sequence(mut index: usize, len: usize, vocab: usize) -> Vec<usize> {
    let mut t = vec![0; len];
    for v in t.iter_mut().rev() {
        *v = index % vocab;
        index /= vocab;
    }
    t
}

/// `KL(p ‖ q) = Σ_i p_i log(p_i / q_i)`, terms with `p_i = 0` dropped.
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    p.iter().zip(q).filter(|(pi, _)| **pi > 0.0).map(|(pi, qi)| pi * (pi / qi).ln()).sum()
}

/// Both sides of a model enumerated, combined through the separator `W`.
#[derive(Clone, Debug)]
pub struct Enumeration<'m> {
    pub model: &'m Jghm,
    pub cut: Cut,
    pub image: SideTable,
    pub text: SideTable,
}

/// The work of exact enumeration, `|X|·|Y|·|W|`, checked against the limits before anything is
/// computed.
pub fn exact_work(model: &Jghm) -> Result<f64, InfoError> {
    let tree = model.tree();
    let w: f64 = tree.trunk_leaves.iter().map(|&u| tree.nodes[u].states as f64).product();
    let (nx, ny) = (side_size(model, Part::Image), side_size(model, Part::Text));
    let work = nx * ny * w;
    let instead = "use Monte Carlo instead (--samples N --seed S)".to_string();
    if w > CUT_LIMIT {
        return Err(InfoError::TooLarge {
            what: "the separator's joint states |W|".into(),
            size: w,
            limit: CUT_LIMIT,
            instead,
        });
    }
    for (part, size) in [(Part::Image, nx), (Part::Text, ny)] {
        if size > SIDE_LIMIT {
            return Err(InfoError::TooLarge {
                what: format!("the number of {part} sequences ({}^{})", model.vocab_of(part), model.len_of(part)),
                size,
                limit: SIDE_LIMIT,
                instead,
            });
        }
    }
    if work > WORK_LIMIT {
        return Err(InfoError::TooLarge {
            what: "the work |X|·|Y|·|W|".into(),
            size: work,
            limit: WORK_LIMIT,
            instead,
        });
    }
    Ok(work)
}

impl<'m> Enumeration<'m> {
    /// Enumerates both sides; refused at once beyond the limits ([`exact_work`]).
    pub fn new(model: &'m Jghm) -> Result<Self, InfoError> {
        exact_work(model)?;
        let cut = Cut::separator(model)?;
        let image = SideTable::new(model, Part::Image, &cut)?;
        let text = SideTable::new(model, Part::Text, &cut)?;
        Ok(Enumeration { model, cut, image, text })
    }

    /// The table of one side.
    pub fn side(&self, part: Part) -> &SideTable {
        if part == Part::Image {
            &self.image
        } else {
            &self.text
        }
    }

    /// `PMI(x_i, y_j) = log Σ_w p(w | x_i) p(w | y_j) / p(w)` (T7); `-inf` if `p(x, y) = 0`.
    pub fn pmi(&self, i: usize, j: usize) -> f64 {
        weighted_inner(self.image.latent_row(i), self.text.latent_row(j), &self.cut.prior).ln()
    }

    /// The PMI of every pair, row-major `|X| × |Y|`, in parallel over fixed chunks of rows.
    pub fn pmi_grid(&self) -> Vec<f64> {
        let ny = self.text.len();
        let mut out = vec![0.0; self.image.len() * ny];
        out.par_chunks_mut(ny).enumerate().for_each(|(i, row)| {
            for (j, o) in row.iter_mut().enumerate() {
                *o = self.pmi(i, j);
            }
        });
        out
    }

    /// `I(X; Y) = Σ_{x,y} p(x, y) PMI(x, y)`, `p(x, y) = p(x) p(y) exp PMI(x, y)`.
    pub fn mutual_information(&self) -> f64 {
        let rows: Vec<f64> = (0..self.image.len())
            .into_par_iter()
            .map(|i| {
                let px = self.image.p(i);
                (0..self.text.len())
                    .map(|j| {
                        let pmi = self.pmi(i, j);
                        if pmi == f64::NEG_INFINITY {
                            0.0
                        } else {
                            px * self.text.p(j) * pmi.exp() * pmi
                        }
                    })
                    .sum::<f64>()
            })
            .collect();
        rows.iter().sum()
    }
}

/// `Σ_w a_w b_w / p(w)`, terms with `p(w) = 0` dropped (they have `a_w = b_w = 0`).
pub fn weighted_inner(a: &[f64], b: &[f64], prior: &[f64]) -> f64 {
    a.iter().zip(b).zip(prior).filter(|(_, p)| **p > 0.0).map(|((a, b), p)| a * b / p).sum()
}

/// `H(π) = -Σ_z π(z) log π(z)`.
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter().filter(|&&v| v > 0.0).map(|v| v * v.ln()).sum::<f64>()
}

/// The information quantities of the book, Belief propagation, each with how it was obtained.
#[derive(Clone, Debug, Serialize)]
pub struct Information {
    pub method: Method,
    /// `I(X; Y)` (nats).
    pub mutual_information: Estimate,
    /// `H(X)`.
    pub entropy_image: Estimate,
    /// `H(Y)`.
    pub entropy_text: Estimate,
    /// `H(Z)` of the root (always exact: `-Σ π log π`).
    pub entropy_root: Estimate,
    /// `I(Z; X)`.
    pub information_root_image: Estimate,
    /// `I(Z; Y)`.
    pub information_root_text: Estimate,
}

impl Information {
    /// Each quantity with its report name: `mutual_information`, `entropy_image`, `entropy_text`,
    /// `entropy_root`, `information_root_image`, `information_root_text`.
    pub fn rows(&self) -> [(&'static str, Estimate); 6] {
        [
            ("mutual_information", self.mutual_information),
            ("entropy_image", self.entropy_image),
            ("entropy_text", self.entropy_text),
            ("entropy_root", self.entropy_root),
            ("information_root_image", self.information_root_image),
            ("information_root_text", self.information_root_text),
        ]
    }

    /// The flat report of `jghm info --json`: each row's value and `<row>_stderr`, the method,
    /// and `stderr`/`ci95` of `I(X; Y)`, in nats.
    pub fn flat_json(&self) -> serde_json::Value {
        let mut out = serde_json::json!({
            "method": self.method.to_string(),
            "stderr": self.mutual_information.stderr,
            "ci95": self.mutual_information.ci95,
            "units": "nats",
        });
        for (name, e) in self.rows() {
            out[name] = serde_json::json!(e.value);
            out[format!("{name}_stderr")] = serde_json::json!(e.stderr);
        }
        out
    }
}

/// Every quantity exactly, by enumeration.
///
/// ```
/// use jghm::info::{exact, Enumeration};
/// let model = jghm::RandomSpec::symmetric(3, 2, 2, 1).build()?;
/// let info = exact(&Enumeration::new(&model)?);
/// // Data processing along X – Z – Y: the root knows at least what the text knows about the image.
/// assert!(info.mutual_information.value <= info.information_root_image.value + 1e-12);
/// assert_eq!(info.mutual_information.stderr, 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn exact(en: &Enumeration) -> Information {
    let prior = en.model.prior();
    Information {
        method: Method::Exact,
        mutual_information: Estimate::exact(en.mutual_information()),
        entropy_image: Estimate::exact(en.image.entropy()),
        entropy_text: Estimate::exact(en.text.entropy()),
        entropy_root: Estimate::exact(entropy(prior)),
        information_root_image: Estimate::exact(en.image.root_information(prior)),
        information_root_text: Estimate::exact(en.text.root_information(prior)),
    }
}

/// Every quantity by Monte Carlo over `samples` pairs (see the module doc).
pub fn monte_carlo(model: &Jghm, samples: usize, seed: u64) -> Result<Information, InfoError> {
    if samples < 2 {
        return Err(InfoError::TooFewSamples(samples));
    }
    let pairs = sample_pairs(model, samples, seed, false);
    let prior = model.prior();
    let s0 = model.root_states();
    // Per pair: PMI, -log p(x), -log p(y), KL(p(z|x) ‖ π), KL(p(z|y) ‖ π).
    let terms: Vec<[f64; 5]> = pairs
        .par_chunks(bp::CHUNK)
        .flat_map_iter(|chunk| {
            let mut ws = Workspace::new(model);
            let mut z = vec![0.0; s0];
            chunk
                .iter()
                .map(|p| {
                    let lxy = ws.upward(model, &Tokens { image: Some(&p.image), text: Some(&p.text) });
                    let lx = upward_side(&mut ws, model, Part::Image, &p.image);
                    ws.root_posterior_into(model, &mut z);
                    let kx = kl(&z, prior);
                    let ly = upward_side(&mut ws, model, Part::Text, &p.text);
                    ws.root_posterior_into(model, &mut z);
                    [lxy - lx - ly, -lx, -ly, kx, kl(&z, prior)]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let column = |k: usize| Estimate::from_samples(&terms.iter().map(|t| t[k]).collect::<Vec<_>>());
    Ok(Information {
        method: Method::MonteCarlo { samples, seed },
        mutual_information: column(0),
        entropy_image: column(1),
        entropy_text: column(2),
        entropy_root: Estimate::exact(entropy(prior)),
        information_root_image: column(3),
        information_root_text: column(4),
    })
}

/// Nodes at depth `d` on the path from the root to one side's leaves (trunk nodes included),
/// in node order: the layer of `layer-posterior:d`.
pub fn layer(model: &Jghm, part: Part, d: usize) -> Vec<usize> {
    let tree = model.tree();
    let mut depth = vec![0usize; tree.nodes.len()];
    let other = if part == Part::Image { Part::Text } else { Part::Image };
    (0..tree.nodes.len())
        .filter(|&u| {
            if let Some(p) = tree.nodes[u].parent {
                depth[u] = depth[p] + 1;
            }
            depth[u] == d && tree.nodes[u].transition.is_none_or(|t| t.part != other)
        })
        .collect()
}

/// Depth of one side's leaves (trunk levels plus tower levels).
pub fn side_depth(model: &Jghm, part: Part) -> usize {
    model.levels(Part::Shared).len() + model.levels(part).len()
}
