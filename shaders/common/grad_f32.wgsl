// The gradients of one chunk of the gradient-norm reduction (shaders/clip.wgsl), in f32.

@group(0) @binding(GRAD_BINDING) var<storage, read> grad: array<f32>;
// The same chunk read as vec4s: its first 4 * floor(n / 4) elements.
@group(0) @binding(GRAD4_BINDING) var<storage, read> grad4: array<vec4<f32>>;

// Elements 4i to 4i + 3.
fn grad_vec4(i: u32) -> vec4<f32> {
    return grad4[i];
}

fn grad_element(e: u32) -> f32 {
    return grad[e];
}
