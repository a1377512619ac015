//! Labels for zero-shot classification (the book, T8-T10): a label `C` attached to the text through a
//! channel `P_{C|Y}` (so `C ⟂ X | Y`), or the root `Z`.
//!
//! Built in:
//! - `text-token:j`: `C = y_j`, the token at text position `j` (a deterministic channel);
//! - `text-map-root`: `C = argmax_z p(z | y)`, the MAP root read off the text (deterministic);
//! - a user-given stochastic channel `p(c | y)`, one row per text (small models only);
//! - `root`: `C = Z`. This is *not* a channel of the text (`Z` and `X` stay dependent given
//!   `Y`), so the zero-shot classifier cannot reach Bayes even with the PMI (T8 does not apply;
//!   `proofs/T8-zero-shot.md`). T8 is read side by side with Bayes.
//!
//! For each label: the class prior `p(c)`, the Bayes posterior `p(c | x)`, `p(c | y)`, and
//! exact draws of prompts `Y ~ P_{Y | C = c}`.

use std::str::FromStr;

use crate::bp::{self, Tokens};
use crate::evidence::{Evidence, Leaf};
use crate::model::{Jghm, Part};
use crate::rng::{self, Rng};
use crate::sample::Sampler;

use super::laws::SideLaw;
use super::{argmax, sequence_index, DownstreamError};

/// A label of the zero-shot task.
#[derive(Clone, Debug, PartialEq)]
pub enum Label {
    /// `C = y_j`.
    TextToken(usize),
    /// `C = argmax_z p(z | y)`.
    TextMapRoot,
    /// `C = Z` (not a channel of `Y`).
    Root,
    /// `p(c | y)`: row `i` for the text of mixed-radix index `i` (all `V_Y^{N_Y}` texts).
    Channel(Vec<Vec<f64>>),
}

impl FromStr for Label {
    type Err = DownstreamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |what: &str| DownstreamError::Label { label: s.into(), what: what.into() };
        match s.split_once(':') {
            Some(("text-token", j)) => {
                j.trim().parse().map(Label::TextToken).map_err(|_| bad("give a text position, e.g. text-token:0"))
            }
            None if s == "text-map-root" => Ok(Label::TextMapRoot),
            None if s == "root" => Ok(Label::Root),
            _ => Err(bad("use text-token:J, text-map-root, root, or channel:FILE")),
        }
    }
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::TextToken(j) => write!(f, "text-token:{j}"),
            Label::TextMapRoot => write!(f, "text-map-root"),
            Label::Root => write!(f, "root"),
            Label::Channel(rows) => write!(f, "channel({} classes)", rows.first().map_or(0, |r| r.len())),
        }
    }
}

impl Label {
    /// A label by name ([`Label::from_str`]), or `channel:FILE`: the channel `p(c | y)` read from
    /// the JSON file `{"channel": [[p(c | y), ..], ..]}`, one row per text in mixed-radix order
    /// (first token most significant). Not yet checked against a model ([`Label::check`]).
    pub fn from_spec(spec: &str) -> Result<Label, DownstreamError> {
        let Some(path) = spec.strip_prefix("channel:") else {
            return spec.parse();
        };
        #[derive(serde::Deserialize)]
        struct File {
            channel: Vec<Vec<f64>>,
        }
        let text = std::fs::read_to_string(path)
            .map_err(|source| DownstreamError::ChannelRead { path: path.into(), source })?;
        let file: File = serde_json::from_str(&text)
            .map_err(|source| DownstreamError::ChannelFormat { path: path.into(), source })?;
        Ok(Label::Channel(file.channel))
    }

    /// Checks the label against the model (position in range, channel of the right shape,
    /// rows probability vectors within [`crate::tolerance::ROW_SUM`]).
    pub fn check(&self, model: &Jghm) -> Result<(), DownstreamError> {
        let bad = |what: String| DownstreamError::Label { label: self.to_string(), what };
        match self {
            Label::TextToken(j) if *j >= model.text_len() => {
                Err(bad(format!("position {j}, but the text has {} tokens", model.text_len())))
            }
            Label::Channel(rows) => {
                let n = crate::info::side_size(model, Part::Text);
                if rows.len() as f64 != n {
                    return Err(bad(format!("{} rows, but the model has {n} texts (one row per text)", rows.len())));
                }
                let classes = rows.first().map_or(0, |r| r.len());
                for (i, r) in rows.iter().enumerate() {
                    let ok = r.len() == classes && classes > 0 && r.iter().all(|v| v.is_finite() && *v >= 0.0);
                    if !ok || (r.iter().sum::<f64>() - 1.0).abs() > crate::tolerance::ROW_SUM {
                        return Err(bad(format!("row {i} is not a probability vector over {classes} classes")));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether `C ⟂ X | Y` (every label but the root).
    pub fn is_channel(&self) -> bool {
        !matches!(self, Label::Root)
    }

    /// Whether the label needs the texts enumerated for its prior, Bayes posterior and prompts.
    pub fn needs_texts(&self) -> bool {
        matches!(self, Label::TextMapRoot | Label::Channel(_))
    }

    /// Number of classes.
    pub fn classes(&self, model: &Jghm) -> usize {
        match self {
            Label::TextToken(_) => model.text_vocab(),
            Label::TextMapRoot | Label::Root => model.root_states(),
            Label::Channel(rows) => rows[0].len(),
        }
    }

    /// `p(c | y)` for every enumerated text, row-major `|Y| × |C|`. For the root, `p(z | y)`.
    pub fn rows(&self, model: &Jghm, texts: &SideLaw) -> Vec<f64> {
        let t = &texts.table;
        (0..t.len())
            .flat_map(|i| match self {
                Label::TextToken(j) => one_hot(t.tokens[i][*j], model.text_vocab()),
                Label::TextMapRoot => one_hot(argmax(t.root_row(i)), model.root_states()),
                Label::Root => t.root_row(i).to_vec(),
                // The table's texts are in the vocabulary, and `check` matched the rows to them.
                Label::Channel(rows) => sequence_index(&t.tokens[i], model.text_vocab())
                    .and_then(|k| rows.get(k))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// The label's law on `model`, computed once ([`LabelLaw`]): checks the label, then its
    /// classes, its prior and, when the texts are enumerated, `p(c | y)` for every text.
    pub fn law<'a>(&'a self, model: &Jghm, texts: Option<&'a SideLaw>) -> Result<LabelLaw<'a>, DownstreamError> {
        self.check(model)?;
        if self.needs_texts() {
            need_texts(self, texts)?;
        }
        let classes = self.classes(model);
        let rows = texts.map(|t| self.rows(model, t));
        let prior = match self {
            Label::TextToken(j) => {
                let leaf = model.tree().text_leaves[*j];
                bp::marginals(model, &Evidence::none(model))?.swap_remove(leaf)
            }
            Label::Root => model.prior().to_vec(),
            _ => {
                let (texts, rows) = (need_texts(self, texts)?, rows.as_deref().expect("texts given"));
                let mut p = vec![0.0; classes];
                for (i, row) in rows.chunks(classes).enumerate() {
                    p.iter_mut().zip(row).for_each(|(p, r)| *p += texts.table.p(i) * r);
                }
                p
            }
        };
        Ok(LabelLaw { label: self, texts, classes, prior, rows })
    }
}

/// A label's law on a model, computed once by [`Label::law`] and passed down to the classifiers:
/// the number of classes, the class prior `p(c)` (the marginal of text leaf `j`; the root prior
/// `π`; else `Σ_y p(y) p(c | y)` over the enumerated texts) and `p(c | y)` for every enumerated
/// text.
#[derive(Clone, Debug)]
pub struct LabelLaw<'a> {
    label: &'a Label,
    texts: Option<&'a SideLaw>,
    classes: usize,
    prior: Vec<f64>,
    /// `p(c | y)`, row-major `|Y| × |C|`, when the texts are enumerated.
    rows: Option<Vec<f64>>,
}

impl<'a> LabelLaw<'a> {
    pub fn label(&self) -> &'a Label {
        self.label
    }

    /// The enumerated texts, if any.
    pub fn texts(&self) -> Option<&'a SideLaw> {
        self.texts
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// `p(c)`.
    pub fn prior(&self) -> &[f64] {
        &self.prior
    }

    /// `p(c | y)` for every enumerated text, row-major `|Y| × |C|` (`None` without the texts).
    pub fn rows(&self) -> Option<&[f64]> {
        self.rows.as_deref()
    }

    /// The Bayes posterior of the label given the image: `p(y_j | x)` by BP marginals, `p(z | x)`
    /// by BP, else `Σ_y p(c | y) p(y | x)` over the enumerated texts.
    pub fn bayes(&self, model: &Jghm, x: &[usize]) -> Result<Vec<f64>, DownstreamError> {
        match self.label {
            Label::TextToken(j) => {
                let leaf = model.tree().text_leaves[*j];
                Ok(bp::marginals(model, &Tokens { image: Some(x), text: None })?.swap_remove(leaf))
            }
            Label::Root => Ok(bp::root_posterior(model, &Tokens { image: Some(x), text: None })?.root),
            _ => {
                let (texts, rows) = self.enumerated()?;
                let py_x = texts.conditional(model, x)?;
                Ok(mix(&py_x, rows, self.classes))
            }
        }
    }

    /// `m` exact draws from `P_{Y | C = c}` with `rng`: BP conditional samples given `y_j = c`;
    /// ancestral samples below the fixed root `z = c` ([`Sampler::pair_given_root`]: exact
    /// whatever `π(c) > 0`); else categorical draws from the enumerated texts with weights
    /// `p(y) p(c | y)`. An error when `p(c) = 0`.
    pub fn prompts(&self, model: &Jghm, c: usize, m: usize, rng: &mut Rng) -> Result<Vec<Vec<usize>>, DownstreamError> {
        let tree = model.tree();
        match self.label {
            Label::TextToken(j) => {
                let mut ev = Evidence::none(model);
                ev.text[*j] = Leaf::Observed(c);
                let mut ws = bp::Workspace::new(model);
                if ws.upward(model, &ev) == f64::NEG_INFINITY {
                    return Err(zero_class(self.label, c));
                }
                let mut states = vec![0; tree.nodes.len()];
                Ok((0..m)
                    .map(|_| {
                        ws.sample_into(model, rng, &mut states);
                        tree.text_leaves.iter().map(|&u| states[u]).collect()
                    })
                    .collect())
            }
            Label::Root => {
                if model.prior()[c] <= 0.0 {
                    return Err(zero_class(self.label, c));
                }
                let sampler = Sampler::new(model);
                Ok((0..m).map(|_| sampler.pair_given_root(rng, c, false).text).collect())
            }
            _ => {
                let (texts, rows) = self.enumerated()?;
                let k = self.classes;
                let w: Vec<f64> = (0..texts.table.len()).map(|i| texts.table.p(i) * rows[i * k + c]).collect();
                if w.iter().sum::<f64>() <= 0.0 {
                    return Err(zero_class(self.label, c));
                }
                Ok((0..m).map(|_| texts.table.tokens[rng::categorical(rng, &w)].clone()).collect())
            }
        }
    }

    fn enumerated(&self) -> Result<(&'a SideLaw, &[f64]), DownstreamError> {
        let texts = need_texts(self.label, self.texts)?;
        Ok((texts, self.rows.as_deref().expect("rows are computed whenever the texts are given")))
    }
}

/// `Σ_y p(y | x) p(c | y)` from the law `p(y | x)` and the rows `p(c | y)` (`|Y| × k`).
pub fn mix(py_x: &[f64], rows: &[f64], k: usize) -> Vec<f64> {
    let mut out = vec![0.0; k];
    for (p, row) in py_x.iter().zip(rows.chunks(k)) {
        out.iter_mut().zip(row).for_each(|(o, r)| *o += p * r);
    }
    out
}

fn one_hot(i: usize, n: usize) -> Vec<f64> {
    (0..n).map(|k| f64::from(u8::from(k == i))).collect()
}

fn need_texts<'a>(label: &Label, texts: Option<&'a SideLaw>) -> Result<&'a SideLaw, DownstreamError> {
    texts.ok_or_else(|| DownstreamError::Label {
        label: label.to_string(),
        what: "needs the texts enumerated (a small text side)".into(),
    })
}

fn zero_class(label: &Label, c: usize) -> DownstreamError {
    DownstreamError::Label { label: label.to_string(), what: format!("class {c} has zero probability") }
}
