// 8-bit block-quantized states (Precision::with_8bit_states; the host's codec is src/quant.rs,
// torchao's OptimState8bit): a state slot is a code per element, four to a u32 word (element
// 4j + k in byte k of word j), and an f32 scale per block of BLOCK elements from its tensor's
// first. A code stands for qmaps[base + code] * scale, `base` 0 for the signed map (first
// moments, momenta), 256 for the unsigned one (second moments). The generated update
// (src/kernel/elements.rs) runs a block per invocation in two passes: the first finds each
// slot's new scale, the largest finite magnitude of the block's updated values (at least
// MIN_SCALE), the second updates again, the same operations on the same loads, and stores.
// The parameter update uses this step's f32 states; only what is carried to the next step is
// quantized, as in torchao.

const BLOCK: u32 = 256u;
const MIN_SCALE: f32 = 1e-12;
const MAX_FINITE: f32 = 3.40282347e38;

// The four values a word of codes stands for.
fn dequant4(word: u32, scale: f32, base: u32) -> vec4<f32> {
    let c = (vec4(word) >> vec4(0u, 8u, 16u, 24u)) & vec4(0xffu);
    let m = vec4(qmaps[base + c.x], qmaps[base + c.y], qmaps[base + c.z], qmaps[base + c.w]);
    return m * scale;
}

// The largest finite magnitude of four values (0 if none): a NaN or an infinity never reaches
// a scale, so one bad element cannot make its block's 255 others NaN.
fn finite_max4(v: vec4<f32>) -> f32 {
    let a = abs(v);
    let m = select(vec4(0.0), a, a <= vec4(MAX_FINITE));
    return max(max(m.x, m.y), max(m.z, m.w));
}

// torchao's quantize_8bit_with_qmap of four values already divided by their scale: the last
// entry at most x (what its branchless binary search finds, 0 below the map), then up to the
// next entry when x is at least half way to it. A NaN takes code 0, an infinity the map's end.
//
// The search's eight lookups are replaced by a guess from the map's structure and three steps
// that make it exact. The positive entries come in seven bands, band i holding 2^(i + shift)
// values 10^(i - 6) * (0.1 + 0.9 (j + 1/2) / 2^(i + shift)) (shift 0 signed, 1 unsigned; the
// signed map mirrors them below 0). From the band of |x| (log10) and the position in it, the
// guess lies within two below or one above the last entry at most x (a log10 rounded across a
// band's edge lands on the neighbouring band's end entry, which is that entry or next to it);
// starting one below the guess, three steps up (each taken while the next entry is at most x)
// reach it. tests/shaders.rs checks it against the host's search (src/quant.rs) on every
// entry, every midpoint and their neighbours.
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
    var code = vec4<u32>(clamp(guess - 1.0, vec4(0.0), vec4(255.0)));
    for (var k = 0u; k < 3u; k++) {
        let next = min(code + vec4(1u), vec4(255u));
        let n = next + vec4(base);
        let entry = vec4(qmaps[n.x], qmaps[n.y], qmaps[n.z], qmaps[n.w]);
        code = select(code, next, entry <= x);
    }
    let up = min(code + vec4(1u), vec4(255u));
    let d = code + vec4(base);
    let u = up + vec4(base);
    let down = vec4(qmaps[d.x], qmaps[d.y], qmaps[d.z], qmaps[d.w]);
    let upper = vec4(qmaps[u.x], qmaps[u.y], qmaps[u.z], qmaps[u.w]);
    var chosen = select(code, up, x - down >= (upper - down) * 0.5);
    // A NaN (by its bits: compilers may fold x != x) takes code 0.
    let nan = (bitcast<vec4<u32>>(x) & vec4(0x7fffffffu)) > vec4(0x7f800000u);
    chosen = select(chosen, vec4(0u), nan);
    return chosen.x | (chosen.y << 8u) | (chosen.z << 16u) | (chosen.w << 24u);
}
