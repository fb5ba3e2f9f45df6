// 8-bit block-quantized states (Precision::with_8bit_states; the host's codec is src/quant.rs,
// torchao's OptimState8bit): a state slot is a code per element, four to a u32 word (element
// 4j + k in byte k of word j, from `codes_base(slot)` of `codes`), and an f32 scale per block
// of BLOCK elements from its tensor's first (from `scales_base(slot)` of `scales`). A code
// stands for map_entry(base + code) * scale, `base` 0 for the signed map (first moments,
// momenta), 256 for the unsigned one (second moments). `qmaps` is the host's
// `quant::device_table`: the two maps, then each map's windows of decision boundaries. The
// generated update (src/kernel/elements/) finds each slot's new scale, the largest finite
// magnitude of the block's updated values (at least MIN_SCALE), before it stores any code of
// the block: with lanes sharing a block in one pass (`step_block_rounds`), or with a block per
// invocation in two (`step_block`).
// The parameter update uses this step's f32 states; only what is carried to the next step is
// quantized, as in torchao.

const BLOCK: u32 = 256u;
const MIN_SCALE: f32 = 1e-12;
const MAX_FINITE: f32 = 3.40282347e38;
// Where the windows of boundaries start in `qmaps`, in vec4s (after the two maps' 512 entries).
const WINDOWS: u32 = 128u;

// Entry `i` of the two maps (the signed map's 256, then the unsigned one's).
fn map_entry(i: u32) -> f32 {
    return qmaps[i >> 2u][i & 3u];
}

// The four values a word of codes stands for.
fn dequant4(word: u32, scale: f32, base: u32) -> vec4<f32> {
    let c = (vec4(word) >> vec4(0u, 8u, 16u, 24u)) & vec4(0xffu);
    let i = c + vec4(base);
    let m = vec4(map_entry(i.x), map_entry(i.y), map_entry(i.z), map_entry(i.w));
    return m * scale;
}

// The largest finite magnitude of four values (0 if none): a NaN or an infinity never reaches
// a scale, so one bad element cannot make its block's 255 others NaN.
fn finite_max4(v: vec4<f32>) -> f32 {
    let a = abs(v);
    let m = select(vec4(0.0), a, a <= vec4(MAX_FINITE));
    return max(max(m.x, m.y), max(m.z, m.w));
}

// How many of the four boundaries `t` are at most `x`.
fn count_at_most(t: vec4<f32>, x: f32) -> u32 {
    let below = vec4<u32>(t <= vec4(x));
    return below.x + below.y + below.z + below.w;
}

// torchao's quantize_8bit_with_qmap of four values already divided by their scale: the last
// entry at most x (what its branchless binary search finds, 0 below the map), then up to the
// next entry when x is at least half way to it. A NaN takes code 0, an infinity the map's end.
//
// The search's eight lookups and its rounding step are replaced by a guess from the map's
// structure and one 16-byte load. The positive entries come in seven bands, band i holding
// 2^(i + shift) values 10^(i - 6) * (0.1 + 0.9 (j + 1/2) / 2^(i + shift)) (shift 0 signed, 1
// unsigned; the signed map mirrors them below 0). From the band of |x| (log10) and the
// position in it, the guess lies within two below or one above the last entry at most x (a
// log10 rounded across a band's edge lands on the neighbouring band's end entry, which is that
// entry or next to it), so the code, that entry or the next, lies in s..=s + 4 with s one below
// the guess. The code is then s plus how many of the decision boundaries s + 1 to s + 4 are at
// most x (the host's `quant::thresholds`: the code of x is the number of boundaries at most x),
// one window of `qmaps`. tests/quant8.rs checks it against the host's search on every entry,
// boundary and midpoint, their neighbours and the band edges.
fn quantize4(x: vec4<f32>, base: u32) -> u32 {
    let signed = base == 0u;
    let shift = select(1.0, 0.0, signed);
    let y = abs(x);
    // The band of y: y in [10^(i - 7), 10^(i - 6)), clamped to the seven bands.
    let band = clamp(floor(log2(y) * 0.30103) + 7.0, vec4(0.0), vec4(6.0));
    let per_band = exp2(band + shift);
    let t = y / exp2(band * 3.32192809) * 1e6;
    // The index among the positive entries of the last one at most y (-1: none).
    let position = clamp((t - 0.1) * per_band / 0.9 - 0.5, vec4(-2.0), vec4(300.0));
    let count = select(254.0, 127.0, signed);
    let m = clamp(exp2(shift) * (exp2(band) - 1.0) + floor(position), vec4(-1.0), vec4(count - 1.0));
    // Signed: the positive entries from code 128, their negations down from 126. Unsigned:
    // from code 1, and nothing below 0 (code 0).
    let unsigned_guess = select(vec4(0.0), 1.0 + m, x >= vec4(0.0));
    let guess = select(unsigned_guess, select(125.0 - m, 128.0 + m, x >= vec4(0.0)), signed);
    // s + 4 stays within the map: a guess past 252 leaves the code in 251..=255 still.
    let s = vec4<u32>(clamp(guess - 1.0, vec4(0.0), vec4(251.0)));
    let w = s + vec4(WINDOWS + base);
    var code = s + vec4(
        count_at_most(qmaps[w.x], x.x),
        count_at_most(qmaps[w.y], x.y),
        count_at_most(qmaps[w.z], x.z),
        count_at_most(qmaps[w.w], x.w),
    );
    // A NaN (by its bits: compilers may fold x != x) takes code 0.
    let nan = (bitcast<vec4<u32>>(x) & vec4(0x7fffffffu)) > vec4(0x7f800000u);
    code = select(code, vec4(0u), nan);
    return code.x | (code.y << 8u) | (code.z << 16u) | (code.w << 24u);
}
