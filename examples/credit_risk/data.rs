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
    /// The attributes' names (a table's header, the label's column left out); empty for the
    /// generator's records.
    pub names: Vec<String>,
}

/// Why a table, a split or a standardized value is refused: each names the bad input and the
/// rule it broke.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("an empty file: a header row and then one record per line expected")]
    Empty,
    #[error("a header row and no records")]
    NoRecords,
    #[error("{records} records: at least {minimum} are needed")]
    TooFewRecords { records: usize, minimum: usize },
    #[error(
        "the {split} split's {records} records are all labelled {present}: ROC AUC and \
         precision are undefined on a single label. Use more records (a --csv table is split \
         stratified by label, shuffled with --seed, so the file's order does not matter; the \
         synthetic records default at about 2%: --records 1000 or more)"
    )]
    SingleLabel {
        split: &'static str,
        records: usize,
        present: u8,
    },
    #[error(
        "the {split} split's record {record}, column {column:?}: {value:e} standardized with \
         the training split's mean {mean:e} and standard deviation {std:e} is beyond f32"
    )]
    Standardized {
        split: &'static str,
        record: usize,
        column: String,
        value: f32,
        mean: f64,
        std: f64,
    },
    // A bank's own table (`table::read_table`): each names the line (the header is line 1,
    // blank lines counted), the column and the value where there is one, and the fix.
    #[error(
        "line {line}, column {column:?}: not UTF-8 text: save the table as UTF-8 (Excel: \
         \"CSV UTF-8\"; pandas: to_csv(encoding=\"utf-8\"))"
    )]
    NotUtf8 { line: usize, column: String },
    #[error(
        "line {line}: the header names column {name:?} twice (columns {first} and {second}): \
         rename one"
    )]
    DuplicateName {
        line: usize,
        name: String,
        first: usize,
        second: usize,
    },
    #[error("line {line}: no column {name:?} ({option}) in the header: {columns}; {fix}")]
    MissingColumn {
        line: usize,
        name: String,
        option: &'static str,
        columns: String,
        fix: String,
    },
    #[error("line {line}: no attribute columns besides {columns}; {fix}")]
    NoAttributeColumns {
        line: usize,
        columns: String,
        fix: String,
    },
    #[error(
        "line {line}: {fields} fields, the header has {expected} (delimiter {delimiter:?}): \
         quote a field that holds the delimiter, or mend the line"
    )]
    FieldCount {
        line: usize,
        fields: usize,
        expected: usize,
        delimiter: char,
    },
    #[error(
        "line {line}, column {column:?}: {text:?} is not a finite number: replace it, or \
         leave the cell empty (a missing value, imputed)"
    )]
    NotFiniteCell {
        line: usize,
        column: String,
        text: String,
    },
    #[error(
        "line {line}, column {column:?}: {text:?} is not a finite number in f32 (the device's \
         type: magnitudes up to 3.4028235e38): rescale the column (thousands, millions) or \
         leave the cell empty (a missing value, imputed)"
    )]
    BeyondF32Cell {
        line: usize,
        column: String,
        text: String,
    },
    #[error(
        "line {line}, column {column:?}: {text:?} is text in a column of numbers ({numbers} \
         numbers, {texts} text cells): correct it, or write a missing value as empty or NA"
    )]
    MixedColumn {
        line: usize,
        column: String,
        text: String,
        numbers: usize,
        texts: usize,
    },
    #[error(
        "line {line}, column {column:?}: the label is missing ({text:?}): drop the record or \
         label it"
    )]
    MissingLabel {
        line: usize,
        column: String,
        text: String,
    },
    #[error(
        "column {column:?}: the labels are not 0 and 1 ({values}): name the value that marks \
         a default with --positive VALUE, or write the labels as 0 and 1"
    )]
    NoPositive { column: String, values: String },
    #[error(
        "--positive {positive:?} is not a value of column {column:?} ({values}): name one of \
         them, spelled exactly (case included)"
    )]
    PositiveNotFound {
        column: String,
        positive: String,
        values: String,
    },
    #[error(
        "line {line}, column {column:?}: a third label value {text:?} ({values}): a default \
         or not takes two values; map the labels to two (or to 0 and 1)"
    )]
    TooManyLabelValues {
        line: usize,
        column: String,
        text: String,
        values: String,
    },
    #[error(
        "{count} records labelled {label}: the training, validation and test splits each need \
         records of both labels (ROC AUC and precision are undefined on one), so at least 3 \
         of each label are needed: add records labelled {label}"
    )]
    TooFewOfClass { label: String, count: usize },
    #[error(
        "line {line}, column {column:?}: {text:?} is not a split: write train, validation or \
         test (training, valid, val, dev and testing are read too, in any case)"
    )]
    SplitValue {
        line: usize,
        column: String,
        text: String,
    },
    #[error(
        "--split-column {name:?} is the label's column: name another column, or leave the \
         option out for a split stratified by label"
    )]
    SplitIsLabel { name: String },
    #[error(
        "the {split} split (column {column:?}) holds {} records, {positives} defaults and \
         {negatives} others: ROC AUC and precision need both labels; move records of both \
         labels into it",
        .positives + .negatives
    )]
    SplitLacksLabel {
        split: &'static str,
        column: String,
        positives: usize,
        negatives: usize,
    },
    #[error(
        "no attribute column is left, each is constant or all missing in the training split \
         ({dropped}): add columns that vary"
    )]
    NothingLeft { dropped: String },
    #[error("--max-categories 0: each text column needs at least one one-hot column")]
    NoCategories,
}

/// `v` standardized with a column's `(mean, std)`: only centred where `std` is 0.
fn standardized(v: f32, (mean, std): (f64, f64)) -> f32 {
    let centred = f64::from(v) - mean;
    (if std > 0.0 { centred / std } else { centred }) as f32
}

/// Records held out per label for validation and for test: a tenth each, at least one.
fn held_out(count: usize) -> usize {
    (count / 10).max(1)
}

/// The rows of the training, validation and test sets, stratified by `labels` (1.0: default):
/// each label's rows shuffled with `Rng::new(seed ^ 0x5791_17ED)` (label 0's first), a tenth
/// of them (at least one) to validation, as many to test, the rest to training; each set in
/// the table's order. A label with fewer than 3 rows leaves some set without it: callers
/// refuse that first.
pub fn stratified_rows(labels: &[f32], seed: u64) -> [Vec<usize>; 3] {
    let mut rng = Rng::new(seed ^ 0x5791_17ED);
    let mut sets: [Vec<usize>; 3] = Default::default();
    for label in [0_u8, 1] {
        let rows: Vec<usize> = (0..labels.len())
            .filter(|&r| (labels[r] > 0.5) == (label == 1))
            .collect();
        let order = rng.permutation(rows.len());
        let held = held_out(rows.len());
        for (k, &i) in order.iter().enumerate() {
            let set = if k < held {
                1
            } else if k < 2 * held {
                2
            } else {
                0
            };
            sets[set].push(rows[i as usize]);
        }
    }
    for rows in &mut sets {
        rows.sort_unstable();
    }
    sets
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&y| y > 0.5).count()
    }

    /// Attribute `column`'s name: the header's, or its index for the generator's records.
    pub fn name(&self, column: usize) -> String {
        self.names
            .get(column)
            .cloned()
            .unwrap_or_else(|| format!("attribute {column}"))
    }

    /// Records `range`, as a dataset of their own.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        Dataset {
            records: self.records[range.start * self.features..range.end * self.features].to_vec(),
            labels: self.labels[range].to_vec(),
            features: self.features,
            names: self.names.clone(),
        }
    }

    /// The records at `rows`, in that order, as a dataset of their own.
    pub fn select(&self, rows: &[usize]) -> Dataset {
        let f = self.features;
        Dataset {
            records: rows
                .iter()
                .flat_map(|&r| &self.records[r * f..(r + 1) * f])
                .copied()
                .collect(),
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
            features: f,
            names: self.names.clone(),
        }
    }

    /// Refuses a set whose records all carry one label (or none): its ROC AUC and precision
    /// would be undefined, and a training set without positives learns nothing about them.
    pub fn check_labels(&self, split: &'static str) -> Result<(), DataError> {
        let positives = self.positives();
        if self.is_empty() || positives == 0 || positives == self.len() {
            return Err(DataError::SingleLabel {
                split,
                records: self.len(),
                present: u8::from(positives > 0),
            });
        }
        Ok(())
    }

    /// Each column's mean and standard deviation, in f64; the deviation is 0 for a constant
    /// column (which [`standardize`](Self::standardize) only centres).
    pub fn moments(&self) -> Vec<(f64, f64)> {
        let n = self.len() as f64;
        (0..self.features)
            .map(|f| {
                let column = self.records.iter().skip(f).step_by(self.features);
                let mean = column.clone().map(|&v| f64::from(v)).sum::<f64>() / n;
                let var = column.map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
                (mean, var.sqrt())
            })
            .collect()
    }

    /// Standardizes every column with `moments` (the training split's): `(v - mean) / std`,
    /// or `v - mean` where the training split's column is constant (`std` 0). For the
    /// generator's records, whose every value is within a few deviations; a user's table goes
    /// through [`try_standardize`](Self::try_standardize).
    pub fn standardize(&mut self, moments: &[(f64, f64)]) {
        for row in self.records.chunks_mut(self.features) {
            for (v, &moment) in row.iter_mut().zip(moments) {
                *v = standardized(*v, moment);
            }
        }
    }

    /// [`standardize`](Self::standardize), refusing a value whose result is not finite in
    /// f32 (a column with a tiny spread in the training split and a far value in this one),
    /// naming the split, the record, the column and the value; the set is then partly
    /// standardized.
    pub fn try_standardize(
        &mut self,
        moments: &[(f64, f64)],
        split: &'static str,
    ) -> Result<(), DataError> {
        for (record, row) in self.records.chunks_mut(self.features).enumerate() {
            for (column, (v, &(mean, std))) in row.iter_mut().zip(moments).enumerate() {
                let z = standardized(*v, (mean, std));
                if !z.is_finite() {
                    return Err(DataError::Standardized {
                        split,
                        record,
                        column: self
                            .names
                            .get(column)
                            .cloned()
                            .unwrap_or_else(|| format!("attribute {column}")),
                        value: *v,
                        mean,
                        std,
                    });
                }
                *v = z;
            }
        }
        Ok(())
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
            names: Vec::new(),
        }
    }
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
