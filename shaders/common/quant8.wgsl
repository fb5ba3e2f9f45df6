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

// torchao's quantize_8bit_with_qmap of four values already divided by their scale: the
// branchless binary search for the last entry at most x, then up to the next one when x is at
// least half way to it. A NaN takes code 0, an infinity the map's end.
fn quantize4(x: vec4<f32>, base: u32) -> u32 {
    var code = vec4(0u);
    for (var step = 128u; step > 0u; step = step >> 1u) {
        let probe = code + vec4(step) + vec4(base);
        let entry = vec4(qmaps[probe.x], qmaps[probe.y], qmaps[probe.z], qmaps[probe.w]);
        code += select(vec4(0u), vec4(step), x >= entry);
    }
    let up = min(code + vec4(1u), vec4(255u));
    let d = code + vec4(base);
    let u = up + vec4(base);
    let down = vec4(qmaps[d.x], qmaps[d.y], qmaps[d.z], qmaps[d.w]);
    let upper = vec4(qmaps[u.x], qmaps[u.y], qmaps[u.z], qmaps[u.w]);
    let chosen = select(code, up, x - down >= (upper - down) * 0.5);
    return chosen.x | (chosen.y << 8u) | (chosen.z << 16u) | (chosen.w << 24u);
}
