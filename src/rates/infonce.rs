//! T3's limit, exactly: `ℓ_K^{X→Y}(S) − log K → ℓ_∞^{X→Y}(S)` as the batch `K` grows, with the
//! first-order law `ℓ_K − log K − ℓ_∞ = c_1 / K + O(K^{-2})` ([`crate::contrastive::View::rate_constant`]).
//!
//! The finite-`K` loss is exact (the sum over compositions of the negatives), so the model must
//! be tiny: [`tiny_model`] has 4 images and 4 texts, where `K = 512` costs `4·4·C(514, 3) ≈ 4·10^8`
//! multiply-adds. Two scores: the PMI (the optimum, T2) and the PMI plus a fixed pseudo-random
//! perturbation of amplitude [`PERTURBATION`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::contrastive::{Direction, Exact};
use crate::info::{Enumeration, InfoError};
use crate::model::Jghm;
use crate::random_family::RandomSpec;
use crate::runs::{format::display, BadField, CsvRow, RunDirError};
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

/// A line of `infonce.csv`.
#[derive(Serialize, Deserialize)]
pub struct PointRecord {
    score: String,
    k: usize,
    #[serde(serialize_with = "display")]
    loss_minus_log_k: f64,
    #[serde(serialize_with = "display")]
    limit: f64,
    #[serde(serialize_with = "display")]
    rate_constant: f64,
}

impl CsvRow for Point {
    type Record = PointRecord;
    const HEADER: &'static [&'static str] = &["score", "k", "loss_minus_log_k", "limit", "rate_constant"];
    const WHAT: &'static str = "an InfoNCE table of `jghm rates`";

    fn to_record(&self) -> PointRecord {
        PointRecord {
            score: self.score.clone(),
            k: self.k,
            loss_minus_log_k: self.loss_minus_log_k,
            limit: self.limit,
            rate_constant: self.rate_constant,
        }
    }

    fn from_record(r: PointRecord) -> Result<Point, BadField> {
        Ok(Point {
            score: r.score,
            k: r.k,
            loss_minus_log_k: r.loss_minus_log_k,
            limit: r.limit,
            rate_constant: r.rate_constant,
        })
    }
}

/// Writes the table as CSV, atomically.
pub fn write(path: &Path, points: &[Point]) -> Result<(), RunDirError> {
    crate::runs::write_csv(path, points)
}

/// Reads a table written by [`write()`]; the error names the file, the line and the field.
pub fn read(path: &Path) -> Result<Vec<Point>, RunDirError> {
    crate::runs::read_csv(path)
}
