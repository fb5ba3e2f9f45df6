// LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
// minutes"), as optax.lamb: Adam's direction plus decoupled weight decay, scaled per tensor
// by the trust ratio ||p|| / ||u|| (common/trust.wgsl).
//
//   exp_avg    = (1 - beta1) * g + beta1 * exp_avg
//   exp_avg_sq = (1 - beta2) * g * g + beta2 * exp_avg_sq
//   u  = (exp_avg / (1 - beta1^t)) / (sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps)
//        + weight_decay * p
//   p -= lr * (u * ratio),  ratio = ||p|| / ||u|| per tensor (1 where either is 0)
//
// state0: exp_avg, state1: exp_avg_sq. Needs common/math.wgsl and common/trust.wgsl.

// What the host writes (LambHyper in src/optim/lamb.rs).
struct Hyper {
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    ln_beta1: f32,
    ln_beta2: f32,
    eps: f32,
    eps_root: f32,
    weight_decay: f32,
    trust_coefficient: f32,
    trust_eps: f32,
    // 1: scale by the trust ratio; 0: the ratio is 1 (a group left out of the adaptation).
    trust_on: f32,
}

// What `prepare_group` derives each step (LambDerived): 1 - beta1^t and 1 - beta2^t.
struct Derived {
    bias_correction1: f32,
    bias_correction2: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
}

fn prepare_group(g: u32, step: f32) {
    let h = groups[g].hyper;
    groups[g].derived.bias_correction1 = bias_correction(h.ln_beta1, step);
    groups[g].derived.bias_correction2 = bias_correction(h.ln_beta2, step);
}

// The direction u from the moments after this step's update.
fn lamb_direction(p: vec4<f32>, exp_avg: vec4<f32>, exp_avg_sq: vec4<f32>, h: Hyper, d: Derived) -> vec4<f32> {
    let m_hat = exp_avg / d.bias_correction1;
    let v_hat = exp_avg_sq / d.bias_correction2;
    return m_hat / (sqrt(v_hat + h.eps_root) + h.eps) + h.weight_decay * p;
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

// The moments change in the first pass only.
fn writes_state(slot: u32) -> bool {
    return !TRUST_APPLY;
}

// First pass: the moments, and the direction in `grad` for the norms. Second: the update from
// the stored moments.
fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    let h = group.hyper;
    let d = group.derived;
    if TRUST_APPLY {
        let u = lamb_direction((*e).param, (*e).state0, (*e).state1, h, d);
        (*e).param = (*e).param - h.lr * (u * trust_ratio());
        return;
    }
    let g = (*e).grad;
    let exp_avg = h.one_minus_beta1 * g + h.beta1 * (*e).state0;
    let exp_avg_sq = h.one_minus_beta2 * (g * g) + h.beta2 * (*e).state1;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_avg_sq;
    (*e).grad = lamb_direction((*e).param, exp_avg, exp_avg_sq, h, d);
}
