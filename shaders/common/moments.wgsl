// The first half of the Adam family's update, shared by adam.wgsl, nadam.wgsl and radam.wgsl
// (mirrored by `adam_moments` in src/reference/common.rs; adopt.wgsl shares the first part,
// `decayed_grad`): the sign for maximize, the weight
// decay (decoupled, AdamW's: p *= 1 - lr * weight_decay; else the L2 term, Adam's:
// g += weight_decay * p), then both moments:
//
//   exp_avg    = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//
// Returns the gradient the moments saw. The including file declares the MAXIMIZE and
// DECOUPLED_WEIGHT_DECAY overrides. Needs common/l2.wgsl.

// The hyperparameters the moments read, from the kernel's own Hyper.
struct Moments {
    weight_decay: f32,
    // 1 - lr * weight_decay.
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
}

// The sign for maximize and the weight decay: decoupled, `p` is decayed in place; else the L2
// term is added to the gradient returned.
fn decayed_grad(p: ptr<function, vec4<f32>>, grad: vec4<f32>, m: Moments) -> vec4<f32> {
    if DECOUPLED_WEIGHT_DECAY {
        *p = *p * m.decay;
        return select(grad, -grad, MAXIMIZE);
    }
    return l2_grad(grad, *p, m.weight_decay);
}

fn adam_moments(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_avg_sq: ptr<function, vec4<f32>>,
    m: Moments,
) -> vec4<f32> {
    let g = decayed_grad(p, grad, m);
    *exp_avg = lerp(*exp_avg, g, m.one_minus_beta1);
    *exp_avg_sq = m.beta2 * *exp_avg_sq + m.one_minus_beta2 * g * g;
    return g;
}
