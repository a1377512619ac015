//! A small sample-complexity sweep (T12): the BP class trained on n pairs, its exact excess risk,
//! and the fitted log-log slope with its bootstrap interval (the parametric rate is −1).
//!
//! `jghm rates` runs the full sweep with checkpoints, resume and figures; this example shows
//! the library calls behind it.
//!
//! Run: `cargo run --release --example rate_sweep`

use jghm::contrastive::Exact;
use jghm::info::Enumeration;
use jghm::learn::Class;
use jghm::rates::fit::fit;
use jghm::rates::run::default_model;
use jghm::rates::sweep::{Settings, Sweep};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = default_model().build()?;
    let en = Enumeration::new(&model)?;
    let exact = Exact::new(&en);
    let settings = Settings { bp_steps: 600, ..Settings::default_sweep(true) };
    let sweep = Sweep { model: &model, model_sha256: "example".into(), exact: &exact, settings: &settings };
    let mut runs = Vec::new();
    for n in [256, 1024, 4096] {
        for seed in 0..3 {
            let row = sweep.run(Class::Bp, n, seed, &mut |_| {})?;
            println!("n = {n:>5}, seed {seed}: excess risk {:.6} nats", row.figures.excess_risk);
            runs.push((n, row.figures.excess_risk));
        }
    }
    let f = fit(&runs, 1).ok_or("too few distinct n to fit")?;
    println!(
        "slope {:.3}, 95% bootstrap interval [{:.3}, {:.3}] over the seeds (the parametric rate is -1)",
        f.slope, f.slope_ci[0], f.slope_ci[1]
    );
    Ok(())
}
