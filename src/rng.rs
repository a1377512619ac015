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

/// What a derived seed is for. Each purpose has its own salt, so the draws of one purpose never
/// coincide with another's under the same user seed; the salts are part of the crate's numbers
/// (changing one changes every figure that uses it), so they are written here once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `jghm eval`: the images and texts of the PMI-correlation grid.
    EvalCorrelationGrid,
    /// `jghm eval`: the zero-shot prompts (one stream per class).
    EvalPrompts,
    /// `jghm eval`: the zero-shot test images.
    EvalZeroShotImages,
    /// `jghm eval`: the batches of the finite-`K` losses.
    EvalFiniteK,
    /// The emulation sweep: the images on which the emulator's error against BP is measured.
    EmulationInputs,
    /// Text generation: the independent pool of texts that estimates the normaliser
    /// `E_{Y'~p(y)} exp S(x, Y')` of the induced generator.
    GenerationPool,
    /// Conditional diffusion: the exact samples of the reference law.
    DiffusionReference,
    /// Training: the fixed data set of `n` pairs.
    TrainingData,
    /// The paper's learned denoiser head.
    DenoiserHead,
    /// The paper's learned next-token head.
    NextTokenHead,
}

impl Purpose {
    /// The salt XOR-ed into the user's seed.
    pub const fn salt(self) -> u64 {
        match self {
            Purpose::EvalCorrelationGrid => 0xc0,
            Purpose::EvalPrompts => 0x9000,
            Purpose::EvalZeroShotImages => 0x7e57,
            Purpose::EvalFiniteK => 0xf1,
            Purpose::EmulationInputs => 0xe1,
            Purpose::GenerationPool => 0x9e37,
            Purpose::DiffusionReference => 0x5eed,
            Purpose::TrainingData => 0x5eed_da7a,
            Purpose::DenoiserHead => 0xd3_0000,
            Purpose::NextTokenHead => 0x7e_0000,
        }
    }

    /// The seed of this purpose derived from the user's `seed`: `seed ⊕ salt`.
    pub const fn seed(self, seed: u64) -> u64 {
        seed ^ self.salt()
    }
}
