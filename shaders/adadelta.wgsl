// Adadelta (Zeiler 2012, "ADADELTA: An Adaptive Learning Rate Method"), as torch.optim.Adadelta
// and optax.adadelta.
//
//   g = maximize ? -g : g
//   g += weight_decay * p
//   square_avg = rho * square_avg + (1 - rho) * g * g
//   delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g
//   acc_delta = rho * acc_delta + (1 - rho) * delta * delta
//   p -= lr * delta
//
// state0: square_avg, state1: acc_delta.

// What the host writes (AdadeltaHyper in src/optim/adadelta.rs).
struct Hyper {
    lr: f32,
    rho: f32,
    one_minus_rho: f32,
    eps: f32,
    weight_decay: f32,
}

// One parameter group's record: Adadelta derives nothing from the step count.
struct Group {
    hyper: Hyper,
}

override MAXIMIZE: bool = false;

fn prepare_group(g: u32, step: f32) {
    // Adadelta derives nothing from the step count.
}

fn adadelta_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    square_avg: ptr<function, vec4<f32>>,
    acc_delta: ptr<function, vec4<f32>>,
    h: Hyper,
) {
    let g = l2_grad(grad, *p, h.weight_decay);
    *square_avg = h.rho * *square_avg + h.one_minus_rho * g * g;
    let square_avg_root = sqrt(*square_avg + h.eps);
    let delta = sqrt(*acc_delta + h.eps) / square_avg_root * g;
    *acc_delta = h.rho * *acc_delta + h.one_minus_rho * delta * delta;
    *p = *p - h.lr * delta;
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var square_avg = (*e).state0;
    var acc_delta = (*e).state1;
    adadelta_math(&p, (*e).grad, &square_avg, &acc_delta, group.hyper);
    (*e).param = p;
    (*e).state0 = square_avg;
    (*e).state1 = acc_delta;
}
