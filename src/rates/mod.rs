//! Sample-complexity sweeps and their rates (the book, T12, T12): the toolkit's headline output.
//!
//! With `n` pre-training pairs the empirical CLIP minimiser `Ŝ` over a class `F` has excess
//! large-batch risk of order `approximation(F) + √(C(F) log n / n)` (or `C(F)/n`, the fast rate
//! of a well-specified parametric class). On a model small enough to enumerate, every risk of a
//! learned pair is computed exactly, so the sweep measures the learning alone:
//!
//! | file | holds |
//! |---|---|
//! | [`measure`] | a learned score's exact figures: excess risk both ways (T4), T5 bounds, zero-shot (T8) |
//! | [`sweep`] | the runs: sample `n` pairs, train with early stopping, measure |
//! | [`results`] | `results.csv`, one row per finished run, rewritten atomically |
//! | [`fit`](mod@fit) | log-log slope with a bootstrap-over-seeds 95% interval, and the floor |
//! | [`infonce`] | T3's convergence `ℓ_K − log K → ℓ_∞`, exactly, for figure (d) |
//! | [`run`] | a sweep as a resumable run: settings, its folder, the per-class fits |

pub mod fit;
pub mod infonce;
pub mod measure;
pub mod results;
pub mod run;
pub mod sweep;

pub use fit::{fit, Fit};
pub use measure::{figures as exact_figures, Figures};
pub use results::Row;
pub use sweep::{Settings, Sweep};
