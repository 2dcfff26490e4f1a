//! The order a search starts its configurations in. A grid lists them sorted by parameter,
//! so starting in that order would try one corner of the grid first; a seed shuffles them.
//!
//! The shuffle is Fisher–Yates driven by ChaCha8 seeded with `seed_from_u64(seed)`, with our
//! own unbiased arithmetic on its raw 64-bit words (as `random` sweeps do), so a seed gives the
//! same order on every machine and version.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The indices `0..configurations` in the order to start them: the sweep's order without a
/// seed, a seeded shuffle with one.
pub fn start_order(configurations: usize, seed: Option<u64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..configurations).collect();
    if let Some(seed) = seed {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for last in (1..order.len()).rev() {
            let pick = below(&mut rng, last as u64 + 1) as usize;
            order.swap(last, pick);
        }
    }
    order
}

/// Uniform in `[0, span)` for `span >= 1`, without bias (rejection of the words that would
/// favour the low values).
fn below(rng: &mut ChaCha8Rng, span: u64) -> u64 {
    let excess = (u64::MAX % span + 1) % span;
    loop {
        let word = rng.next_u64();
        if word <= u64::MAX - excess {
            return word % span;
        }
    }
}
