//! `jghm merge OUT DIR..`: the shards of sweeps (`--shard K/N` of `jghm rates`, `jghm reproduce`
//! and the width sweep of `jghm emulate`) combined into the folder the unsharded commands write,
//! figures included. Each harness merges its own kind ([`crate::rates::run::merge`],
//! [`crate::reproduce::run::merge`], [`crate::emulate::sweep::merge`]) on the checks of
//! [`crate::runs::read_shards`]; this module finds the kinds from the settings files and redraws.

use std::path::{Path, PathBuf};

use super::PlotError;
use crate::emulate::sweep::{self as emulation, SweepError, SweepRow};
use crate::rates::run::{self as rates, RatesError, SweepOutcome};
use crate::reproduce::experiments::ExperimentError;
use crate::reproduce::run::{self as reproduce, Figure, Options, Outcome};
use crate::runs::MergeError;

/// Why a merge stopped: the harness's error, or a figure that could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum MergeRunError {
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error(transparent)]
    Rates(#[from] RatesError),
    #[error(transparent)]
    Reproduce(#[from] ExperimentError),
    #[error(transparent)]
    Emulation(#[from] SweepError),
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// A kind of run that `jghm merge` combines, named by its settings file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The width sweep of `jghm emulate` (`emulation-settings.json`).
    Emulation,
    /// One figure of `jghm reproduce` (`<figure>-settings.json`).
    Reproduce(Figure),
    /// A sweep of `jghm rates` (`sweep.json`).
    Rates,
}

impl Kind {
    /// Every kind, in the order a merge writes them (the rates sweep last, so that its figures
    /// include rate plot (e) of an emulation sweep in the same folder).
    pub const ALL: [Kind; 5] = [
        Kind::Emulation,
        Kind::Reproduce(Figure::Risks),
        Kind::Reproduce(Figure::Prompts),
        Kind::Reproduce(Figure::Ood),
        Kind::Rates,
    ];

    /// The settings file that marks a folder as holding a run of this kind.
    pub fn settings_file(self) -> String {
        match self {
            Kind::Emulation => emulation::SETTINGS_FILE.to_string(),
            Kind::Reproduce(f) => reproduce::run_dir(f, Path::new("")).settings_file,
            Kind::Rates => rates::SETTINGS_FILE.to_string(),
        }
    }

    /// The kinds of run whose settings file `dir` holds.
    pub fn found_in(dir: &Path) -> Vec<Kind> {
        Kind::ALL.into_iter().filter(|k| dir.join(k.settings_file()).is_file()).collect()
    }
}

/// One merged run, written to the output folder with its figures.
pub enum Merged {
    /// The rows of an emulation sweep.
    Emulation(Vec<SweepRow>),
    /// A figure of `jghm reproduce`: the options of its unsharded run, its rows, the prompts fits.
    Reproduce { figure: Figure, options: Box<Options>, outcome: Outcome, fits: super::reproduce::PromptFits },
    /// A sweep of `jghm rates`, with its fits.
    Rates(SweepOutcome),
}

/// The canonical form of `p` when it exists (so that `a/../b` and `b` compare equal).
fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Merges the shard folders `dirs` into `out`: every kind of run found in the first folder
/// must be in every folder ([`Kind::found_in`]); each kind is merged by its harness (which
/// refuses mismatched settings and missing, duplicate, foreign or unfinished shards before it
/// writes) and its figures drawn as the unsharded command draws them.
pub fn merge(out: &Path, dirs: &[PathBuf]) -> Result<Vec<Merged>, MergeRunError> {
    let first = dirs.first().ok_or(MergeError::NoInputs)?;
    if let Some(dir) = dirs.iter().find(|d| canonical(d) == canonical(out)) {
        return Err(MergeError::OutIsInput { dir: dir.clone() }.into());
    }
    let kinds = Kind::found_in(first);
    if kinds.is_empty() {
        let expected = Kind::ALL.map(|k| k.settings_file()).join(", ");
        return Err(MergeError::NoRun { dir: first.clone(), expected }.into());
    }
    for dir in &dirs[1..] {
        let theirs = Kind::found_in(dir);
        if let Some(k) = Kind::ALL.into_iter().find(|k| kinds.contains(k) != theirs.contains(k)) {
            let (has, lacks) = if kinds.contains(&k) { (first, dir) } else { (dir, first) };
            let found = k.settings_file();
            return Err(MergeError::DifferentRuns { has: has.clone(), lacks: lacks.clone(), found }.into());
        }
    }
    let mut merged = vec![];
    for kind in kinds {
        merged.push(match kind {
            Kind::Emulation => {
                let rows = emulation::merge(dirs, out)?;
                super::emulation::plot_sweep(&rows, out)?;
                Merged::Emulation(rows)
            }
            Kind::Reproduce(figure) => {
                let (options, outcome) = reproduce::merge(figure, dirs, out)?;
                let fits = super::reproduce::draw_figures(figure, &options, &outcome)?;
                Merged::Reproduce { figure, options: Box::new(options), outcome, fits }
            }
            Kind::Rates => {
                let sweep = rates::merge(dirs, out)?;
                super::rates::draw_sweep(&sweep)?;
                Merged::Rates(sweep)
            }
        });
    }
    Ok(merged)
}
