//! BP by hand on the smallest interesting JGHM, then the same numbers from the library.
//!
//! The root `z ∈ {0, 1}` has prior `π = (0.6, 0.4)`. The image tower is one level with two
//! children, each a noisy copy of the root: `Ψ(a, b) = 0.8` if `b = a`, else `0.2`. The text is
//! one leaf with `Ψ(a, b) = 0.7` if `b = a`. Observe the image `x = (0, 0)`.
//!
//! Upward pass: each image leaf sends `μ_i(a) = Ψ(a, x_i)`; the root multiplies them,
//! `λ(a) = Π_i μ_i(a)`; then `p(x) = Σ_a π(a) λ(a)` and `p(z = a | x) = π(a) λ(a) / p(x)`.
//!
//! Run: `cargo run --release --example posterior_by_hand`

use jghm::nalgebra::DMatrix;
use jghm::{bp, Jghm, Level, Part};

/// A noisy copy: `Ψ(a, a) = same`, `Ψ(a, b) = other` for `b ≠ a` (`same + other = 1`).
fn copy(same: f64, other: f64) -> DMatrix<f64> {
    DMatrix::from_row_slice(2, 2, &[same, other, other, same])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prior = [0.6, 0.4];
    let image = Level { transitions: vec![copy(0.8, 0.2), copy(0.8, 0.2)] };
    let text = Level { transitions: vec![copy(0.7, 0.3)] };
    let model = Jghm::new(prior.to_vec(), vec![], vec![image], vec![text])?;
    let x = [0, 0];

    // By hand.
    let psi = copy(0.8, 0.2);
    let lambda: Vec<f64> = (0..2).map(|a| x.iter().map(|&t| psi[(a, t)]).product()).collect();
    let p_x: f64 = (0..2).map(|a| prior[a] * lambda[a]).sum();
    let by_hand: Vec<f64> = (0..2).map(|a| prior[a] * lambda[a] / p_x).collect();
    println!(
        "by hand:  λ = [{:.4}, {:.4}], p(x) = {p_x:.6}, p(z | x) = [{:.6}, {:.6}]",
        lambda[0], lambda[1], by_hand[0], by_hand[1]
    );

    // By the library's BP.
    let post = bp::root_posterior_of(&model, Part::Image, &x)?;
    println!(
        "by BP:    log p(x) = {:.6} (p(x) = {:.6}), p(z | x) = [{:.6}, {:.6}]",
        post.log_likelihood,
        post.log_likelihood.exp(),
        post.root[0],
        post.root[1]
    );
    for (h, b) in by_hand.iter().zip(&post.root) {
        assert!((h - b).abs() < 1e-12, "BP disagrees with the hand computation");
    }
    assert!((p_x.ln() - post.log_likelihood).abs() < 1e-12);

    // The text given the image: p(y = 0 | x) = Σ_a p(z = a | x) Ψ_text(a, 0).
    let next = bp::next_token_conditional(&model, Some(&x), &[])?;
    let expected = by_hand[0] * 0.7 + by_hand[1] * 0.3;
    println!("p(y = 0 | x): by hand {expected:.6}, by BP {:.6}", next[0]);
    assert!((next[0] - expected).abs() < 1e-12);
    println!("The model as JSON, for `jghm posterior --model FILE --image 0,0`:");
    println!("{}", model.to_json());
    Ok(())
}
