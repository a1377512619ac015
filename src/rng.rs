//! The one seeded, portable random generator of the crate, and its split into streams.
//!
//! ChaCha8 gives the same numbers on every platform and version of this crate's lockfile.
//! Parallel work is cut into fixed-size chunks and chunk `c` draws from stream `c` of the seed,
//! so results never depend on the number of threads (DESIGN: conventions).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The crate's random generator.
pub type Rng = ChaCha8Rng;

/// Stream `stream` of seed `seed`: independent of every other stream of the same seed.
pub fn stream(seed: u64, stream: u64) -> Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Draws an index from the probability vector `p` (which must sum to 1 up to round-off),
/// by inverting the cumulative sum at one uniform draw.
pub fn categorical(rng: &mut Rng, p: &[f64]) -> usize {
    use rand::Rng as _;
    let u: f64 = rng.random::<f64>() * p.iter().sum::<f64>();
    let mut acc = 0.0;
    for (i, &pi) in p.iter().enumerate() {
        acc += pi;
        if u < acc {
            return i;
        }
    }
    // Round-off can leave `u` a hair above the last partial sum: return the last state with
    // positive probability.
    p.iter().rposition(|&pi| pi > 0.0).unwrap_or(p.len() - 1)
}
