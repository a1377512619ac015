//! Log-domain arithmetic shared by every exact computation, and the decision rule read off a law
//! or its logarithms ([`argmax`]: the same index for both, since `ln` is increasing).

/// `log Σ_i exp(x_i)`, stable: `c + log Σ_i exp(x_i - c)` with `c = max_i x_i`.
/// Returns `-inf` for an empty slice or when every term is `-inf`.
pub fn log_sum_exp(xs: &[f64]) -> f64 {
    let c = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if c == f64::NEG_INFINITY {
        return c;
    }
    c + xs.iter().map(|x| (x - c).exp()).sum::<f64>().ln()
}

/// `log Σ_i exp(x_i)` over an iterator (two passes need a slice; this keeps a running max).
pub fn log_sum_exp_iter(xs: impl IntoIterator<Item = f64>) -> f64 {
    let (mut c, mut sum) = (f64::NEG_INFINITY, 0.0);
    for x in xs {
        if x == f64::NEG_INFINITY {
            continue;
        }
        if x > c {
            sum = sum * (c - x).exp() + 1.0;
            c = x;
        } else {
            sum += (x - c).exp();
        }
    }
    if c == f64::NEG_INFINITY {
        c
    } else {
        c + sum.ln()
    }
}

/// Normalises log-weights into probabilities: `p_i = exp(x_i - log Σ_j exp x_j)`.
/// Returns `None` when every weight is `-inf` (nothing to normalise).
pub fn normalise_log(xs: &[f64]) -> Option<Vec<f64>> {
    let z = log_sum_exp(xs);
    (z > f64::NEG_INFINITY).then(|| xs.iter().map(|x| (x - z).exp()).collect())
}

/// `argmax_i v_i`: the index of the largest entry, ties to the smallest index (so a decision
/// between equally likely classes does not depend on the platform or the thread count). A NaN
/// entry never wins a comparison; 0 for an empty slice. The MAP decision of a law `p(c | ·)`
/// (Bayes classifier, T8) and of any score or log-law.
pub fn argmax(v: &[f64]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}
