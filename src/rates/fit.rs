//! The rate of a sweep: the log-log slope of a risk against `n`, its 95% interval, and the
//! floor (the book, T12, T12).
//!
//! # Model
//! On `log r = a + b log n` up to a break, then a constant floor `log r = c`:
//! the break is chosen among the distinct `n` (at least [`MIN_POINTS`] of them before it, at
//! least one after it, or none: no floor reached) by the Bayesian information criterion
//! `N log(SSE / N) + p log N` (`p = 2` without a floor, `3` with one), and a floor must lie below
//! the line's value at the last sloped `n` (a curve that stops falling, not one that jumps up).
//! The slope `b` is ordinary least squares on every run before the break; the floor is the
//! geometric mean `exp c` of the runs after it.
//!
//! # Interval
//! Bootstrap over seeds: every run is independent (its own seed, its own data), so a resample
//! draws, for each `n` before the break, as many runs as it has, with replacement, and refits
//! the slope; the interval is the 2.5% and 97.5% percentiles of [`BOOTSTRAP`] resamples
//! (the break kept where the full data put it). The regression's own interval
//! `b ± t_{0.975, N−2} · se(b)` is reported beside it.

use rand::Rng as _;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::rng;

/// Fewest distinct `n` a slope is fitted on.
pub const MIN_POINTS: usize = 3;
/// Bootstrap resamples.
pub const BOOTSTRAP: usize = 2000;

/// A fitted rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// `b` in `r ∝ n^b`, fitted on the runs above the floor.
    pub slope: f64,
    /// 95% bootstrap-over-seeds interval of `b` (percentile).
    pub slope_ci: [f64; 2],
    /// 95% interval of the regression, `b ± t · se(b)`.
    pub slope_ci_regression: [f64; 2],
    /// `a` in `log r = a + b log n`.
    pub intercept: f64,
    /// Geometric mean of the risk over the runs at the floor; `None` if the curve never stops falling.
    pub floor: Option<f64>,
    /// The distinct `n` the slope was fitted on, and those at the floor.
    pub fitted_n: Vec<usize>,
    pub floor_n: Vec<usize>,
    /// Runs used (fitted + floor), and runs dropped for a nonpositive or non-finite risk.
    pub runs: usize,
    pub dropped: usize,
    pub method: String,
}

/// One run: `(n, risk)`.
pub type Run = (usize, f64);

/// Fits the rate of `runs` (any order); `None` with fewer than [`MIN_POINTS`] distinct `n`.
pub fn fit(runs: &[Run], seed: u64) -> Option<Fit> {
    let kept: Vec<(usize, f64)> =
        runs.iter().filter(|(_, r)| r.is_finite() && *r > 0.0).map(|&(n, r)| (n, r.ln())).collect();
    let dropped = runs.len() - kept.len();
    let mut ns: Vec<usize> = kept.iter().map(|p| p.0).collect();
    ns.sort_unstable();
    ns.dedup();
    if ns.len() < MIN_POINTS {
        return None;
    }
    let split = choose_break(&kept, &ns);
    let (sloped, flat): (Vec<Run>, Vec<Run>) = kept.iter().partition(|p| p.0 <= ns[split - 1]);
    let line = ols(&sloped);
    let floor = (!flat.is_empty()).then(|| (flat.iter().map(|p| p.1).sum::<f64>() / flat.len() as f64).exp());
    let boot = bootstrap(&sloped, &ns[..split], seed);
    let method = format!(
        "OLS of log risk on log n over the {} runs above the floor (break by BIC); 95% interval {}",
        sloped.len(),
        match boot {
            Some(_) => format!("by bootstrap over seeds ({BOOTSTRAP} resamples, percentile)"),
            None => "of the regression (b ± t·se; one run per n leaves nothing to resample)".into(),
        }
    );
    let slope_ci = boot.unwrap_or(line.interval);
    Some(Fit {
        slope: line.slope,
        slope_ci,
        slope_ci_regression: line.interval,
        intercept: line.intercept,
        floor,
        fitted_n: ns[..split].to_vec(),
        floor_n: ns[split..].to_vec(),
        runs: kept.len(),
        dropped,
        method,
    })
}

struct Line {
    slope: f64,
    intercept: f64,
    sse: f64,
    interval: [f64; 2],
}

/// Ordinary least squares of `log r` on `log n`.
fn ols(points: &[(usize, f64)]) -> Line {
    let m = points.len() as f64;
    let xs: Vec<f64> = points.iter().map(|p| (p.0 as f64).ln()).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / m, points.iter().map(|p| p.1).sum::<f64>() / m);
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    let sxy: f64 = xs.iter().zip(points).map(|(x, p)| (x - mx) * (p.1 - my)).sum();
    // b = S_xy / S_xx,  a = ȳ − b x̄
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse: f64 = xs.iter().zip(points).map(|(x, p)| (p.1 - intercept - slope * x).powi(2)).sum();
    // se(b) = sqrt(SSE / (N − 2) / S_xx)
    let interval = if points.len() > 2 {
        let se = (sse / (m - 2.0) / sxx).sqrt();
        let t = StudentsT::new(0.0, 1.0, m - 2.0).map(|d| d.inverse_cdf(0.975)).unwrap_or(f64::NAN);
        [slope - t * se, slope + t * se]
    } else {
        [f64::NAN, f64::NAN]
    };
    Line { slope, intercept, sse, interval }
}

/// The number of distinct `n` before the break (module doc).
fn choose_break(points: &[(usize, f64)], ns: &[usize]) -> usize {
    let total = points.len() as f64;
    let bic = |sse: f64, p: f64| total * (sse.max(1e-300) / total).ln() + p * total.ln();
    let mut best = (bic(ols(points).sse, 2.0), ns.len());
    for split in MIN_POINTS..ns.len() {
        let last = ns[split - 1];
        let (sloped, flat): (Vec<Run>, Vec<Run>) = points.iter().partition(|p| p.0 <= last);
        let line = ols(&sloped);
        let c = flat.iter().map(|p| p.1).sum::<f64>() / flat.len() as f64;
        if c >= line.intercept + line.slope * (last as f64).ln() {
            continue;
        }
        let sse = line.sse + flat.iter().map(|p| (p.1 - c).powi(2)).sum::<f64>();
        let value = bic(sse, 3.0);
        if value < best.0 {
            best = (value, split);
        }
    }
    best.1
}

/// The percentile interval of the slope over seed resamples; `None` if no `n` has two runs.
fn bootstrap(points: &[(usize, f64)], ns: &[usize], seed: u64) -> Option<[f64; 2]> {
    let groups: Vec<Vec<f64>> = ns.iter().map(|&n| points.iter().filter(|p| p.0 == n).map(|p| p.1).collect()).collect();
    if groups.iter().all(|g| g.len() < 2) {
        return None;
    }
    let mut rng = rng::stream(seed, 0xb007);
    let mut slopes: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| {
            let resample: Vec<(usize, f64)> = ns
                .iter()
                .zip(&groups)
                .flat_map(|(&n, g)| (0..g.len()).map(|_| (n, g[rng.random_range(0..g.len())])).collect::<Vec<_>>())
                .collect();
            ols(&resample).slope
        })
        .collect();
    slopes.sort_by(f64::total_cmp);
    let at = |q: f64| slopes[((q * (BOOTSTRAP - 1) as f64).round() as usize).min(BOOTSTRAP - 1)];
    Some([at(0.025), at(0.975)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `r = 3 n^{-1}` exactly, three seeds each: slope −1, no floor, a zero-width interval.
    #[test]
    fn exact_power_law_has_its_slope_and_no_floor() {
        let runs: Vec<Run> =
            [256, 1024, 4096, 16384].iter().flat_map(|&n| (0..3).map(move |_| (n, 3.0 / n as f64))).collect();
        let f = fit(&runs, 1).unwrap();
        assert!((f.slope + 1.0).abs() < 1e-12, "{f:?}");
        assert!(f.floor.is_none());
        assert!((f.slope_ci[0] + 1.0).abs() < 1e-12 && (f.slope_ci[1] + 1.0).abs() < 1e-12);
    }

    /// Runs of a zero, negative, NaN or infinite risk are dropped and counted in `dropped`, and the
    /// fit is the one of the other runs (the same seed gives the same bootstrap); `dropped` is 0
    /// when every run is kept.
    #[test]
    fn nonpositive_and_non_finite_risks_are_dropped_and_counted() {
        let good: Vec<Run> = [256usize, 1024, 4096, 16384]
            .iter()
            .flat_map(|&n| (1..=2).map(move |s| (n, s as f64 * 3.0 / n as f64)))
            .collect();
        let clean = fit(&good, 1).unwrap();
        assert_eq!((clean.runs, clean.dropped), (8, 0), "{clean:?}");
        let mut runs = good.clone();
        runs.extend([(256, 0.0), (1024, -0.5), (4096, f64::NAN), (16384, f64::INFINITY), (256, f64::NEG_INFINITY)]);
        let f = fit(&runs, 1).unwrap();
        assert_eq!(f, Fit { dropped: 5, ..clean }, "{f:?}");
        // Exactly `MIN_POINTS` distinct `n` are enough; two (the third's risk dropped) are not.
        assert!(fit(&[(1, 1.0), (2, 0.5), (4, 0.25)], 1).is_some());
        for bad in [0.0, -1.0, f64::INFINITY] {
            assert_eq!(fit(&[(1, 1.0), (2, 0.5), (4, bad)], 1), None, "risk {bad}");
        }
    }

    /// Least-squares slope of `log r` on `log n` by the normal equations (nalgebra), independent
    /// of [`ols`].
    fn normal_equations_slope(points: &[(usize, f64)]) -> f64 {
        let x =
            nalgebra::DMatrix::from_fn(points.len(), 2, |i, j| if j == 0 { 1.0 } else { (points[i].0 as f64).ln() });
        let y = nalgebra::DVector::from_fn(points.len(), |i, _| points[i].1);
        let beta = (x.transpose() * &x).try_inverse().unwrap() * x.transpose() * y;
        beta[1]
    }

    /// The bootstrap interval is its definition: [`BOOTSTRAP`] resamples, each drawing for every
    /// `n` (ascending) as many runs as it has, uniformly with replacement, from the stream
    /// `(seed, 0xb007)`; each resample's slope (here by the normal equations); the sorted slopes
    /// read at the ranks `round(q (B − 1))` for `q = 0.025, 0.975`. Every `n` with exactly two
    /// runs is enough to resample (the reported interval is then the bootstrap's, not the
    /// regression's); with one run per `n` there is nothing to resample.
    #[test]
    fn bootstrap_interval_is_the_percentiles_of_seed_resamples() {
        let ns = [256usize, 1024, 4096, 16384];
        for (per_n, seed) in [(2usize, 3u64), (4, 7)] {
            let runs: Vec<Run> = ns
                .iter()
                .enumerate()
                .flat_map(|(k, &n)| {
                    (0..per_n).map(move |s| (n, (1.0 + 0.3 * ((s * 7 + k * 3) % 5) as f64) * 3.0 / n as f64))
                })
                .collect();
            let f = fit(&runs, seed).unwrap();
            assert!(f.floor.is_none() && f.fitted_n == ns.to_vec(), "{f:?}");
            assert!(f.method.contains("by bootstrap over seeds"), "{per_n} runs per n: {}", f.method);
            let logs: Vec<(usize, f64)> = runs.iter().map(|&(n, r)| (n, r.ln())).collect();
            let mut rng = rng::stream(seed, 0xb007);
            let mut slopes: Vec<f64> = (0..BOOTSTRAP)
                .map(|_| {
                    let mut resample = vec![];
                    for &n in &ns {
                        let group: Vec<f64> = logs.iter().filter(|p| p.0 == n).map(|p| p.1).collect();
                        for _ in 0..group.len() {
                            resample.push((n, group[rng.random_range(0..group.len())]));
                        }
                    }
                    normal_equations_slope(&resample)
                })
                .collect();
            slopes.sort_by(f64::total_cmp);
            let (lo, hi) = ((0.025f64 * 1999.0).round() as usize, (0.975f64 * 1999.0).round() as usize);
            assert_eq!((lo, hi), (50, 1949));
            if per_n == 4 {
                // The next ranks hold other slopes, so a rank off by one or two is seen.
                assert!(slopes[hi] != slopes[hi + 1] && slopes[hi] != slopes[hi + 2], "ties at the rank");
            }
            for (got, want) in f.slope_ci.iter().zip([slopes[lo], slopes[hi]]) {
                assert!((got - want).abs() < 1e-12, "{per_n} runs per n: {:?} vs {want}", f.slope_ci);
            }
            assert_ne!(f.slope_ci, f.slope_ci_regression);
        }
        let single: Vec<Run> = ns.iter().map(|&n| (n, 3.0 / n as f64)).collect();
        assert_eq!(bootstrap(&single.iter().map(|&(n, r)| (n, r.ln())).collect::<Vec<_>>(), &ns, 1), None);
    }

    /// The regression interval `b ± t·se(b)` against an independent route: `Var(b) = σ̂² (XᵀX)⁻¹₁₁`
    /// by nalgebra's inverse, `σ̂² = SSE / (m − 2)`, and the tabulated `t_{0.975}` for 3 degrees of
    /// freedom (five points, so that `m − 2` differs from `m / 2`); with one run per `n` it is
    /// also the interval reported. Two points: no interval.
    #[test]
    fn regression_interval_is_b_plus_minus_t_se() {
        let ns = [256usize, 512, 1024, 4096, 16384];
        let wiggle = [1.3, 0.8, 1.25, 0.85, 1.1];
        let runs: Vec<Run> = ns.iter().zip(wiggle).map(|(&n, w)| (n, w * 3.0 / n as f64)).collect();
        let f = fit(&runs, 1).unwrap();
        assert_eq!(f.fitted_n, ns.to_vec(), "{f:?}");
        let m = ns.len();
        let x = nalgebra::DMatrix::from_fn(m, 2, |i, j| if j == 0 { 1.0 } else { (ns[i] as f64).ln() });
        let y = nalgebra::DVector::from_fn(m, |i, _| runs[i].1.ln());
        let xtx_inv = (x.transpose() * &x).try_inverse().unwrap();
        let beta = &xtx_inv * x.transpose() * &y;
        let residual = &y - &x * &beta;
        let sigma2 = residual.norm_squared() / (m - 2) as f64;
        let se = (sigma2 * xtx_inv[(1, 1)]).sqrt();
        let t = 3.182446305284263; // t_{0.975} with 3 degrees of freedom
        assert!((f.slope - beta[1]).abs() < 1e-12 && (f.intercept - beta[0]).abs() < 1e-12, "{f:?}");
        for (got, want) in f.slope_ci_regression.iter().zip([beta[1] - t * se, beta[1] + t * se]) {
            assert!((got - want).abs() < 1e-9, "{:?} vs {want}", f.slope_ci_regression);
        }
        assert_eq!(f.slope_ci, f.slope_ci_regression, "one run per n: the regression interval is reported");
        let two = ols(&runs[..2].iter().map(|&(n, r)| (n, r.ln())).collect::<Vec<_>>());
        assert!(two.interval.iter().all(|v| v.is_nan()), "{:?}", two.interval);
    }

    /// The break is chosen by BIC, `T ln(SSE/T) + p ln T` over the `T` runs: a floor found when
    /// the broken fit lowers the SSE by more than the factor `T^{1/T}` (about 1.13 here) that its
    /// extra parameter costs, with the runs' noise large enough that the factor is moderate.
    #[test]
    fn a_noisy_floor_is_found_by_bic() {
        let mut runs = vec![];
        for (k, &n) in [100usize, 200, 400, 800, 1600, 3200, 6400].iter().enumerate() {
            for s in 0..4 {
                let wiggle = 1.0 + 0.45 * ((s as f64) - 1.5) * if k % 2 == 0 { 1.0 } else { -1.0 };
                runs.push((n, (10.0 / n as f64).max(1e-2) * wiggle));
            }
        }
        let f = fit(&runs, 1).unwrap();
        assert_eq!(f.fitted_n, vec![100, 200, 400, 800], "{f:?}");
        assert!(f.floor.is_some(), "{f:?}");
    }

    /// BIC's choice does not depend on the unit of the log: raising every risk to a power `s`
    /// (log risks times `s`) multiplies every candidate's SSE by `s²`, which adds the same
    /// `2T ln s` to every BIC, so the same break is chosen and the slope is `s` times the slope.
    /// On the noisy floor above, the residuals at `s = 8` sum to more than the number of points.
    #[test]
    fn the_break_does_not_depend_on_the_unit_of_the_log() {
        let mut runs = vec![];
        for (k, &n) in [100usize, 200, 400, 800, 1600, 3200, 6400].iter().enumerate() {
            for s in 0..4 {
                let wiggle = 1.0 + 0.45 * ((s as f64) - 1.5) * if k % 2 == 0 { 1.0 } else { -1.0 };
                runs.push((n, (10.0 / n as f64).max(1e-2) * wiggle));
            }
        }
        let base = fit(&runs, 1).unwrap();
        for power in [2, 3, 5, 8, 13] {
            let powered: Vec<Run> = runs.iter().map(|&(n, r)| (n, r.powi(power))).collect();
            let f = fit(&powered, 1).unwrap();
            assert_eq!(f.fitted_n, base.fitted_n, "risks to the power {power}: {f:?}");
            assert_eq!(f.floor.is_some(), base.floor.is_some(), "risks to the power {power}");
            assert!((f.slope - power as f64 * base.slope).abs() < 1e-9, "power {power}: {} vs {}", f.slope, base.slope);
        }
    }

    /// A "floor" above the end of the fitted line is not a floor: risks that fall as `10/n` and
    /// then jump up to 0.5 are fitted as one line, with no floor.
    #[test]
    fn a_rise_is_not_a_floor() {
        let mut runs = vec![];
        for &n in &[100usize, 200, 400, 800, 1600, 3200, 6400] {
            for s in 0..3 {
                let r = if n <= 800 { 10.0 / n as f64 } else { 0.5 };
                runs.push((n, r * (1.0 + 0.01 * s as f64)));
            }
        }
        let f = fit(&runs, 1).unwrap();
        assert!(f.floor.is_none(), "{f:?}");
        assert_eq!(f.fitted_n.len(), 7, "{f:?}");
    }

    /// A power law that flattens at 1e-3: the floor is found and the slope is fitted above it.
    #[test]
    fn floor_is_found_and_excluded() {
        let mut runs = vec![];
        for (k, &n) in [100usize, 200, 400, 800, 1600, 3200, 6400].iter().enumerate() {
            for s in 0..4 {
                let wiggle = 1.0 + 0.05 * ((s as f64) - 1.5) * if k % 2 == 0 { 1.0 } else { -1.0 };
                runs.push((n, (10.0 / n as f64).max(1e-2) * wiggle));
            }
        }
        let f = fit(&runs, 1).unwrap();
        assert_eq!(f.fitted_n, vec![100, 200, 400, 800], "{f:?}");
        assert!((f.slope + 1.0).abs() < 0.05, "{f:?}");
        assert!((f.floor.unwrap() / 1e-2 - 1.0).abs() < 0.05, "{f:?}");
        assert!(f.slope_ci[0] < f.slope && f.slope < f.slope_ci[1]);
    }
}
