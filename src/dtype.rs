//! Storage types: how the elements of a parameter, gradient or state buffer are stored. The
//! math is always f32 (PyTorch's `opmath`): a load widens exactly, a store rounds to nearest,
//! ties to even, as PyTorch's conversions (`c10::BFloat16`, `c10::Half`) do.
//!
//! WGSL has no bf16 type, and `f16` needs a device feature: 16-bit buffers are bound as `u32`
//! words, two elements per word (element `2j` in the low half of word `j`, as the bytes lie in
//! memory on a little-endian host), and widened and rounded with integer operations
//! (`shaders/common/dtype.wgsl`), the same bits as the host functions here.

/// The storage type of a buffer's elements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// IEEE binary32, 4 bytes.
    #[default]
    F32,
    /// IEEE binary16 (`torch.float16`), 2 bytes: 11 significant bits, largest finite 65504.
    F16,
    /// bfloat16 (`torch.bfloat16`), 2 bytes: the high half of an f32, 8 significant bits.
    BF16,
}

impl Dtype {
    /// Every storage type.
    pub const ALL: [Dtype; 3] = [Dtype::F32, Dtype::F16, Dtype::BF16];

    /// Bytes per element.
    pub const fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
        }
    }

    /// Whether elements are 16-bit (packed two per 32-bit word on the device).
    pub const fn is_16bit(self) -> bool {
        !matches!(self, Dtype::F32)
    }

    /// The name PyTorch gives it after `torch.`: `float32`, `float16`, `bfloat16`.
    pub const fn torch_name(self) -> &'static str {
        match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::BF16 => "bfloat16",
        }
    }

    /// The value a store of `x` leaves: `x` rounded to this type (nearest, ties to even) and
    /// widened back. Exact for f32.
    pub fn round(self, x: f32) -> f32 {
        match self {
            Dtype::F32 => x,
            Dtype::F16 => f16_to_f32(f16_bits(x)),
            Dtype::BF16 => bf16_to_f32(bf16_bits(x)),
        }
    }

    /// `values` rounded to this type, as the device stores them (little-endian bytes).
    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            Dtype::F32 => bytemuck::cast_slice(values).to_vec(),
            Dtype::F16 => values
                .iter()
                .flat_map(|&x| f16_bits(x).to_le_bytes())
                .collect(),
            Dtype::BF16 => values
                .iter()
                .flat_map(|&x| bf16_bits(x).to_le_bytes())
                .collect(),
        }
    }

    /// The elements of `bytes` (whole elements only; a trailing partial one is ignored),
    /// widened to f32 exactly.
    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 | Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|b| {
                    let bits = u16::from_le_bytes([b[0], b[1]]);
                    match self {
                        Dtype::F16 => f16_to_f32(bits),
                        _ => bf16_to_f32(bits),
                    }
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
        })
    }
}

const ABS_MASK: u32 = 0x7fff_ffff;
const INF_BITS: u32 = 0x7f80_0000;

/// `x` rounded to bfloat16 bits, nearest with ties to even; a NaN becomes the quiet NaN
/// 0x7FC0 (`c10::detail::round_to_nearest_even`).
pub fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    if b & ABS_MASK > INF_BITS {
        return 0x7fc0;
    }
    (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bfloat16 bits (exact).
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// `x` rounded to IEEE binary16 bits, nearest with ties to even, overflowing to inf past
/// 65504 (65520 and above); a NaN becomes 0x7E00 with its sign (`c10::Half`,
/// `fp16_ieee_from_fp32_value`).
pub fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & ABS_MASK;
    let h = if a > INF_BITS {
        0x7e00
    } else if a >= 0x477f_f000 {
        0x7c00
    } else if a >= 0x3880_0000 {
        // Normal: rebias the exponent (127 -> 15), round the 13 dropped bits; a carry rolls
        // into the exponent.
        (a - 0x3800_0000 + 0xfff + ((a >> 13) & 1)) >> 13
    } else {
        // Subnormal or zero: the significand with its implicit bit, shifted right by
        // 126 - exponent (at least 14), rounded.
        let e = a >> 23;
        let m = (a & 0x7f_ffff) | 0x80_0000;
        let shift = (126 - e.min(126)).min(31);
        let q = m >> shift;
        let rem = m & ((1 << shift) - 1);
        let half = 1 << (shift - 1);
        q + u32::from(rem > half || (rem == half && q & 1 == 1))
    };
    sign | h as u16
}

/// The f32 value of binary16 bits (exact).
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// `x` rounded to bfloat16 bits stochastically: up with probability (discarded low 16 bits) /
/// 2^16, by adding the low 16 bits of `random` before truncating (torchao's
/// `_bf16_stochastic_round`, llm.c); a NaN becomes 0x7FC0. Unbiased: the mean of many roundings
/// is `x`.
pub fn bf16_bits_stochastic(x: f32, random: u32) -> u16 {
    let b = x.to_bits();
    if b & ABS_MASK > INF_BITS {
        return 0x7fc0;
    }
    (b.wrapping_add(random & 0xffff) >> 16) as u16
}

/// lowbias32 (C. Wellons): a 32-bit integer hash with full avalanche.
pub fn mix32(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The random bits stochastic rounding uses for element `index` of tensor `tensor` (its
/// position in the optimizer's list) at step `step` (counted from 1) with `seed`: a
/// counter-based hash, the same on the device (`shaders/common/dtype.wgsl`) whatever the
/// layout, so that runs are reproducible.
pub fn stochastic_bits(seed: u64, step: u32, tensor: u32, index: u32) -> u32 {
    let key = mix32(seed as u32 ^ mix32((seed >> 32) as u32));
    let key = mix32(mix32(key ^ step) ^ tensor);
    mix32(key ^ index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> impl Iterator<Item = f32> {
        // Every exponent, with mantissas that hit ties, near-ties and carries.
        let mantissas = [
            0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x7fff, 0x8000, 0x8001, 0x18000,
        ];
        (0..=255_u32).flat_map(move |e| {
            mantissas.into_iter().flat_map(move |m| {
                let bits = (e << 23) | m | (m << 10);
                [f32::from_bits(bits), -f32::from_bits(bits)]
            })
        })
    }

    #[test]
    fn rounding_matches_the_half_crate_for_every_non_nan() {
        // `half` rounds to nearest even as well; it differs only in the NaN it gives.
        for x in samples().filter(|x| !x.is_nan()) {
            assert_eq!(
                f16_bits(x),
                half::f16::from_f32(x).to_bits(),
                "f16 of {x:e}"
            );
            assert_eq!(
                bf16_bits(x),
                half::bf16::from_f32(x).to_bits(),
                "bf16 of {x:e}"
            );
        }
    }

    #[test]
    fn nan_and_overflow_as_pytorch() {
        assert_eq!(bf16_bits(f32::NAN), 0x7fc0);
        assert_eq!(f16_bits(f32::NAN), 0x7e00);
        assert_eq!(f16_bits(-f32::NAN), 0xfe00);
        assert_eq!(f16_to_f32(f16_bits(65504.0)), 65504.0);
        assert_eq!(f16_to_f32(f16_bits(65519.0)), 65504.0);
        assert_eq!(f16_to_f32(f16_bits(65520.0)), f32::INFINITY);
        assert_eq!(bf16_to_f32(bf16_bits(f32::MAX)), f32::INFINITY);
    }

    #[test]
    fn encode_decode_round_trip() {
        let values = [1.0_f32, -2.5, 1e-7, 3.0e4, 0.1];
        for dtype in Dtype::ALL {
            let bytes = dtype.encode(&values);
            assert_eq!(bytes.len() as u64, dtype.size() * values.len() as u64);
            let back = dtype.decode(&bytes);
            let rounded: Vec<f32> = values.iter().map(|&x| dtype.round(x)).collect();
            assert_eq!(back, rounded, "{dtype}");
        }
    }
}
