//! T3's limit, exactly: `ℓ_K^{X→Y}(S) − log K → ℓ_∞^{X→Y}(S)` as the batch `K` grows, with the
//! first-order law `ℓ_K − log K − ℓ_∞ = c_1 / K + O(K^{-2})` ([`crate::contrastive::View::rate_constant`]).
//!
//! The finite-`K` loss is exact (the sum over compositions of the negatives), so the model must
//! be tiny: [`tiny_model`] has 4 images and 4 texts, where `K = 512` costs `4·4·C(514, 3) ≈ 4·10^8`
//! multiply-adds. Two scores: the PMI (the optimum, T2) and the PMI plus a fixed pseudo-random
//! perturbation of amplitude [`PERTURBATION`].

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::contrastive::{Direction, Exact};
use crate::files::write_atomic;
use crate::info::{Enumeration, InfoError};
use crate::model::Jghm;
use crate::random_family::RandomSpec;
use crate::score::{Perturbed, Pmi, Score};

/// Batch sizes of the table.
pub const KS: [usize; 9] = [2, 4, 8, 16, 32, 64, 128, 256, 512];
/// Amplitude of the perturbed score (nats).
pub const PERTURBATION: f64 = 1.0;

/// One point: a score at one batch size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub score: String,
    pub k: usize,
    /// `ℓ_K^{X→Y}(S) − log K`, nats, exact.
    pub loss_minus_log_k: f64,
    /// `ℓ_∞^{X→Y}(S)`, nats, exact.
    pub limit: f64,
    /// `c_1` of the `1/K` law.
    pub rate_constant: f64,
}

/// The model of the table: standard random family, 2 states, one level of 2 children on both
/// towers (2 binary tokens a side), flip 0.2, seed 3.
pub fn tiny_model() -> Jghm {
    let spec = RandomSpec { flip: 0.2, ..RandomSpec::symmetric(2, 2, 1, 3) };
    spec.build().expect("a valid spec")
}

/// Every point of the table on `model` (refused if the exact loss is too much work).
pub fn table(model: &Jghm) -> Result<Vec<Point>, InfoError> {
    let en = Enumeration::new(model)?;
    let exact = Exact::new(&en);
    let pmi = Pmi { model };
    let perturbed = Perturbed { base: Pmi { model }, amplitude: PERTURBATION, seed: 7 };
    let scores: [(&str, &dyn Score); 2] = [("PMI (optimal)", &pmi), ("PMI + perturbation", &perturbed)];
    let mut out = vec![];
    for (name, score) in scores {
        let view = exact.view(&exact.scores(score), Direction::ImageToText);
        let (limit, c1) = (view.loss_infinite(), view.rate_constant());
        for k in KS {
            let loss = view.loss_finite(k)?;
            out.push(Point {
                score: name.into(),
                k,
                loss_minus_log_k: loss - (k as f64).ln(),
                limit,
                rate_constant: c1,
            });
        }
    }
    Ok(out)
}

const HEADER: &str = "score,k,loss_minus_log_k,limit,rate_constant";

/// Writes the table as CSV, atomically.
pub fn write(path: &Path, points: &[Point]) -> Result<()> {
    let mut text = format!("{HEADER}\n");
    for p in points {
        text.push_str(&format!("{},{},{},{},{}\n", p.score, p.k, p.loss_minus_log_k, p.limit, p.rate_constant));
    }
    Ok(write_atomic(path, text.as_bytes())?)
}

/// Reads a table written by [`write`].
pub fn read(path: &Path) -> Result<Vec<Point>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(HEADER) {
        bail!("'{}' is not an InfoNCE table of `jghm rates` (unexpected header)", path.display());
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let c: Vec<&str> = l.split(',').collect();
            let bad = || anyhow::anyhow!("'{}' line {}: malformed row", path.display(), i + 2);
            if c.len() != 5 {
                return Err(bad());
            }
            let f = |s: &str| s.trim().parse::<f64>().map_err(|_| bad());
            Ok(Point {
                score: c[0].to_string(),
                k: c[1].trim().parse().map_err(|_| bad())?,
                loss_minus_log_k: f(c[2])?,
                limit: f(c[3])?,
                rate_constant: f(c[4])?,
            })
        })
        .collect()
}
