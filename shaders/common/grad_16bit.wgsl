// The gradients of one chunk of the gradient-norm reduction (shaders/clip.wgsl), in a 16-bit
// type (GRAD_BF16: bf16, else f16), two per word, widened to f32 exactly. Needs
// common/dtype.wgsl.

override GRAD_BF16: bool = true;

@group(0) @binding(GRAD_BINDING) var<storage, read> grad: array<u32>;
// The same chunk read four elements (two words) at a time: its first 4 * floor(n / 4).
@group(0) @binding(GRAD4_BINDING) var<storage, read> grad4: array<vec2<u32>>;

fn widen(words: vec2<u32>) -> vec4<f32> {
    if GRAD_BF16 {
        return bf16_load(words);
    }
    return f16_load(words);
}

// Elements 4i to 4i + 3.
fn grad_vec4(i: u32) -> vec4<f32> {
    return widen(grad4[i]);
}

fn grad_element(e: u32) -> f32 {
    let half = (grad[e / 2u] >> (16u * (e % 2u))) & 0xffffu;
    return widen(vec2(half, 0u)).x;
}
