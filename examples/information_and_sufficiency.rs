//! The mutual information `I(X; Y)` of a small JGHM, exactly, and the sufficiency gap of three
//! statistics of the image: the root posterior (sufficient: gap 0, T6), the MAP root (a
//! coarsening: a small gap), the first image token (most of the information lost).
//!
//! `Suff_Y(f) = I(X; Y) − I(f(X); Y) ≥ 0`, and it is 0 exactly when `f(X)` carries everything
//! the image says about the text.
//!
//! Run: `cargo run --release --example information_and_sufficiency`

use jghm::info::{self, fixed, Enumeration};
use jghm::sufficiency::{Report, Statistic};
use jghm::{Part, RandomSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 3 states, 2 children, 2 levels on both towers: 81 images, 81 texts, enumerated exactly.
    let model = RandomSpec::symmetric(3, 2, 2, 1).build()?;
    let information = info::exact(&Enumeration::new(&model)?);
    for (name, e) in information.rows() {
        println!("{name:<24} {:.10} nats", e.value);
    }
    println!();
    println!("{:<18} {:>14} {:>14}", "statistic f(X)", "I(f(X); Y)", "Suff_Y(f)");
    for name in ["root-posterior", "map-root", "first-tokens:1"] {
        let statistic: Statistic = name.parse()?;
        let r = Report::exact(&model, Part::Image, statistic)?;
        println!("{name:<18} {:>14} {:>14}", fixed(r.statistic_information, 10), fixed(r.sufficiency, 10));
        assert!(r.sufficiency >= -1e-12, "a sufficiency gap is never negative");
    }
    let root = Report::exact(&model, Part::Image, "root-posterior".parse()?)?;
    assert!(root.sufficiency.abs() < 1e-10, "the root posterior is sufficient (T6)");
    Ok(())
}
