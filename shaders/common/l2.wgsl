// The gradient of the kernels with an L2 weight decay (PyTorch's `weight_decay` of SGD,
// Adagrad, RMSprop, Adamax, Adadelta and Adam): the sign for maximize, then
// g += weight_decay * p. Mirrored by `l2_grad` in src/reference/common.rs. The including file
// declares the MAXIMIZE override.
fn l2_grad(grad: vec4<f32>, p: vec4<f32>, weight_decay: f32) -> vec4<f32> {
    let g = select(grad, -grad, MAXIMIZE);
    return select(g, g + weight_decay * p, weight_decay != 0.0);
}
