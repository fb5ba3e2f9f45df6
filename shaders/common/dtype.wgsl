// 16-bit storage types (src/dtype.rs): two elements per u32 word, element 2j in the low half
// of word j. Loads widen exactly; stores round to nearest, ties to even, as PyTorch's
// conversions, with integer operations only (the same bits as the host's, whatever a
// compiler does to floating point). Needs common/control.wgsl (ABS_MASK, INF_BITS).

// Four bfloat16 elements (two words) as f32: the high halves of f32s.
fn bf16_load(w: vec2<u32>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4(w.x << 16u, w.x & 0xffff0000u, w.y << 16u, w.y & 0xffff0000u));
}

// Four f16 elements (two words) as f32. Not `unpack2x16float`: it needs a capability some
// backends lack.
fn f16_load(w: vec2<u32>) -> vec4<f32> {
    let h = vec4(w.x, w.x >> 16u, w.y, w.y >> 16u) & vec4(0xffffu);
    let sign = (h & vec4(0x8000u)) << vec4(16u);
    let e = (h >> vec4(10u)) & vec4(0x1fu);
    let m = h & vec4(0x3ffu);
    // Normal: rebias the exponent (15 -> 127); inf and NaN: the f32 exponent of all ones.
    let normal = ((e + vec4(112u)) << vec4(23u)) | (m << vec4(13u));
    let special = vec4(0x7f800000u) | (m << vec4(13u));
    // Subnormal: m * 2^-24, exact in one multiply (m < 2^10; the product is a normal f32).
    let subnormal = bitcast<vec4<u32>>(vec4<f32>(m) * 5.9604645e-8);
    var bits = select(normal, special, e == vec4(31u));
    bits = select(bits, subnormal, e == vec4(0u));
    return bitcast<vec4<f32>>(sign | bits);
}

// bfloat16 bits of v (in the low 16 bits): nearest even; NaN becomes 0x7fc0
// (c10::detail::round_to_nearest_even).
fn bf16_bits(v: vec4<f32>) -> vec4<u32> {
    let b = bitcast<vec4<u32>>(v);
    let rounded = (b + vec4(0x7fffu) + ((b >> vec4(16u)) & vec4(1u))) >> vec4(16u);
    return select(rounded, vec4(0x7fc0u), (b & vec4(ABS_MASK)) > vec4(INF_BITS));
}

// f16 bits of v (in the low 16 bits): nearest even, inf from 65520 up, NaN as 0x7e00 with its
// sign (c10::Half). Branch-free: both the normal and the subnormal result are computed.
// The subnormal one is a single f32 addition: |v| + 0.5 has its last place at 2^-24, the
// step of f16's subnormals, so the addition rounds |v| to that grid, to nearest even, and
// the result's low bits count the steps (F. Giesen, float_to_half_fast3_rtne). One
// operation: nothing for a compiler's fast math to reassociate; an f32 subnormal flushed to
// 0 rounds to 0 either way.
fn f16_bits(v: vec4<f32>) -> vec4<u32> {
    let b = bitcast<vec4<u32>>(v);
    let sign = (b >> vec4(16u)) & vec4(0x8000u);
    let a = b & vec4(ABS_MASK);
    // Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits; a carry rolls
    // into the exponent.
    let normal = (a - vec4(0x38000000u) + vec4(0xfffu) + ((a >> vec4(13u)) & vec4(1u))) >> vec4(13u);
    let subnormal = bitcast<vec4<u32>>(bitcast<vec4<f32>>(a) + vec4(0.5)) - vec4(0x3f000000u);
    var h = select(normal, subnormal, a < vec4(0x38800000u));
    h = select(h, vec4(0x7c00u), a >= vec4(0x477ff000u));
    h = select(h, vec4(0x7e00u), a > vec4(INF_BITS));
    return sign | h;
}

// Two words holding four 16-bit elements.
fn pack_halves(h: vec4<u32>) -> vec2<u32> {
    return vec2(h.x | (h.y << 16u), h.z | (h.w << 16u));
}

// bfloat16 bits of v rounded stochastically: up with probability (discarded low 16 bits) /
// 2^16, by adding 16 random bits before truncating (torchao's bf16_stochastic_round); NaN
// becomes 0x7fc0. Only the low 16 bits of `random` are used.
fn bf16_bits_stochastic(v: vec4<f32>, random: vec4<u32>) -> vec4<u32> {
    let b = bitcast<vec4<u32>>(v);
    let rounded = (b + (random & vec4(0xffffu))) >> vec4(16u);
    return select(rounded, vec4(0x7fc0u), (b & vec4(ABS_MASK)) > vec4(INF_BITS));
}

// lowbias32 (C. Wellons): a 32-bit integer hash with full avalanche; the counter-based random
// bits of stochastic rounding.
fn mix32(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn mix32_4(x: vec4<u32>) -> vec4<u32> {
    var h = x;
    h ^= h >> vec4(16u);
    h *= vec4(0x7feb352du);
    h ^= h >> vec4(15u);
    h *= vec4(0x846ca68bu);
    h ^= h >> vec4(16u);
    return h;
}
