//! The searches' pseudo-random numbers: xoshiro256** seeded through SplitMix64, and the
//! per-trial seed.
//!
//! A search needs a few thousand reproducible uniforms per round, the same on every machine and
//! every release; twenty lines of a published generator do that without a dependency whose
//! streams may change between versions (`rand`'s `StdRng` documents that it may).

/// Golden-ratio increment of SplitMix64 (Steele, Lea & Flood 2014).
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function applied to `x + GOLDEN`: a bijective 64-bit mix.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of one trial: a hash of (search seed, configuration index, restart index), so that
/// the `R` restarts of a configuration get `R` different model initialisations, and a
/// configuration keeps its seeds whatever else the search runs. Feed it to the objective's
/// model initialisation (`torch.manual_seed(trial.seed)` in PyTorch terms).
///
/// ```
/// use wgpu_optim::search::trial_seed;
/// assert_eq!(trial_seed(7, 3, 1), trial_seed(7, 3, 1));
/// assert_ne!(trial_seed(7, 3, 0), trial_seed(7, 3, 1));
/// ```
pub fn trial_seed(search_seed: u64, config: usize, restart: usize) -> u64 {
    let h = splitmix(search_seed ^ 0x7472_6961_6c73_6565); // "trialsee": a stream of its own
    let h = splitmix(h ^ config as u64);
    splitmix(h ^ (restart as u64).rotate_left(32))
}

/// xoshiro256** (Blackman & Vigna 2018), seeded by expanding a `u64` with SplitMix64 as its
/// authors recommend: the generator every search draws from.
///
/// ```
/// use wgpu_optim::search::Rng;
/// let mut rng = Rng::new(42);
/// let u = rng.next_f64();
/// assert!((0.0..1.0).contains(&u));
/// assert_eq!(Rng::new(42).next_u64(), Rng::new(42).next_u64());
/// ```
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose stream is a function of `seed` alone.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            let out = splitmix(x);
            x = x.wrapping_add(GOLDEN);
            out
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)`, on the grid of multiples of 2⁻⁵³.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal deviate (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: ln stays finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}
