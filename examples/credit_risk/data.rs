//! Synthetic customer records for the credit-default model, deterministic from a seed.
//!
//! Each record has 150 attributes: 100 continuous ones (ten latent factors, each shared by ten
//! attributes with weight 0.6, plus independent noise: correlated groups, as incomes, balances
//! and utilisation ratios are) and 50 binary flags (a latent factor plus noise past a
//! threshold between 0.5 and 2.0 standard deviations: rates from 2% to 30%). Whether the
//! customer defaults is drawn from a hidden non-linear rule:
//!
//! ```text
//! score = 0.9 x0 - 0.7 x1 + 0.6 x2 x3 + 1.2 [x4 > 1.5] - 0.8 [x5 < -1] + 0.35 x6^2
//!       + 0.5 sin(2 x7) + 0.9 b0 + 0.8 b1 b2 - 0.6 b3 + sum_{j=8..39} w_j x_j
//! P(default) = sigmoid(score + c)
//! ```
//!
//! with `w_j` drawn once from N(0, 0.15^2) and `c` calibrated (bisection on 50,000 records of
//! the same distribution) so that 2.0% of customers default. The noise is the Bernoulli draw
//! itself: even the true rule has an AUC well below 1.

/// splitmix64: the generator of every random number here.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.uniform();
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<u32> {
        let mut order: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        order
    }
}

pub const FEATURES: usize = 150;
const CONTINUOUS: usize = 100;
const FACTORS: usize = 10;
/// The default rate the generator is calibrated to.
pub const DEFAULT_RATE: f64 = 0.02;

/// Records row-major [n, features] and labels (1.0: default).
#[derive(Debug)]
pub struct Dataset {
    pub records: Vec<f32>,
    pub labels: Vec<f32>,
    pub features: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&y| y > 0.5).count()
    }

    /// Records `range`, as a dataset of their own.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        Dataset {
            records: self.records[range.start * self.features..range.end * self.features].to_vec(),
            labels: self.labels[range].to_vec(),
            features: self.features,
        }
    }

    /// Each column's mean and standard deviation (1 where a column is constant).
    pub fn moments(&self) -> Vec<(f64, f64)> {
        let n = self.len() as f64;
        (0..self.features)
            .map(|f| {
                let column = self.records.iter().skip(f).step_by(self.features);
                let mean = column.clone().map(|&v| f64::from(v)).sum::<f64>() / n;
                let var = column.map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
                (mean, if var > 0.0 { var.sqrt() } else { 1.0 })
            })
            .collect()
    }

    /// Standardizes every column with `moments` (the training split's).
    pub fn standardize(&mut self, moments: &[(f64, f64)]) {
        for row in self.records.chunks_mut(self.features) {
            for (v, &(mean, std)) in row.iter_mut().zip(moments) {
                *v = ((f64::from(*v) - mean) / std) as f32;
            }
        }
    }
}

/// The generator: the hidden rule's fixed weights and calibrated intercept.
pub struct Generator {
    seed: u64,
    thresholds: Vec<f64>,
    weights: Vec<f64>,
    intercept: f64,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        let mut rng = Rng::new(seed ^ 0xC0FF_EE00);
        let thresholds = (0..FEATURES - CONTINUOUS)
            .map(|_| 0.5 + 1.5 * rng.uniform())
            .collect();
        let weights = (0..CONTINUOUS).map(|_| 0.15 * rng.normal()).collect();
        let mut generator = Generator {
            seed,
            thresholds,
            weights,
            intercept: 0.0,
        };
        // Bisection on the intercept: the mean default probability of 50,000 records.
        let mut rng = Rng::new(seed ^ 0xCA11_B8A7);
        let scores: Vec<f64> = (0..50_000)
            .map(|_| {
                let mut row = [0.0_f32; FEATURES];
                generator.score(&mut rng, &mut row)
            })
            .collect();
        let (mut lo, mut hi) = (-20.0, 5.0);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            let rate = scores.iter().map(|s| sigmoid(s + mid)).sum::<f64>() / scores.len() as f64;
            if rate > DEFAULT_RATE {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        generator.intercept = 0.5 * (lo + hi);
        generator
    }

    /// Fills `row` with one customer's attributes and returns the hidden rule's score.
    fn score(&self, rng: &mut Rng, row: &mut [f32; FEATURES]) -> f64 {
        let factors: Vec<f64> = (0..FACTORS).map(|_| rng.normal()).collect();
        let mut x = [0.0_f64; CONTINUOUS];
        for (j, v) in x.iter_mut().enumerate() {
            *v = 0.6 * factors[j % FACTORS] + 0.8 * rng.normal();
        }
        let mut b = [0.0_f64; FEATURES - CONTINUOUS];
        for (j, v) in b.iter_mut().enumerate() {
            let latent = 0.5 * factors[(j + 3) % FACTORS] + rng.normal();
            *v = f64::from(u8::from(latent > self.thresholds[j]));
        }
        for (dst, &v) in row.iter_mut().zip(x.iter().chain(&b)) {
            *dst = v as f32;
        }
        let indicator = |c: bool| f64::from(u8::from(c));
        let mut score = 0.9 * x[0] - 0.7 * x[1] + 0.6 * x[2] * x[3] + 1.2 * indicator(x[4] > 1.5)
            - 0.8 * indicator(x[5] < -1.0)
            + 0.35 * x[6] * x[6]
            + 0.5 * (2.0 * x[7]).sin()
            + 0.9 * b[0]
            + 0.8 * b[1] * b[2]
            - 0.6 * b[3];
        score += self.weights[8..40]
            .iter()
            .zip(&x[8..40])
            .map(|(w, v)| w * v)
            .sum::<f64>();
        score
    }

    /// `n` records; record `i` of one seed is the same whatever `n`.
    pub fn generate(&self, n: usize) -> Dataset {
        self.stream().take(n)
    }

    /// The records one after the other, in chunks of any size: the same records as
    /// `generate`, without holding them all.
    pub fn stream(&self) -> Stream<'_> {
        Stream {
            generator: self,
            rng: Rng::new(self.seed),
        }
    }
}

/// The generator's records in order (see [`Generator::stream`]).
pub struct Stream<'a> {
    generator: &'a Generator,
    rng: Rng,
}

impl Stream<'_> {
    /// The next `n` records.
    pub fn take(&mut self, n: usize) -> Dataset {
        let mut records = Vec::with_capacity(n * FEATURES);
        let mut labels = Vec::with_capacity(n);
        let mut row = [0.0_f32; FEATURES];
        for _ in 0..n {
            let score = self.generator.score(&mut self.rng, &mut row);
            let p = sigmoid(score + self.generator.intercept);
            labels.push(if self.rng.uniform() < p { 1.0 } else { 0.0 });
            records.extend_from_slice(&row);
        }
        Dataset {
            records,
            labels,
            features: FEATURES,
        }
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A user's table: a CSV file with a header row, every column numeric, `label` among them
/// (1 for a default, 0 otherwise); the other columns are the attributes, in file order. Fields
/// are split at commas (no quoting); a field that is not a finite number is an error naming
/// its line and column.
pub fn read_csv(path: &std::path::Path, label: &str) -> Result<Dataset, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or("an empty file")?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let label_at = names
        .iter()
        .position(|n| *n == label)
        .ok_or_else(|| format!("no column {label:?} in the header ({})", names.join(", ")))?;
    let features = names.len() - 1;
    if features == 0 {
        return Err("no attribute columns besides the label".into());
    }
    let (mut records, mut labels) = (Vec::new(), Vec::new());
    for (number, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != names.len() {
            return Err(format!(
                "line {}: {} fields, the header has {}",
                number + 1,
                fields.len(),
                names.len()
            ));
        }
        for (column, field) in fields.iter().enumerate() {
            let value: f64 = field
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| {
                    format!(
                        "line {}, column {:?}: {field:?} is not a finite number",
                        number + 1,
                        names[column]
                    )
                })?;
            if column == label_at {
                if value != 0.0 && value != 1.0 {
                    return Err(format!("line {}: label {value} is not 0 or 1", number + 1));
                }
                labels.push(value as f32);
            } else {
                records.push(value as f32);
            }
        }
    }
    Ok(Dataset {
        records,
        labels,
        features,
    })
}
