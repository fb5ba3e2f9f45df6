// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as lion-pytorch
// and optax.lion.
//
//   p *= 1 - lr * weight_decay
//   p -= lr * sign(beta1 * exp_avg + (1 - beta1) * g)
//   exp_avg = beta2 * exp_avg + (1 - beta2) * g
//
// state0: exp_avg.

// What the host writes (LionHyper in src/optim/lion.rs).
struct Hyper {
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    weight_decay: f32,
    // 1 - lr * weight_decay
    decay: f32,
}

// One parameter group's record: Lion derives nothing from the step count.
struct Group {
    hyper: Hyper,
}

override MAXIMIZE: bool = false;

fn prepare_group(g: u32, step: f32) {
    // Lion derives nothing from the step count.
}

fn lion_math(p: ptr<function, vec4<f32>>, grad: vec4<f32>, exp_avg: ptr<function, vec4<f32>>, h: Hyper) {
    let g = select(grad, -grad, MAXIMIZE);
    *p = *p * h.decay;
    let update = sign(h.beta1 * *exp_avg + h.one_minus_beta1 * g);
    *p = *p - h.lr * update;
    *exp_avg = h.beta2 * *exp_avg + h.one_minus_beta2 * g;
}

fn uses_state(slot: u32) -> bool {
    return true;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    lion_math(&p, (*e).grad, &exp_avg, group.hyper);
    (*e).param = p;
    (*e).state0 = exp_avg;
}
