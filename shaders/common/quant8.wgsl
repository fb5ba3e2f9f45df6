// 8-bit block-quantized states (Precision::with_8bit_states; the host's codec is src/quant.rs,
// torchao's OptimState8bit): a state slot is a code per element, four to a u32 word (element
// 4j + k in byte k of word j, from `codes_base(slot)` of `codes`), and an f32 scale per block
// of BLOCK elements from its tensor's first (from `scales_base(slot)` of `scales`). A code
// stands for map_entry(base + code) * scale, `base` 0 for the signed map (first moments,
// momenta), 256 for the unsigned one (second moments). `qmaps` is the host's
// `quant::device_table`, 32-bit words: the two maps and the words of buckets of magnitudes
// (a uniform buffer or a storage one: Tuning::uniform_maps). The
// generated update (src/kernel/elements/) finds each slot's new scale, the largest finite
// magnitude of the block's updated values (at least MIN_SCALE), before it stores any code of
// the block: with lanes sharing a block in one pass (`step_block_rounds`), or with a block per
// invocation in two (`step_block`).
// The parameter update uses this step's f32 states; only what is carried to the next step is
// quantized, as in torchao.

const BLOCK: u32 = 256u;
const MIN_SCALE: f32 = 1e-12;
const MAX_FINITE: f32 = 3.40282347e38;
// Where `qmaps` (32-bit words; src/quant.rs, `device_table`) holds the buckets' words, how
// many buckets each of its three bucket tables has, and how a magnitude's bits give its
// bucket: the host's constants of the same names.
const TABLE_BUCKETS: u32 = 512u;
const BUCKETS: u32 = 3072u;
const BUCKET_SHIFT: u32 = 16u;
const FIRST_BUCKET: u32 = 13312u;

// Word `i` of the table.
fn table_word(i: u32) -> u32 {
    return qmaps[i >> 2u][i & 3u];
}

// Entry `i` of the two maps (the signed map's 256, then the unsigned one's).
fn map_entry(i: u32) -> f32 {
    return bitcast<f32>(table_word(i));
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

// torchao's quantize_8bit_with_qmap of four values already divided by their scale (the
// entry nearest x, what its branchless binary search and rounding step find): a NaN takes
// code 0, an infinity the map's end.
//
// Without the search's eight lookups, and without float arithmetic: the top bits of |x| (its
// exponent and 7 bits of significand) name a bucket of magnitudes narrower than any gap
// between two of the map's decision boundaries (the host's `quant::thresholds`), whose word
// in the table (the signed map's positive or negative values, or the unsigned map's) holds
// the code of the bucket's smallest value and where in the bucket the next code's boundary
// lies, if it does (`quant::bucket_position`: the magnitude's low 16 bits, reversed for
// negative values); x takes the next code where it lies there or past it. One lookup.
// tests/quant8.rs checks it against the host's search on every entry, boundary and
// midpoint, their neighbours, the band edges and the buckets' edges.
fn quantize4(x: vec4<f32>, base: u32) -> u32 {
    let signed = base == 0u;
    let bits = bitcast<vec4<u32>>(x);
    let magnitude = bits & vec4(0x7fffffffu);
    let negative = (bits >> vec4(31u)) == vec4(1u);
    let last = FIRST_BUCKET + BUCKETS - 1u;
    let key = clamp(magnitude >> vec4(BUCKET_SHIFT), vec4(FIRST_BUCKET), vec4(last));
    // Tables 0 and 1: the signed map's positive and negative values; 2: the unsigned map's.
    let table = select(vec4(2u), vec4<u32>(negative), vec4(signed));
    let b = vec4(TABLE_BUCKETS) + table * BUCKETS + key - vec4(FIRST_BUCKET);
    let word = vec4(table_word(b.x), table_word(b.y), table_word(b.z), table_word(b.w));
    let low = magnitude & vec4(0xffffu);
    let position = select(low, vec4(0xffffu) - low, negative);
    var code = (word & vec4(0xffu)) + vec4<u32>(position >= (word >> vec4(8u)));
    // A NaN takes code 0, and so does a negative value on the unsigned map.
    let zero = (magnitude > vec4(0x7f800000u)) | (vec4(!signed) & negative);
    code = select(code, vec4(0u), zero);
    return code.x | (code.y << 8u) | (code.z << 16u) | (code.w << 24u);
}
