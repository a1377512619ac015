//! The score of a learned pair, `S(x, y)` from the embeddings `u = f(x)`, `v = g(y)`, forward
//! and backward. Scores are computed on a list of (image, text) index pairs, so the same code
//! serves the in-batch scheme (all `B²` pairs) and the K-way scheme (`2B(K−1) + B` pairs).
//!
//! Two heads:
//! * [`Head::Bilinear`], CLIP's (the book, T2-T4): `S = ⟨û, v̂⟩ / τ`, `τ = exp(log τ)` learnable,
//!   `û = u/‖u‖` when normalised (else `û = u`). Backward:
//!   `dû += dS v̂/τ`, `dv̂ += dS û/τ`, `d log τ −= dS·S`, and through the normalisation
//!   `du = (dû − û⟨û, dû⟩)/‖u‖`.
//! * [`Head::T7`], the well-specified one: `u, v ∈ R^{S₀}` are the towers' root log-likelihoods
//!   `log p_θ(x | z)`, `log p_θ(y | z)`, the prior is `π = softmax(ρ)` (ρ learnable), and
//!   ```text
//!   S(x, y) = log Σ_z π_z e^{u_z + v_z} − A(x) − B(y),   A = log Σ_z π_z e^{u_z},  B = log Σ_z π_z e^{v_z}
//!           = log Σ_z f_z g_z / π_z      with f = softmax(log π + u) = p_θ(z | x), g likewise (T7).
//!   ```
//!   With `w_z = softmax_z(log π + u + v)`, `α = f`, `β = g`:
//!   `∂S/∂u_z = w_z − α_z`, `∂S/∂v_z = w_z − β_z`, `∂S/∂log π_z = w_z − α_z − β_z`, and
//!   `dρ_y = dlogπ_y − π_y Σ_z dlogπ_z` (softmax).

use serde::{Deserialize, Serialize};

use super::real::Real;

/// Which score a learned pair uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Head {
    /// `⟨û, v̂⟩ / τ`; one parameter, `log τ`.
    ///
    /// The learned counterpart of [`crate::score::Bilinear`] (two fixed encoders and a given
    /// `τ`): here `log τ` is a trained parameter with its gradient, and the embeddings may be
    /// L2-normalised first.
    Bilinear { normalise: bool },
    /// `log Σ_z f_z g_z / π_z` over `states` root states; parameters `ρ` (`π = softmax ρ`).
    T7 { states: usize },
}

/// Per-embedding quantities computed once per forward pass.
#[derive(Default, Clone, Debug)]
pub struct HeadCache<R> {
    /// Bilinear: `û`, `v̂` and the norms `‖u‖`, `‖v‖`. T7: `log π + u` and `v` rows.
    uh: Vec<R>,
    vh: Vec<R>,
    un: Vec<R>,
    vn: Vec<R>,
    /// T7: `log π` and `A(x_i)`, `B(y_j)`.
    log_pi: Vec<R>,
    a: Vec<R>,
    b: Vec<R>,
}

fn log_sum_exp<R: Real>(xs: impl Iterator<Item = R> + Clone) -> R {
    let m = xs.clone().fold(R::neg_infinity(), R::max);
    if m == R::neg_infinity() {
        return m;
    }
    m + xs.map(|x| (x - m).exp()).sum::<R>().ln()
}

impl Head {
    pub fn num_params(&self) -> usize {
        match self {
            Head::Bilinear { .. } => 1,
            Head::T7 { states } => *states,
        }
    }

    /// Initial parameters: `log τ = log 0.07` (CLIP's) when normalised, `log τ = 0` otherwise
    /// (as in the PyTorch reference); `ρ = 0` (uniform prior).
    pub fn init<R: Real>(&self) -> Vec<R> {
        match self {
            Head::Bilinear { normalise: true } => vec![R::of(0.07f64.ln())],
            Head::Bilinear { normalise: false } => vec![R::zero()],
            Head::T7 { states } => vec![R::zero(); *states],
        }
    }

    /// `scores[k] = S(x_{pairs[k].0}, y_{pairs[k].1})` for embeddings `u` (rows of width `p`)
    /// and `v`; fills `cache` for [`Head::backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward<R: Real>(
        &self,
        params: &[R],
        u: &[R],
        v: &[R],
        p: usize,
        pairs: &[(u32, u32)],
        scores: &mut Vec<R>,
        cache: &mut HeadCache<R>,
    ) {
        scores.clear();
        match *self {
            Head::Bilinear { normalise } => {
                let inv_tau = (-params[0]).exp();
                normalise_rows(u, p, normalise, &mut cache.uh, &mut cache.un);
                normalise_rows(v, p, normalise, &mut cache.vh, &mut cache.vn);
                for &(i, j) in pairs {
                    let (ui, vj) = (&cache.uh[i as usize * p..][..p], &cache.vh[j as usize * p..][..p]);
                    // S = ⟨û, v̂⟩ / τ
                    scores.push(ui.iter().zip(vj).map(|(&a, &b)| a * b).sum::<R>() * inv_tau);
                }
            }
            Head::T7 { states } => {
                assert_eq!(p, states, "the T7 head needs embeddings of the root's size");
                // log π = ρ − log Σ e^ρ
                let lz = log_sum_exp(params[..states].iter().copied());
                cache.log_pi.clear();
                cache.log_pi.extend(params[..states].iter().map(|&r| r - lz));
                let lp = &cache.log_pi;
                // A(x) = log Σ_z π_z e^{u_z}, B(y) likewise
                cache.a.clear();
                cache.a.extend(u.chunks_exact(p).map(|ui| log_sum_exp(ui.iter().zip(lp).map(|(&x, &l)| x + l))));
                cache.b.clear();
                cache.b.extend(v.chunks_exact(p).map(|vj| log_sum_exp(vj.iter().zip(lp).map(|(&x, &l)| x + l))));
                for &(i, j) in pairs {
                    let (ui, vj) = (&u[i as usize * p..][..p], &v[j as usize * p..][..p]);
                    // S = log Σ_z π_z e^{u_z + v_z} − A − B
                    let joint = log_sum_exp(ui.iter().zip(vj).zip(lp).map(|((&a, &b), &l)| a + b + l));
                    scores.push(joint - cache.a[i as usize] - cache.b[j as usize]);
                }
            }
        }
    }

    /// Accumulates `du`, `dv`, `dparams` from `dscores`, after [`Head::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn backward<R: Real>(
        &self,
        params: &[R],
        u: &[R],
        v: &[R],
        p: usize,
        pairs: &[(u32, u32)],
        scores: &[R],
        dscores: &[R],
        cache: &HeadCache<R>,
        du: &mut [R],
        dv: &mut [R],
        dparams: &mut [R],
    ) {
        match *self {
            Head::Bilinear { normalise } => {
                let inv_tau = (-params[0]).exp();
                let mut duh = vec![R::zero(); u.len()];
                let mut dvh = vec![R::zero(); v.len()];
                for ((&(i, j), &s), &ds) in pairs.iter().zip(scores).zip(dscores) {
                    let (i, j) = (i as usize * p, j as usize * p);
                    for c in 0..p {
                        // dû += dS v̂/τ,  dv̂ += dS û/τ
                        duh[i + c] += ds * inv_tau * cache.vh[j + c];
                        dvh[j + c] += ds * inv_tau * cache.uh[i + c];
                    }
                    // S = e^{−log τ}⟨û, v̂⟩  ⇒  ∂S/∂log τ = −S
                    dparams[0] -= ds * s;
                }
                normalise_backward(&duh, &cache.uh, &cache.un, p, normalise, du);
                normalise_backward(&dvh, &cache.vh, &cache.vn, p, normalise, dv);
            }
            Head::T7 { states } => {
                let lp = &cache.log_pi;
                let mut dlog_pi = vec![R::zero(); states];
                // dA_i = −Σ_{pairs with i} dS, dB_j likewise (A and B enter every score negatively).
                let mut da = vec![R::zero(); u.len() / p];
                let mut db = vec![R::zero(); v.len() / p];
                let mut w = vec![R::zero(); states];
                for (&(i, j), &ds) in pairs.iter().zip(dscores) {
                    let (i, j) = (i as usize, j as usize);
                    let (ui, vj) = (&u[i * p..][..p], &v[j * p..][..p]);
                    // w_z = softmax_z(log π_z + u_z + v_z)
                    for z in 0..states {
                        w[z] = ui[z] + vj[z] + lp[z];
                    }
                    let m = w.iter().copied().fold(R::neg_infinity(), R::max);
                    let mut sum = R::zero();
                    w.iter_mut().for_each(|x| {
                        *x = (*x - m).exp();
                        sum += *x;
                    });
                    for z in 0..states {
                        let wz = w[z] / sum * ds;
                        du[i * p + z] += wz;
                        dv[j * p + z] += wz;
                        dlog_pi[z] += wz;
                    }
                    da[i] -= ds;
                    db[j] -= ds;
                }
                // ∂A/∂u_z = ∂A/∂log π_z = α_z = softmax(log π + u)_z, and B likewise.
                for (rows, dd, grad) in [(u, &da, &mut *du), (v, &db, &mut *dv)] {
                    for ((row, &d), g) in rows.chunks_exact(p).zip(dd.iter()).zip(grad.chunks_exact_mut(p)) {
                        if d == R::zero() {
                            continue;
                        }
                        let l = log_sum_exp(row.iter().zip(lp).map(|(&x, &q)| x + q));
                        for z in 0..states {
                            let alpha = (row[z] + lp[z] - l).exp();
                            g[z] += d * alpha;
                            dlog_pi[z] += d * alpha;
                        }
                    }
                }
                // log π = ρ − log Σ e^ρ  ⇒  dρ_y = dlogπ_y − π_y Σ_z dlogπ_z
                let total: R = dlog_pi.iter().copied().sum();
                for z in 0..states {
                    dparams[z] += dlog_pi[z] - lp[z].exp() * total;
                }
            }
        }
    }
}

/// `û = u/‖u‖` per row (or a copy when not normalising), with the norms.
fn normalise_rows<R: Real>(u: &[R], p: usize, normalise: bool, uh: &mut Vec<R>, norms: &mut Vec<R>) {
    uh.clear();
    norms.clear();
    for row in u.chunks_exact(p) {
        let n = if normalise {
            row.iter().map(|&x| x * x).sum::<R>().sqrt().max(R::min_positive_value())
        } else {
            R::one()
        };
        norms.push(n);
        uh.extend(row.iter().map(|&x| x / n));
    }
}

/// `du += (dû − û⟨û, dû⟩)/‖u‖` (or `du += dû` when not normalising).
fn normalise_backward<R: Real>(duh: &[R], uh: &[R], norms: &[R], p: usize, normalise: bool, du: &mut [R]) {
    for (((d, h), &n), g) in duh.chunks_exact(p).zip(uh.chunks_exact(p)).zip(norms).zip(du.chunks_exact_mut(p)) {
        let dot: R = if normalise { d.iter().zip(h).map(|(&a, &b)| a * b).sum() } else { R::zero() };
        for c in 0..p {
            g[c] += (d[c] - h[c] * dot) / n;
        }
    }
}
