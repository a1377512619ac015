//! Approximate sufficient statistics (the book, T5-T7): the sufficiency gap in its three forms (T6),
//! built-in statistics, and the T5 bound.
//!
//! For a statistic `T = f(A)` of one side `A` (the image for `Suff_Y`, the text for `Suff_X`),
//! predicting the other side `C`:
//!
//! ```text
//! Suff_C(f) = E_A KL(P_{C|A} ‖ P_{C|T})                      (KL form)
//!           = I(A; C) - I(T; C)                              (information form)
//!           = inf_q E_A KL(P_{C|A} ‖ q(· | T))               (variational form)
//! ```
//!
//! Each form is computed by its own route, so their agreement is a check (T6):
//! - KL form: `p(c | t) = Σ_w p(c | w) p(w | t)` through the separator `W` (`p(w | t)` the
//!   fibre average of `p(w | a)`), and `log p(c|a)/p(c|t) = PMI(a, c) - PMI_T(t, c)`.
//! - information form: `I(A; C)` from the T7 PMI, `I(T; C) = H(C) - H(C | T)` from entropies.
//! - variational form: `F(q)` at the closed-form minimiser `q*(c | t) = Σ_{a∈t} p(a) p(c|a) / p(t)`
//!   (Gibbs' inequality), the fibre average of the rows `P_{C|A}` (no separator involved);
//!   [`Gap::variational`] evaluates `F(q)` for any `q`.
//!
//! Statistics are real vectors; two values are the same class when they agree after rounding
//! to multiples of `2^-40 ≈ 9·10^-13` (posterior vectors computed along different paths differ
//! by round-off only).

use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::str::FromStr;

use crate::bp::{self, LeafView, Observation, Workspace};
use crate::contrastive::{Batch, Direction, Exact};
use crate::info::{self, entropy, upward_side, weighted_inner, Cut, Enumeration, Estimate, InfoError, SideTable};
use crate::model::{Jghm, Part};
use crate::sample::sample_pairs;

/// A built-in statistic of one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    /// `p(z | a)`: the root posterior (sufficient without a trunk; T7).
    RootPosterior,
    /// `p(w | a)`: the joint posterior of the separator (trunk leaves; the root without trunk).
    SeparatorPosterior,
    /// `argmax_z p(z | a)`, ties to the smallest index.
    MapRoot,
    /// `p(z | a_1..a_k)`: the root posterior from the first `k` leaves only.
    MaskedPosterior(usize),
    /// `(a_1, .., a_k)`.
    FirstTokens(usize),
    /// The joint posterior of the nodes at depth `d` above this side's leaves (trunk included).
    LayerPosterior(usize),
}

/// What is wrong with a statistic or a sufficiency request.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SufficiencyError {
    #[error("unknown statistic '{0}': use root-posterior, separator-posterior, map-root, masked-posterior:K, first-tokens:K or layer-posterior:D")]
    Unknown(String),
    #[error("statistic '{name}': {what}")]
    OutOfRange { name: String, what: String },
    #[error("the score does not depend on the {side} only through the statistic '{statistic}' (two {side}s with the same statistic score differently), so T5 does not apply")]
    NotThroughStatistic { statistic: String, side: Part },
    /// The Monte Carlo estimate samples pairs, but finds the statistic's level sets by
    /// enumerating the side it reads: that side must be enumerable.
    #[error("the Monte Carlo estimate of Suff still enumerates the {side} side to find the statistic's level sets, and the {side} side has {size:.3e} sequences (limit {limit:.1e}); use a model whose {side} side is smaller, or the other --side if it is")]
    SideTooLarge { side: Part, size: f64, limit: f64 },
    /// The two-stage estimate ([`sampled_fibres`]) met too many classes in stage 2 that
    /// stage 1 never saw.
    #[error("the statistic '{statistic}' of the {side} has too many classes to sample its fibres: {unmatched} of {samples} pairs fell in classes that none of the {fibre_samples} fibre draws met ({classes} classes met); use a coarser statistic (map-root, first-tokens:K or masked-posterior:K with small K), or more --samples")]
    TooManyClasses {
        statistic: String,
        side: Part,
        unmatched: usize,
        samples: usize,
        classes: usize,
        fibre_samples: usize,
    },
    #[error(transparent)]
    Info(#[from] InfoError),
}

impl FromStr for Statistic {
    type Err = SufficiencyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (head, arg) = s.split_once(':').map_or((s, None), |(h, a)| (h, Some(a)));
        let number = || -> Result<usize, SufficiencyError> {
            arg.and_then(|a| a.trim().parse().ok()).ok_or_else(|| SufficiencyError::OutOfRange {
                name: s.into(),
                what: format!("'{head}' needs a nonnegative integer argument, e.g. {head}:1"),
            })
        };
        let plain = |st| if arg.is_none() { Ok(st) } else { Err(SufficiencyError::Unknown(s.into())) };
        match head {
            "root-posterior" => plain(Statistic::RootPosterior),
            "separator-posterior" => plain(Statistic::SeparatorPosterior),
            "map-root" => plain(Statistic::MapRoot),
            "masked-posterior" => Ok(Statistic::MaskedPosterior(number()?)),
            "first-tokens" => Ok(Statistic::FirstTokens(number()?)),
            "layer-posterior" => Ok(Statistic::LayerPosterior(number()?)),
            _ => Err(SufficiencyError::Unknown(s.into())),
        }
    }
}

impl std::fmt::Display for Statistic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Statistic::RootPosterior => write!(f, "root-posterior"),
            Statistic::SeparatorPosterior => write!(f, "separator-posterior"),
            Statistic::MapRoot => write!(f, "map-root"),
            Statistic::MaskedPosterior(k) => write!(f, "masked-posterior:{k}"),
            Statistic::FirstTokens(k) => write!(f, "first-tokens:{k}"),
            Statistic::LayerPosterior(d) => write!(f, "layer-posterior:{d}"),
        }
    }
}

/// The first `k` tokens of one side observed, the rest missing.
struct Masked<'a> {
    part: Part,
    tokens: &'a [usize],
    k: usize,
}

impl Observation for Masked<'_> {
    fn check(&self, model: &Jghm) -> Result<(), crate::evidence::EvidenceError> {
        crate::evidence::check_tokens(model, self.part, self.tokens)
    }
    fn leaf(&self, part: Part, position: usize) -> LeafView<'_> {
        if part == self.part && position < self.k {
            LeafView::Observed(self.tokens[position])
        } else {
            LeafView::Missing
        }
    }
}

/// A statistic bound to a model and a side, ready to evaluate.
pub struct Evaluator<'m> {
    pub model: &'m Jghm,
    pub part: Part,
    pub statistic: Statistic,
    cut: Option<Cut>,
}

impl<'m> Evaluator<'m> {
    /// Checks the statistic's argument against the model.
    pub fn new(model: &'m Jghm, part: Part, statistic: Statistic) -> Result<Self, SufficiencyError> {
        let name = statistic.to_string();
        let (len, depth) = (model.len_of(part), info::side_depth(model, part));
        let cut = match statistic {
            Statistic::MaskedPosterior(k) | Statistic::FirstTokens(k) if k > len => {
                return Err(SufficiencyError::OutOfRange {
                    name,
                    what: format!("k = {k}, but the {part} has {len} tokens"),
                })
            }
            Statistic::LayerPosterior(d) if d > depth => {
                return Err(SufficiencyError::OutOfRange {
                    name,
                    what: format!("depth {d}, but the {part}'s leaves are at depth {depth}"),
                })
            }
            Statistic::LayerPosterior(d) => Some(Cut::new(model, info::layer(model, part, d))?),
            Statistic::SeparatorPosterior => Some(Cut::separator(model)?),
            _ => None,
        };
        Ok(Evaluator { model, part, statistic, cut })
    }

    /// `T(a)` as a real vector; an error when `tokens` do not fit this side of the model.
    pub fn value(&self, ws: &mut Workspace, tokens: &[usize]) -> Result<Vec<f64>, crate::evidence::EvidenceError> {
        crate::evidence::check_tokens(self.model, self.part, tokens)?;
        Ok(self.value_checked(ws, tokens))
    }

    /// [`Evaluator::value`] of tokens already checked (table rows and sampled sequences).
    fn value_checked(&self, ws: &mut Workspace, tokens: &[usize]) -> Vec<f64> {
        let model = self.model;
        let root = |ws: &mut Workspace, obs: &dyn Fn(&mut Workspace) -> f64| {
            obs(ws);
            let mut z = vec![0.0; model.root_states()];
            ws.root_posterior_into(model, &mut z);
            z
        };
        match self.statistic {
            Statistic::RootPosterior => root(ws, &|ws| upward_side(ws, model, self.part, tokens)),
            Statistic::MapRoot => {
                let z = root(ws, &|ws| upward_side(ws, model, self.part, tokens));
                vec![z.iter().enumerate().fold(0, |best, (i, &p)| if p > z[best] { i } else { best }) as f64]
            }
            Statistic::MaskedPosterior(k) => root(ws, &|ws| ws.upward(model, &Masked { part: self.part, tokens, k })),
            Statistic::FirstTokens(k) => tokens[..k].iter().map(|&t| t as f64).collect(),
            Statistic::SeparatorPosterior | Statistic::LayerPosterior(_) => {
                let cut = self.cut.as_ref().expect("built in new");
                upward_side(ws, model, self.part, tokens);
                let mut out = vec![0.0; cut.size()];
                cut.posterior_into(model, ws, &mut out);
                out
            }
        }
    }

    /// The class of every sequence of a table of this side, numbered in order of first
    /// appearance. Panics on a table of the other side (a caller's bug: the statistic reads
    /// this side's tokens).
    pub fn classes(&self, table: &SideTable) -> Classes {
        assert_eq!(table.part, self.part, "a {} statistic given a table of the {}", self.part, table.part);
        if self.statistic == Statistic::RootPosterior {
            // The table already holds p(z | a) (computed by the batched BP): no pass needed.
            let keys: Vec<Vec<i64>> = (0..table.len()).map(|i| quantise(table.root_row(i))).collect();
            return Classes::from_keys(&keys);
        }
        let keys: Vec<Vec<i64>> = table
            .tokens
            .par_chunks(bp::CHUNK)
            .flat_map_iter(|chunk| {
                let mut ws = Workspace::new(self.model);
                chunk.iter().map(|t| quantise(&self.value_checked(&mut ws, t))).collect::<Vec<_>>()
            })
            .collect();
        Classes::from_keys(&keys)
    }
}

/// Rounds a statistic's value to multiples of `2^-40` (the class key).
fn quantise(v: &[f64]) -> Vec<i64> {
    v.iter().map(|x| (x * 2f64.powi(40)).round() as i64).collect()
}

/// A partition of one side's sequences into classes of a statistic.
#[derive(Clone, Debug, PartialEq)]
pub struct Classes {
    /// `t(a)` for every sequence of the table.
    pub of: Vec<usize>,
    pub count: usize,
}

impl Classes {
    /// The level sets of a real-valued statistic: two values are one class when they agree
    /// after rounding every coordinate to a multiple of `2^-40` (module doc). Used for the
    /// built-in statistics and for a learned embedding `f(x)` alike.
    pub fn of_values(values: &[Vec<f64>]) -> Self {
        Classes::from_keys(&values.iter().map(|v| quantise(v)).collect::<Vec<_>>())
    }

    pub fn from_keys<K: std::hash::Hash + Eq + Clone>(keys: &[K]) -> Self {
        let mut ids: HashMap<K, usize> = HashMap::new();
        let of = keys.iter().map(|k| {
            let n = ids.len();
            *ids.entry(k.clone()).or_insert(n)
        });
        let of: Vec<usize> = of.collect();
        Classes { count: ids.len(), of }
    }

    /// The coarsening `h ∘ t`: classes `i` and `j` merged.
    pub fn merge(&self, i: usize, j: usize) -> Self {
        let keys: Vec<usize> = self.of.iter().map(|&t| if t == j { i } else { t }).collect();
        Classes::from_keys(&keys)
    }
}

/// The exact sufficiency gap of a partition of side `A` for predicting the other side `C`.
pub struct Gap<'e, 'm> {
    pub en: &'e Enumeration<'m>,
    pub side: Part,
    pub classes: Classes,
    /// `p(t)`.
    pub pt: Vec<f64>,
    /// `p(w | t)`, row-major `|T| × |W|`.
    pub wt: Vec<f64>,
}

/// The three forms and the two informations (nats).
#[derive(Clone, Debug, Serialize)]
pub struct Sufficiency {
    pub kl_form: f64,
    pub information_form: f64,
    pub variational_form: f64,
    pub mutual_information: f64,
    pub statistic_information: f64,
    pub classes: usize,
}

impl<'e, 'm> Gap<'e, 'm> {
    /// `p(t) = Σ_{a∈t} p(a)`, `p(w | t) = Σ_{a∈t} p(a) p(w | a) / p(t)`.
    pub fn new(en: &'e Enumeration<'m>, side: Part, classes: Classes) -> Self {
        let (pt, wt) = fibre_posteriors(en.side(side), &classes);
        Gap { en, side, classes, pt, wt }
    }

    fn anchors(&self) -> &SideTable {
        self.en.side(self.side)
    }
    fn candidates(&self) -> &SideTable {
        self.en.side(if self.side == Part::Image { Part::Text } else { Part::Image })
    }
    fn pmi(&self, a: usize, c: usize) -> f64 {
        if self.side == Part::Image {
            self.en.pmi(a, c)
        } else {
            self.en.pmi(c, a)
        }
    }

    /// `PMI_T(t, c) = log p(c | t) / p(c) = log Σ_w p(w | t) p(w | c) / p(w)`.
    pub fn pmi_statistic(&self, t: usize, c: usize) -> f64 {
        let nw = self.en.cut.size();
        weighted_inner(&self.wt[t * nw..(t + 1) * nw], self.candidates().latent_row(c), &self.en.cut.prior).ln()
    }

    /// KL form: `Σ_a p(a) Σ_c p(c|a) [PMI(a, c) - PMI_T(t(a), c)]`.
    pub fn kl_form(&self) -> f64 {
        let (an, cn) = (self.anchors(), self.candidates());
        let rows: Vec<f64> = (0..an.len())
            .into_par_iter()
            .map(|a| {
                let t = self.classes.of[a];
                let sum: f64 = (0..cn.len())
                    .map(|c| {
                        let pmi = self.pmi(a, c);
                        let p_c_given_a = cn.p(c) * pmi.exp();
                        if p_c_given_a > 0.0 {
                            p_c_given_a * (pmi - self.pmi_statistic(t, c))
                        } else {
                            0.0
                        }
                    })
                    .sum();
                an.p(a) * sum
            })
            .collect();
        rows.iter().sum()
    }

    /// `I(T; C) = H(C) - H(C | T)`, `p(c | t) = p(c) exp PMI_T(t, c)`.
    pub fn statistic_information(&self) -> f64 {
        let cn = self.candidates();
        let conditional_entropy: f64 = (0..self.classes.count)
            .map(|t| {
                let row: Vec<f64> = (0..cn.len()).map(|c| cn.p(c) * self.pmi_statistic(t, c).exp()).collect();
                self.pt[t] * entropy(&row)
            })
            .sum();
        cn.entropy() - conditional_entropy
    }

    /// `q*(c | t) = Σ_{a∈t} p(a) p(c|a) / p(t)`, row-major `|T| × |C|`: the minimiser of
    /// [`Gap::variational`] (averaging the rows `P_{C|A}` over each class).
    pub fn best_conditional(&self) -> Vec<f64> {
        let (an, cn) = (self.anchors(), self.candidates());
        let mut q = vec![0.0; self.classes.count * cn.len()];
        for a in 0..an.len() {
            let t = self.classes.of[a];
            for c in 0..cn.len() {
                q[t * cn.len() + c] += an.p(a) * cn.p(c) * self.pmi(a, c).exp();
            }
        }
        for (t, row) in q.chunks_mut(cn.len()).enumerate() {
            row.iter_mut().for_each(|v| *v /= self.pt[t]);
        }
        q
    }

    /// `F(q) = E_A KL(P_{C|A} ‖ q(· | T(A)))` for a conditional `q` (row-major `|T| × |C|`).
    pub fn variational(&self, q: &[f64]) -> f64 {
        let (an, cn) = (self.anchors(), self.candidates());
        let rows: Vec<f64> = (0..an.len())
            .into_par_iter()
            .map(|a| {
                let t = self.classes.of[a];
                let p: Vec<f64> = (0..cn.len()).map(|c| cn.p(c) * self.pmi(a, c).exp()).collect();
                an.p(a) * info::kl(&p, &q[t * cn.len()..(t + 1) * cn.len()])
            })
            .collect();
        rows.iter().sum()
    }

    /// All three forms, with `I(A; C)` and `I(T; C)`.
    pub fn all(&self) -> Sufficiency {
        let mi = self.en.mutual_information();
        let ti = self.statistic_information();
        Sufficiency {
            kl_form: self.kl_form(),
            information_form: mi - ti,
            variational_form: self.variational(&self.best_conditional()),
            mutual_information: mi,
            statistic_information: ti,
            classes: self.classes.count,
        }
    }

    /// The optimal score among those that depend on `A` only through `T`:
    /// `S_T(x, y) = PMI_T(t(a), c)`, as an `|X| × |Y|` grid. Its `ℓ_∞` excess is `Suff` (T5, equality).
    pub fn statistic_pmi_grid(&self) -> Vec<f64> {
        let (nx, ny) = (self.en.image.len(), self.en.text.len());
        let mut g = vec![0.0; nx * ny];
        g.par_chunks_mut(ny).enumerate().for_each(|(i, row)| {
            for (j, v) in row.iter_mut().enumerate() {
                let (a, c) = if self.side == Part::Image { (i, j) } else { (j, i) };
                *v = self.pmi_statistic(self.classes.of[a], c);
            }
        });
        g
    }

    /// Whether the grid `s` (`|X| × |Y|`) depends on side `A` only through `T`, to a relative
    /// `1e-9`: a class holds values equal up to the resolution `2^-40` of the class key, so a
    /// score with Lipschitz constant `L` in the statistic may vary by `L·2^-40` within a class;
    /// `1e-9` allows `L` up to about 1000 and still rejects any genuine dependence on more.
    pub fn depends_only_through(&self, s: &[f64]) -> bool {
        let (nx, ny) = (self.en.image.len(), self.en.text.len());
        let at = |a: usize, c: usize| if self.side == Part::Image { s[a * ny + c] } else { s[c * ny + a] };
        let (na, nc) = if self.side == Part::Image { (nx, ny) } else { (ny, nx) };
        let mut first: Vec<Option<usize>> = vec![None; self.classes.count];
        (0..na).all(|a| {
            let rep = *first[self.classes.of[a]].get_or_insert(a);
            (0..nc).all(|c| {
                let (u, v) = (at(a, c), at(rep, c));
                u == v || (u - v).abs() <= 1e-9 * (1.0 + u.abs().max(v.abs()))
            })
        })
    }
}

fn fibre_posteriors(table: &SideTable, classes: &Classes) -> (Vec<f64>, Vec<f64>) {
    let nw = table.latent_size;
    let mut pt = vec![0.0; classes.count];
    let mut wt = vec![0.0; classes.count * nw];
    for a in 0..table.len() {
        let (t, p) = (classes.of[a], table.p(a));
        pt[t] += p;
        for (o, w) in wt[t * nw..(t + 1) * nw].iter_mut().zip(table.latent_row(a)) {
            *o += p * w;
        }
    }
    for (t, row) in wt.chunks_mut(nw).enumerate() {
        row.iter_mut().for_each(|v| *v /= pt[t]);
    }
    (pt, wt)
}

/// T5 at `K = ∞`: for a score grid `s` that depends on side `A` only through `T`,
/// returns `(Suff, ℓ_∞(S) - ℓ_∞(PMI))` in the direction anchored at `A`; T5 says `Suff ≤ excess`.
pub fn t5_bound(exact: &Exact, gap: &Gap, s: &[f64]) -> Result<(f64, f64), SufficiencyError> {
    if !gap.depends_only_through(s) {
        return Err(SufficiencyError::NotThroughStatistic { statistic: "given".into(), side: gap.side });
    }
    let dir = if gap.side == Part::Image { Direction::ImageToText } else { Direction::TextToImage };
    let excess = exact.loss(s, dir, Batch::Infinite)? - exact.loss(&exact.pmi, dir, Batch::Infinite)?;
    Ok((gap.kl_form(), excess))
}

/// A sufficiency estimate by Monte Carlo: side `A` is enumerated (for `p(w | t)`), pairs are
/// sampled, and `Suff = E[PMI(A, C) - PMI_T(T(A), C)]`, with standard errors.
#[derive(Clone, Debug, Serialize)]
pub struct SufficiencyEstimate {
    pub sufficiency: Estimate,
    pub mutual_information: Estimate,
    pub statistic_information: Estimate,
}

/// Monte Carlo sufficiency (see [`SufficiencyEstimate`]); needs side `A` enumerable.
pub fn monte_carlo(
    model: &Jghm,
    side: Part,
    statistic: Statistic,
    samples: usize,
    seed: u64,
) -> Result<SufficiencyEstimate, SufficiencyError> {
    if samples < 2 {
        return Err(InfoError::TooFewSamples(samples).into());
    }
    let cut = Cut::separator(model)?;
    let table = SideTable::new(model, side, &cut).map_err(|e| match e {
        InfoError::TooLarge { size, limit, .. } => SufficiencyError::SideTooLarge { side, size, limit },
        e => e.into(),
    })?;
    let eval = Evaluator::new(model, side, statistic)?;
    let keys: Vec<Vec<i64>> = {
        let mut ws = Workspace::new(model);
        table.tokens.iter().map(|t| quantise(&eval.value_checked(&mut ws, t))).collect()
    };
    let classes = Classes::from_keys(&keys);
    let class_of: HashMap<Vec<i64>, usize> = keys.iter().cloned().zip(classes.of.iter().copied()).collect();
    let (_, wt) = fibre_posteriors(&table, &classes);
    let nw = cut.size();
    let other = if side == Part::Image { Part::Text } else { Part::Image };
    let pairs = sample_pairs(model, samples, seed, false);
    let terms: Vec<[f64; 2]> = pairs
        .par_chunks(bp::CHUNK)
        .flat_map_iter(|chunk| {
            let mut ws = Workspace::new(model);
            let mut w = vec![0.0; nw];
            chunk
                .iter()
                .map(|p| {
                    let pmi = bp::pmi(model, &p.image, &p.text).map_or(f64::NEG_INFINITY, |q| q.pmi);
                    let (a, c) = if side == Part::Image { (&p.image, &p.text) } else { (&p.text, &p.image) };
                    let t = class_of[&quantise(&eval.value_checked(&mut ws, a))];
                    upward_side(&mut ws, model, other, c);
                    cut.posterior_into(model, &ws, &mut w);
                    let pmi_t = weighted_inner(&wt[t * nw..(t + 1) * nw], &w, &cut.prior).ln();
                    [pmi, pmi_t]
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let col = |f: &dyn Fn(&[f64; 2]) -> f64| Estimate::from_samples(&terms.iter().map(f).collect::<Vec<_>>());
    Ok(SufficiencyEstimate {
        sufficiency: col(&|t| t[0] - t[1]),
        mutual_information: col(&|t| t[0]),
        statistic_information: col(&|t| t[1]),
    })
}

/// Largest fraction of stage-2 draws whose class was not met in stage 1 that
/// [`sampled_fibres`] accepts: beyond it the statistic has too many classes (e.g. a continuous
/// posterior of a large side, almost every sequence its own class) for fibres to be sampled.
pub const UNMATCHED_LIMIT: f64 = 0.01;

/// A sufficiency estimate when side `A` is too large to enumerate ([`sampled_fibres`]).
#[derive(Clone, Debug, Serialize)]
pub struct SampledFibres {
    pub sufficiency: Estimate,
    pub mutual_information: Estimate,
    pub statistic_information: Estimate,
    /// Stage-1 draws of side `A` (0 when the statistic determines `p(w | a)`: no stage 1).
    pub fibre_samples: usize,
    /// Distinct classes met in stage 1.
    pub classes_seen: usize,
    /// Stage-2 pairs whose class was not met in stage 1 (their term is taken as 0).
    pub unmatched: usize,
    /// Whether `T(a)` determines `p(w | a)` (then `p(w | t) = p(w | a)` exactly, no stage 1).
    pub fibre_constant: bool,
}

/// Whether the statistic determines the separator posterior `p(w | a)`: the separator
/// posterior itself, a layer posterior whose layer is the separator, or the root posterior
/// when the separator is the root (no trunk).
fn determines_separator_posterior(eval: &Evaluator, cut: &Cut) -> bool {
    match eval.statistic {
        Statistic::SeparatorPosterior => true,
        Statistic::LayerPosterior(_) => eval.cut.as_ref().is_some_and(|c| c.nodes == cut.nodes),
        Statistic::RootPosterior => cut.nodes == [0],
        _ => false,
    }
}

/// Sufficiency by two-stage sampling, for a side `A` too large to enumerate.
///
/// # Estimator
/// - **Stage 1** (`fibre_samples` draws `a' ~ p(a)`, seed `!seed`, the bitwise complement):
///   the fibre posterior of each class met is the sample mean
///   `p̂(w | t) = (1/n_t) Σ_{a': T(a') = t} p(w | a')`.
/// - **Stage 2** (`samples` pairs `(a, c) ~ p(a, c)`, seed `seed`, independent of stage 1):
///   `Suff ≈ mean [PMI(a, c) - log Σ_w p̂(w | T(a)) p(w | c) / p(w)]`, with the standard error
///   of that mean (over stage 2, given stage 1).
///
/// When the statistic determines `p(w | a)` ([`SampledFibres::fibre_constant`]) the fibre
/// posterior is the draw's own, `p(w | t) = p(w | a)`, exactly, and there is no stage 1.
///
/// # Bias
/// Given the stage-1 counts, the `a'` of class `t` are i.i.d. from `p(a | t)`, so
/// `E p̂(w | t) = p(w | t)`: the fibre posterior is unbiased. `PMI_T` is the logarithm of a
/// linear function of it, concave, so by Jensen `E log Σ_w p̂ r ≤ log Σ_w p r`: the estimated
/// `PMI_T` is biased low and **the estimate of `Suff` is biased high** (and `I(T; C)` low), by
/// about `Σ_t p(t) E_c Var(p̂·r) / (2 (p·r)²) = O(1 / n_t)` (delta method), which shrinks faster
/// than the standard error `O(1/√n)`. A stage-2 draw whose class stage 1 never met is counted in
/// [`SampledFibres::unmatched`] and given the term 0 (as if its fibre were a single sequence);
/// this biases the estimate low by at most the unmatched classes' share of `Suff`, and more
/// than [`UNMATCHED_LIMIT`] of such draws is refused ([`SufficiencyError::TooManyClasses`]).
/// Checked against the exact gap on enumerable models in `tests/t6_sufficiency_identities.rs`.
pub fn sampled_fibres(
    model: &Jghm,
    side: Part,
    statistic: Statistic,
    samples: usize,
    fibre_samples: usize,
    seed: u64,
) -> Result<SampledFibres, SufficiencyError> {
    if samples < 2 {
        return Err(InfoError::TooFewSamples(samples).into());
    }
    let cut = Cut::separator(model)?;
    let eval = Evaluator::new(model, side, statistic)?;
    let fibre_constant = determines_separator_posterior(&eval, &cut);
    let nw = cut.size();
    let a_of = |p: &crate::sample::Pair| if side == Part::Image { p.image.clone() } else { p.text.clone() };
    // Stage 1: per class key, the sum of p(w | a') and the count.
    let mut fibres: HashMap<Vec<i64>, (Vec<f64>, usize)> = HashMap::new();
    let n1 = if fibre_constant { 0 } else { fibre_samples };
    if n1 > 0 {
        let draws = sample_pairs(model, n1, !seed, false);
        let rows: Vec<(Vec<i64>, Vec<f64>)> = draws
            .par_chunks(bp::CHUNK)
            .flat_map_iter(|chunk| {
                let mut ws = Workspace::new(model);
                chunk
                    .iter()
                    .map(|p| {
                        let a = a_of(p);
                        let key = quantise(&eval.value_checked(&mut ws, &a));
                        let mut w = vec![0.0; nw];
                        upward_side(&mut ws, model, side, &a);
                        cut.posterior_into(model, &ws, &mut w);
                        (key, w)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // Summed in draw order: reproducible whatever the thread count.
        for (key, w) in rows {
            let entry = fibres.entry(key).or_insert_with(|| (vec![0.0; nw], 0));
            entry.0.iter_mut().zip(&w).for_each(|(s, v)| *s += v);
            entry.1 += 1;
        }
        for (sum, n) in fibres.values_mut() {
            sum.iter_mut().for_each(|s| *s /= *n as f64);
        }
    }
    // Stage 2: [PMI, PMI_T] per pair, None when the class was not met in stage 1.
    let other = if side == Part::Image { Part::Text } else { Part::Image };
    let pairs = sample_pairs(model, samples, seed, false);
    let terms: Vec<Option<[f64; 2]>> = pairs
        .par_chunks(bp::CHUNK)
        .flat_map_iter(|chunk| {
            let mut ws = Workspace::new(model);
            let (mut wa, mut wc) = (vec![0.0; nw], vec![0.0; nw]);
            chunk
                .iter()
                .map(|p| {
                    let pmi = bp::pmi(model, &p.image, &p.text).map_or(f64::NEG_INFINITY, |q| q.pmi);
                    let (a, c) = if side == Part::Image { (&p.image, &p.text) } else { (&p.text, &p.image) };
                    let fibre: &[f64] = if fibre_constant {
                        upward_side(&mut ws, model, side, a);
                        cut.posterior_into(model, &ws, &mut wa);
                        &wa
                    } else {
                        match fibres.get(&quantise(&eval.value_checked(&mut ws, a))) {
                            Some((mean, _)) => mean,
                            None => return None,
                        }
                    };
                    upward_side(&mut ws, model, other, c);
                    cut.posterior_into(model, &ws, &mut wc);
                    // PMI_T(t, c) = log Σ_w p̂(w | t) p(w | c) / p(w)
                    let pmi_t = weighted_inner(fibre, &wc, &cut.prior).ln();
                    Some([pmi, pmi_t])
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let unmatched = terms.iter().filter(|t| t.is_none()).count();
    if unmatched as f64 > UNMATCHED_LIMIT * samples as f64 {
        return Err(SufficiencyError::TooManyClasses {
            statistic: statistic.to_string(),
            side,
            unmatched,
            samples,
            classes: fibres.len(),
            fibre_samples: n1,
        });
    }
    // An unmatched draw counts as a singleton fibre: PMI_T = PMI, term 0.
    let col = |f: &dyn Fn(&[f64; 2]) -> f64, unmatched: &dyn Fn(&crate::sample::Pair) -> f64| {
        let v: Vec<f64> = terms.iter().zip(&pairs).map(|(t, p)| t.as_ref().map_or_else(|| unmatched(p), f)).collect();
        Estimate::from_samples(&v)
    };
    let pmi_of = |p: &crate::sample::Pair| bp::pmi(model, &p.image, &p.text).map_or(f64::NEG_INFINITY, |q| q.pmi);
    Ok(SampledFibres {
        sufficiency: col(&|t| t[0] - t[1], &|_| 0.0),
        mutual_information: col(&|t| t[0], &pmi_of),
        statistic_information: col(&|t| t[1], &pmi_of),
        fibre_samples: n1,
        classes_seen: fibres.len(),
        unmatched,
        fibre_constant,
    })
}

/// What `jghm sufficiency` reports, in its JSON keys: the gap of a statistic of one side, with
/// `I(X; Y)` and `I(T; C)`; exact ([`Report::exact`]: the three forms and the number of classes
/// too) or Monte Carlo ([`Report::monte_carlo`]: standard errors and an interval).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub sufficiency: f64,
    pub stderr: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci95: Option<[f64; 2]>,
    pub mutual_information: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutual_information_stderr: Option<f64>,
    pub statistic_information: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistic_information_stderr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub information_form: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variational_form: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    pub method: String,
}

impl Report {
    /// The gap by enumeration of the whole model ([`Gap::all`]).
    pub fn exact(model: &Jghm, side: Part, statistic: Statistic) -> Result<Report, SufficiencyError> {
        let evaluator = Evaluator::new(model, side, statistic)?;
        let en = Enumeration::new(model)?;
        let s = Gap::new(&en, side, evaluator.classes(en.side(side))).all();
        Ok(Report {
            sufficiency: s.kl_form,
            stderr: 0.0,
            ci95: None,
            mutual_information: s.mutual_information,
            mutual_information_stderr: None,
            statistic_information: s.statistic_information,
            statistic_information_stderr: None,
            information_form: Some(s.information_form),
            variational_form: Some(s.variational_form),
            classes: Some(s.classes),
            method: "exact enumeration".into(),
        })
    }

    /// The gap by Monte Carlo over `samples` pairs ([`monte_carlo`]).
    pub fn monte_carlo(
        model: &Jghm,
        side: Part,
        statistic: Statistic,
        samples: usize,
        seed: u64,
    ) -> Result<Report, SufficiencyError> {
        let s = monte_carlo(model, side, statistic, samples, seed)?;
        Ok(Report {
            sufficiency: s.sufficiency.value,
            stderr: s.sufficiency.stderr,
            ci95: Some(s.sufficiency.ci95),
            mutual_information: s.mutual_information.value,
            mutual_information_stderr: Some(s.mutual_information.stderr),
            statistic_information: s.statistic_information.value,
            statistic_information_stderr: Some(s.statistic_information.stderr),
            information_form: None,
            variational_form: None,
            classes: None,
            method: format!(
                "Monte Carlo ({samples} pairs, seed {seed}): E[PMI(A,C) - PMI_T(T(A),C)], the statistic's side enumerated"
            ),
        })
    }

    /// The gap by two-stage sampling ([`sampled_fibres`], `samples` draws in each stage), for a
    /// side too large to enumerate; its method line states the estimator and its bias.
    pub fn sampled_fibres(
        model: &Jghm,
        side: Part,
        statistic: Statistic,
        samples: usize,
        seed: u64,
    ) -> Result<Report, SufficiencyError> {
        let s = sampled_fibres(model, side, statistic, samples, samples, seed)?;
        let method = if s.fibre_constant {
            format!(
                "Monte Carlo ({samples} pairs, seed {seed}): E[PMI(A,C) - PMI_T(T(A),C)], p(w | t) = p(w | a) exactly (the statistic determines the separator posterior)"
            )
        } else {
            format!(
                "two-stage Monte Carlo (the {side} side is too large to enumerate): p(w | t) as the mean of p(w | a) over {} draws of the {side} (seed {}, the complement of {seed}; {} classes met), then E[PMI(A,C) - PMI_T(T(A),C)] over {samples} independent pairs (seed {seed}; {} fell in classes not met, term 0); biased high by O(1/draws per class), see the book's T6 chapter",
                s.fibre_samples, !seed, s.classes_seen, s.unmatched
            )
        };
        Ok(Report {
            sufficiency: s.sufficiency.value,
            stderr: s.sufficiency.stderr,
            ci95: Some(s.sufficiency.ci95),
            mutual_information: s.mutual_information.value,
            mutual_information_stderr: Some(s.mutual_information.stderr),
            statistic_information: s.statistic_information.value,
            statistic_information_stderr: Some(s.statistic_information.stderr),
            information_form: None,
            variational_form: None,
            classes: None,
            method,
        })
    }
}
