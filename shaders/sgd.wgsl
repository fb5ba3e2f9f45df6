// SGD with momentum, dampening, Nesterov momentum and L2 weight decay: torch.optim.SGD.
//
//   d_p = maximize ? -g : g;  d_p += weight_decay * p
//   buf = step == 1 ? d_p : momentum * buf + (1 - dampening) * d_p
//   d_p = nesterov ? d_p + momentum * buf : buf
//   p  -= lr * d_p
//
// state0: momentum_buffer (bound only when momentum != 0).

// What the host writes (SgdHyper in src/optim/sgd.rs).
struct Hyper {
    lr: f32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
}

// One parameter group's record: SGD derives nothing from the step count.
struct Group {
    hyper: Hyper,
}

// momentum != 0: keep a momentum buffer.
override MOMENTUM: bool = false;
override NESTEROV: bool = false;
override MAXIMIZE: bool = false;

fn prepare_group(g: u32, step: f32) {
    // SGD derives nothing from the step count.
}

fn sgd_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    momentum_buffer: ptr<function, vec4<f32>>,
    first_step: bool,
    h: Hyper,
) {
    var d_p = l2_grad(grad, *p, h.weight_decay);
    if MOMENTUM {
        // PyTorch starts the buffer as a copy of the first gradient, without dampening.
        let next = h.momentum * *momentum_buffer + h.one_minus_dampening * d_p;
        *momentum_buffer = select(next, d_p, first_step);
        if NESTEROV {
            d_p = d_p + h.momentum * *momentum_buffer;
        } else {
            d_p = *momentum_buffer;
        }
    }
    *p = *p - h.lr * d_p;
}

fn uses_state(slot: u32) -> bool {
    return MOMENTUM;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var momentum_buffer = (*e).state0;
    sgd_math(&p, (*e).grad, &momentum_buffer, c.step == 1u, group.hyper);
    (*e).param = p;
    (*e).state0 = momentum_buffer;
}
