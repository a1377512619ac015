//! The CLIP loss and its optimum (T2-T4), exactly on a small model.
//!
//! For every batch size `K` the PMI `log p(x, y) / (p(x) p(y))` minimises the CLIP loss
//! `L_K(S) = (ℓ_K^{X→Y}(S) + ℓ_K^{Y→X}(S)) / 2` (T2); the InfoNCE bound
//! `log K − ℓ_K(S) ≤ I(X; Y)` holds (T3); and at `K = ∞` the excess of any score is a KL
//! divergence, `E_X KL(P_{Y|X} ‖ Q^S_{Y|X})` (T4).
//!
//! Run: `cargo run --release --example clip_loss_optimum`

use jghm::contrastive::{Batch, ClipLossReport};
use jghm::info::{self, Enumeration};
use jghm::score::{Perturbed, Pmi, Score};
use jghm::RandomSpec;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 2 states, 2 children, 2 levels a side: 16 images and 16 texts, small enough for K = 4.
    let model = RandomSpec::symmetric(2, 2, 2, 1).build()?;
    let en = Enumeration::new(&model)?;
    let mi = info::exact(&en).mutual_information.value;
    println!("I(X; Y) = {mi:.10} nats\n");
    println!("{:<26} {:>5} {:>14} {:>14} {:>14}", "score", "K", "L_K(S)", "L_K(PMI)", "excess");
    let pmi = Pmi { model: &model };
    let perturbed = Perturbed { base: Pmi { model: &model }, amplitude: 0.5, seed: 7 };
    let scores: [&dyn Score; 2] = [&pmi, &perturbed];
    for score in scores {
        for batch in [Batch::Finite(2), Batch::Finite(4), Batch::Infinite] {
            let r = ClipLossReport::exact(&en, score, batch)?;
            let k = match batch {
                Batch::Finite(k) => k.to_string(),
                Batch::Infinite => "inf".to_string(),
            };
            println!(
                "{:<26} {k:>5} {:>14.10} {:>14.10} {:>14.10}",
                score.name(),
                r.loss.value,
                r.optimum.value,
                r.excess.value
            );
            assert!(r.excess.value >= -1e-12, "T2: no score beats the PMI");
            if let Batch::Finite(k) = batch {
                assert!((k as f64).ln() - r.loss.value <= mi + 1e-12, "T3: the InfoNCE bound");
            }
        }
    }
    println!("\nAt K = inf the PMI's loss is −I(X; Y): every excess is a KL divergence (T4).");
    Ok(())
}
