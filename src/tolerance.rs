//! Tolerances, each stated once with the reason for its size.

/// A transition row or the prior must sum to 1 within this, on the way in (model validation).
/// JSON written by other tools carries decimal round-off; 1e-9 accepts printed probabilities
/// with 10 significant digits and rejects anything that is genuinely not a distribution.
/// Accepted rows are then renormalised, so the engine works with exactly stochastic rows.
pub const ROW_SUM: f64 = 1e-9;

/// Exact quantities (BP against brute-force enumeration) agree to this, in absolute terms on
/// log-probabilities of tiny models: both sides are f64 sums of at most ~10^5 terms, whose
/// round-off is ~10^-12 relative; 1e-10 leaves two orders of margin and still catches any
/// wrong factor.
pub const EXACT: f64 = 1e-10;

/// The batched probability-domain BP (`bp::fast`) agrees with the log-domain reference
/// (`bp::Workspace`) to this: absolute on probabilities, relative (to `max(1, |value|)`) on
/// log-probabilities. Both compute the same sums in a different order and domain, each with
/// round-off ~10^-15 relative per level; 1e-12 is the bar the fast path must meet.
pub const FAST: f64 = 1e-12;
