// LARS (You, Gitman & Ginsburg 2017, "Large Batch Training of Convolutional Networks"), as
// optax.lars: weight decay added to the gradient, scaled per tensor by the trust ratio
// trust_coefficient * ||p|| / (||u|| + trust_eps) (common/trust.wgsl), then Optax's trace
// (momentum over the scaled, negated update).
//
//   u  = g + weight_decay * p
//   s  = -lr * (u * ratio)
//   momentum_buffer = s + momentum * momentum_buffer
//   p += nesterov ? s + momentum * momentum_buffer : momentum_buffer
//
// state0: momentum_buffer (Optax's trace). Needs common/trust.wgsl.

// What the host writes (LarsHyper in src/optim/lars.rs).
struct Hyper {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    trust_coefficient: f32,
    trust_eps: f32,
    // 1: scale by the trust ratio; 0: the ratio is 1 (Optax's trust_ratio_mask False).
    trust_on: f32,
}

// One parameter group's record: LARS derives nothing from the step count.
struct Group {
    hyper: Hyper,
}

override NESTEROV: bool = false;

fn prepare_group(g: u32, step: f32) {
    // LARS derives nothing from the step count.
}

fn uses_state(slot: u32) -> bool {
    return true;
}

// The momentum changes in the second pass only.
fn writes_state(slot: u32) -> bool {
    return TRUST_APPLY;
}

// First pass: the direction in `grad` for the norms. Second: the momentum and the update.
fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    let h = group.hyper;
    let u = (*e).grad + h.weight_decay * (*e).param;
    if !TRUST_APPLY {
        (*e).grad = u;
        return;
    }
    let s = -h.lr * (u * trust_ratio());
    let trace = s + h.momentum * (*e).state0;
    (*e).state0 = trace;
    if NESTEROV {
        (*e).param = (*e).param + (s + h.momentum * trace);
    } else {
        (*e).param = (*e).param + trace;
    }
}
