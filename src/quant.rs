//! 8-bit block-quantized optimizer states: torchao's `OptimState8bit` (the states of
//! `Adam8bit` and `AdamW8bit`) and bitsandbytes' block-wise 8-bit states, on the host. The
//! device kernels (`shaders/common/quant8.wgsl`) compute the same codes, bit for bit; the CPU
//! reference and the checkpoint codec use these functions.
//!
//! A state tensor is cut into blocks of [`BLOCK`] elements from its first. Each block keeps
//! one f32 scale, the largest magnitude among its finite values (at least `1e-12`, torchao's
//! `clip`), and one byte per element: the index of the entry of a 256-value *dynamic map*
//! nearest to `value / scale` ([`dynamic_map`]: bitsandbytes' dynamic exponent, `signed` for
//! first moments and momenta, unsigned for second moments). A code stands for
//! `map[code] * scale`.

use std::sync::OnceLock;

/// Elements per block: one scale each (torchao's and bitsandbytes' default, 256).
pub const BLOCK: usize = 256;

/// The fewest elements a tensor's states are quantized from (torchao's and bitsandbytes'
/// `min_8bit_size`): smaller tensors (biases, norms) keep full-precision states.
pub const MIN_QUANTIZED: u64 = 4096;

/// Whether a tensor of `len` elements gets 8-bit states, by torchao's rule
/// (`_AdamBase._new_buffer`): at least [`MIN_QUANTIZED`] elements, in whole blocks. The others
/// keep full-precision (f32) states.
pub fn quantizes(len: u64) -> bool {
    len >= MIN_QUANTIZED && len.is_multiple_of(BLOCK as u64)
}

/// The smallest scale: a block of zeros keeps this one (torchao's `clip(1e-12)`).
pub const MIN_SCALE: f32 = 1e-12;

/// torchao's `create_dynamic_map(signed)` (bitsandbytes' without its zero padding), as the f32
/// values torch computes: for each exponent `i` in 0..7, the midpoints of
/// `torch.linspace(0.1, 1, 2^i + 1)` (`2^(i + 1) + 1` points unsigned) times `10^(i - 6)`, and
/// their negations when signed; then 0 and 1; sorted. The signed map runs from -0.99297 to 1
/// (0 at code 127), the unsigned one from 0 to 1. `tests/quant8_golden.rs` checks both entry
/// for entry against torchao 0.18.0's.
pub fn dynamic_map(signed: bool) -> [f32; 256] {
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..7 {
        let points = if signed {
            (1 << i) + 1
        } else {
            (1 << (i + 1)) + 1
        };
        let bounds = linspace(0.1, 1.0, points);
        // torch: a python float times an f32 tensor multiplies in f32.
        let power = 10f64.powi(i - 6) as f32;
        for pair in bounds.windows(2) {
            let mean = (pair[0] + pair[1]) / 2.0;
            data.push(power * mean);
            if signed {
                data.push(-power * mean);
            }
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    data.try_into().expect("256 entries")
}

/// `torch.linspace(start, end, steps)` in f32 on the CPU: the first half counted from `start`,
/// the second from `end` (ATen's `RangeFactoriesKernel`), each point rounded once (its
/// vectorized loop fuses the multiply and the add: a separately rounded product misses 12 of
/// the 65 points of `linspace(0.1, 1, 65)`).
fn linspace(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - i - 1) as f32, end)
            }
        })
        .collect()
}

/// The code of `x` (a value already divided by its block's scale): torchao's
/// `quantize_8bit_with_qmap`, a branchless binary search for the last entry at most `x`, then
/// up to the next entry when `x` is at least half way to it. A NaN takes code 0 (every
/// comparison is false), as in torchao.
pub fn quantize(x: f32, map: &[f32; 256]) -> u8 {
    let mut code = 0usize;
    for step in [128, 64, 32, 16, 8, 4, 2, 1] {
        if x >= map[code + step] {
            code += step;
        }
    }
    let up = (code + 1).min(255);
    let down_value = map[code];
    if x - down_value >= (map[up] - down_value) * 0.5 {
        code = up;
    }
    code as u8
}

/// The decision boundaries of [`quantize`] on `map`: entry `c` (1 to 255) is the smallest f32
/// whose code is at least `c` (entry 0, unused, is -inf). The code of a value `x` that is not
/// NaN is the number of entries 1 to 255 at most `x`, since the search rounds monotonically
/// (a larger value never gets a smaller code). Each boundary lies in `(map[c - 1], map[c]]`
/// and is found there by bisection over the floats in order.
pub fn thresholds(map: &[f32; 256]) -> [f32; 256] {
    let mut bounds = [f32::NEG_INFINITY; 256];
    for code in 1..256 {
        // The code of from_order_key(below) is under `code`, that of from_order_key(at) not.
        let (mut below, mut at) = (order_key(map[code - 1]), order_key(map[code]));
        while at - below > 1 {
            let mid = below + (at - below) / 2;
            if (quantize(from_order_key(mid), map) as usize) < code {
                below = mid;
            } else {
                at = mid;
            }
        }
        bounds[code] = from_order_key(at);
    }
    bounds
}

/// The floats' order as unsigned integers: negatives reversed below the positives (-0 just
/// below +0).
fn order_key(x: f32) -> u32 {
    let bits = x.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    }
}

/// The float whose [`order_key`] is `key`.
fn from_order_key(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 {
        key & !(1 << 31)
    } else {
        !key
    })
}

/// Words of [`device_table`] before its buckets: the two maps' entries (as f32 bits), the
/// signed map's 256 then the unsigned one's.
pub const TABLE_BUCKETS: usize = 512;

/// Buckets of each of [`device_table`]'s three bucket tables: magnitudes from 2^-23 to 2^1,
/// 128 to an octave (the top 7 bits of the significand).
pub const BUCKETS: usize = 24 * 128;

/// The float bits of a magnitude shifted right by this leave its bucket (plus
/// [`FIRST_BUCKET`]): its exponent and the top 7 bits of its significand.
pub const BUCKET_SHIFT: u32 = 16;

/// The bucket key (`bits >> BUCKET_SHIFT`) of 2^-23, the first bucket's: smaller magnitudes
/// fall in the first bucket too, larger than the last one's (1 to 2) in the last.
pub const FIRST_BUCKET: u32 = (127 - 23) << 7;

/// A bucket word's boundary position where the bucket holds no boundary: past every value's
/// position (16 bits).
pub const NO_BOUNDARY: u32 = 1 << 16;

/// The three bucket tables of [`device_table`], in order, as (the signed map, its negative
/// values): the signed map's positive values, its negative ones, the unsigned map's.
const BUCKET_TABLES: [(bool, bool); 3] = [(true, false), (true, true), (false, false)];

/// Words of [`device_table`].
pub const TABLE_WORDS: usize = TABLE_BUCKETS + 3 * BUCKETS;

/// What the device's quantizer reads (bound at `QuantMaps`, `qmaps` in
/// shaders/common/quant8.wgsl), as 32-bit words:
///
/// - from 0, the two maps' entries as f32 bits, the signed map then the unsigned one;
/// - from [`TABLE_BUCKETS`], three tables of [`BUCKETS`] words, for the signed map's positive
///   values, its negative values, and the unsigned map's values (whose negative values all
///   take code 0): for each bucket of magnitudes, the code of its smallest value in the low 8
///   bits and, above them, the [position](bucket_position) of the decision boundary
///   ([`thresholds`]) of the next code, or [`NO_BOUNDARY`].
///
/// A bucket is narrower than the gap between two neighbouring boundaries, so it holds at most
/// one: the code of a value is its bucket's code, or the next one where the value is at least
/// that boundary, which within a bucket its position tells. One load settles a code, without
/// a search or a float comparison (`tests::a_bucket_holds_at_most_one_boundary`; the device
/// against [`quantize`] in tests/quant8.rs).
///
/// Computed once per process (the boundaries' bisection and 9,216 buckets' codes), then
/// shared by every 8-bit optimizer built.
pub fn device_table() -> &'static [u32] {
    static TABLE: OnceLock<Vec<u32>> = OnceLock::new();
    TABLE.get_or_init(build_device_table)
}

/// [`device_table`], computed.
fn build_device_table() -> Vec<u32> {
    let mut table: Vec<u32> = [true, false]
        .iter()
        .flat_map(|&signed| dynamic_map(signed).map(f32::to_bits))
        .collect();
    debug_assert_eq!(table.len(), TABLE_BUCKETS);
    for (signed, negative) in BUCKET_TABLES {
        let map = &dynamic_map(signed);
        let bounds = thresholds(map);
        table.extend((0..BUCKETS).map(|bucket| {
            let (low, high) = bucket_range(bucket);
            // The bucket's smallest and largest value.
            let (first, last) = if negative { (-high, -low) } else { (low, high) };
            let (code, last_code) = (quantize(first, map), quantize(last, map));
            let position = if last_code > code {
                bucket_position(bounds[usize::from(code) + 1])
            } else {
                NO_BOUNDARY
            };
            u32::from(code) | position << 8
        }));
    }
    table
}

/// Where `x` lies in its bucket, in the order of values: the low 16 bits of its magnitude, or
/// their complement where `x` is negative (a larger magnitude is a smaller value). Of two
/// values in one bucket (but the first and last, which hold no boundary), the larger has the
/// larger position.
pub fn bucket_position(x: f32) -> u32 {
    let low = x.to_bits() & 0xffff;
    if x.is_sign_negative() {
        0xffff - low
    } else {
        low
    }
}

/// The WGSL declaration of a variable `name` holding [`device_table`] (without its binding
/// attribute): a uniform buffer, which must have a size, or a read-only storage buffer.
pub fn table_declaration(name: &str, uniform: bool) -> String {
    if uniform {
        format!("var<uniform> {name}: array<vec4<u32>, {}>", TABLE_WORDS / 4)
    } else {
        format!("var<storage, read> {name}: array<vec4<u32>>")
    }
}

/// The smallest and largest magnitude of bucket `bucket` (0 and infinity at the ends).
fn bucket_range(bucket: usize) -> (f32, f32) {
    let key = FIRST_BUCKET + bucket as u32;
    let low = if bucket == 0 {
        0.0
    } else {
        f32::from_bits(key << BUCKET_SHIFT)
    };
    let high = if bucket == BUCKETS - 1 {
        f32::INFINITY
    } else {
        f32::from_bits(((key + 1) << BUCKET_SHIFT) - 1)
    };
    (low, high)
}

/// A block's scale: the largest magnitude among its finite values, at least [`MIN_SCALE`].
/// torchao takes the largest of all (a NaN or an infinity makes the whole block NaN or
/// infinite); here a non-finite value never reaches the scale, so one bad element cannot
/// poison its 255 neighbours: it saturates (an infinity takes the map's end) or takes code 0
/// (a NaN). A step whose gradients hold one is skipped before it gets here when gradient
/// processing is on ([`GradConfig`](crate::GradConfig)).
pub fn block_scale(values: &[f32]) -> f32 {
    values
        .iter()
        .map(|v| v.abs())
        .filter(|v| v.is_finite())
        .fold(MIN_SCALE, f32::max)
}

/// Quantizes one block: its scale and, into `codes`, each value's code (`value / scale`).
pub fn quantize_block(values: &[f32], map: &[f32; 256], codes: &mut [u8]) -> f32 {
    let scale = block_scale(values);
    for (code, &v) in codes.iter_mut().zip(values) {
        *code = quantize(v / scale, map);
    }
    scale
}

/// One 8-bit state tensor: a code per element and a scale per block.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// One code per element.
    pub codes: Vec<u8>,
    /// One scale per block of [`BLOCK`] elements (the last block may be shorter).
    pub scales: Vec<f32>,
    /// Whether the codes index the signed map.
    pub signed: bool,
}

impl Quantized {
    /// The state of `len` elements before the first step: torchao's `OptimState8bit.zeros`,
    /// codes 0 and scales 0 (every value dequantizes to zero).
    pub fn zeros(len: usize, signed: bool) -> Self {
        Quantized {
            codes: vec![0; len],
            scales: vec![0.0; len.div_ceil(BLOCK)],
            signed,
        }
    }

    /// `values` quantized block by block.
    pub fn new(values: &[f32], signed: bool) -> Self {
        let map = dynamic_map(signed);
        let mut codes = vec![0; values.len()];
        let scales = values
            .chunks(BLOCK)
            .zip(codes.chunks_mut(BLOCK))
            .map(|(block, codes)| quantize_block(block, &map, codes))
            .collect();
        Quantized {
            codes,
            scales,
            signed,
        }
    }

    /// The values the codes stand for: `map[code] * scale`, in f32.
    pub fn dequantize(&self) -> Vec<f32> {
        let map = dynamic_map(self.signed);
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| map[c as usize] * self.scales[i / BLOCK])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maps_are_sorted_and_end_at_one() {
        for signed in [true, false] {
            let map = dynamic_map(signed);
            assert!(map.windows(2).all(|w| w[0] < w[1]), "{map:?}");
            assert_eq!(map[255], 1.0);
        }
        assert_eq!(dynamic_map(true)[127], 0.0);
        assert_eq!(dynamic_map(false)[0], 0.0);
    }

    #[test]
    fn a_bucket_holds_at_most_one_boundary() {
        let table = device_table();
        for (t, (signed, negative)) in BUCKET_TABLES.into_iter().enumerate() {
            let map = dynamic_map(signed);
            let bounds = thresholds(&map);
            for bucket in 0..BUCKETS {
                let (low, high) = bucket_range(bucket);
                let (first, last) = if negative { (-high, -low) } else { (low, high) };
                let (first, last) = (quantize(first, &map), quantize(last, &map));
                assert!(
                    last - first <= 1,
                    "table {t}, bucket {bucket}: {first} to {last}"
                );
                let word = table[TABLE_BUCKETS + t * BUCKETS + bucket];
                assert_eq!(word & 0xff, u32::from(first));
                if last > first {
                    // The boundary lies in the bucket: its top 16 bits are the bucket's.
                    let bound = bounds[usize::from(last)];
                    let key = (bound.to_bits() & 0x7fff_ffff) >> BUCKET_SHIFT;
                    assert_eq!(
                        key,
                        FIRST_BUCKET + bucket as u32,
                        "table {t}, bucket {bucket}"
                    );
                    assert!(bucket > 0 && bucket < BUCKETS - 1);
                    assert_eq!(word >> 8, bucket_position(bound));
                } else {
                    assert_eq!(word >> 8, NO_BOUNDARY);
                }
            }
        }
        // Magnitudes below the first bucket's share its codes, above the last one's its.
        assert_eq!(bucket_range(0).0, 0.0);
        assert_eq!(f32::from_bits(FIRST_BUCKET << BUCKET_SHIFT), 2f32.powi(-23));
        assert_eq!(bucket_range(BUCKETS - 1).0, 1.0 + 127.0 / 128.0);
    }

    #[test]
    fn every_entry_is_its_own_code() {
        for signed in [true, false] {
            let map = dynamic_map(signed);
            for (code, &v) in map.iter().enumerate() {
                assert_eq!(quantize(v, &map) as usize, code, "{v}");
            }
        }
    }

    #[test]
    fn dequantized_values_quantize_back_to_their_codes() {
        // Each block's largest magnitude takes code 255 (1.0 exactly), so the scale comes
        // back too; a signed block's most negative value is the exception (code 0 is
        // -0.99297, not -1), so the values here are magnitudes.
        let values: Vec<f32> = (0..4 * BLOCK)
            .map(|i| ((i * 7919) % 1000) as f32 * 10f32.powi(-((i % 7) as i32)))
            .collect();
        for signed in [true, false] {
            let q = Quantized::new(&values, signed);
            assert_eq!(Quantized::new(&q.dequantize(), signed), q);
        }
    }

    #[test]
    fn a_zero_block_keeps_the_smallest_scale_and_nan_never_reaches_it() {
        let q = Quantized::new(&[0.0; BLOCK], true);
        assert_eq!(q.scales, vec![MIN_SCALE]);
        assert!(q.dequantize().iter().all(|&v| v == 0.0));
        let mut block = vec![0.5f32; BLOCK];
        block[3] = f32::NAN;
        block[4] = f32::INFINITY;
        let q = Quantized::new(&block, true);
        assert_eq!(q.scales, vec![0.5]);
        assert_eq!(q.codes[4], 255);
        assert_eq!(q.codes[5], 255);
    }

    #[test]
    fn the_thresholds_count_to_every_code() {
        let next = |x: f32, up: bool| {
            from_order_key(if up {
                order_key(x) + 1
            } else {
                order_key(x) - 1
            })
        };
        for signed in [true, false] {
            let map = dynamic_map(signed);
            let bounds = thresholds(&map);
            let by_count = |x: f32| bounds[1..].iter().filter(|&&t| t <= x).count();
            for code in 1..256 {
                let t = bounds[code];
                assert!(map[code - 1] < t && t <= map[code], "{signed} {code}");
                assert!(quantize(t, &map) as usize >= code, "{signed} {code}");
                assert!(
                    (quantize(next(t, false), &map) as usize) < code,
                    "{signed} {code}"
                );
            }
            for x in map
                .iter()
                .chain(&bounds[1..])
                .flat_map(|&v| [v, next(v, true), next(v, false), -v])
            {
                assert_eq!(by_count(x), quantize(x, &map) as usize, "{signed} {x}");
            }
        }
    }
}
