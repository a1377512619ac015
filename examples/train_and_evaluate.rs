//! Train a CLIP pair on a small JGHM and measure it against the exact ground truth.
//!
//! The model (4 states, 2 children, 2 levels a side: 256 images × 256 texts) is small enough to
//! enumerate, so the learned score's excess risk `ℓ_∞(Ŝ) − ℓ_∞(PMI)` (T4), which is also the
//! T5 bound on the sufficiency gap of its embedding, and its zero-shot accuracy on the root are
//! exact: no Monte Carlo noise. Two classes: the well-specified BP class (the towers' own
//! transitions are learned) and an MLP on one-hot tokens.
//!
//! Run: `cargo run --release --example train_and_evaluate`

use jghm::contrastive::Exact;
use jghm::info::Enumeration;
use jghm::learn::Class;
use jghm::rates::run::default_model;
use jghm::rates::sweep::{Settings, Sweep};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = default_model().build()?;
    let en = Enumeration::new(&model)?;
    let exact = Exact::new(&en);
    // The settings of `jghm rates --quick`: batch 32, 20% held out, early stopping.
    let settings = Settings::default_sweep(true);
    let sweep = Sweep { model: &model, model_sha256: "example".into(), exact: &exact, settings: &settings };
    for class in [Class::Bp, Class::Mlp] {
        let row = sweep.run(class, 4096, 0, &mut |_| {})?;
        let f = &row.figures;
        println!(
            "{class:?}: {} steps on 4096 pairs; excess risk {:.5} nats (X→Y {:.5}, Y→X {:.5}); \
             zero-shot accuracy {:.4} (exact PMI {:.4}, Bayes {:.4})",
            row.steps,
            f.excess_risk,
            f.excess_image_to_text,
            f.excess_text_to_image,
            f.zero_shot_accuracy,
            f.exact_score_accuracy,
            f.bayes_accuracy
        );
        assert!(f.excess_risk >= 0.0, "T2: no learned score beats the PMI");
        assert!(f.zero_shot_excess_risk <= f.excess_image_to_text + 1e-12, "T8");
    }
    Ok(())
}
