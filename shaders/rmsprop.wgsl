// RMSprop (Hinton 2012; centered: Graves 2013): torch.optim.RMSprop.
//
//   g = maximize ? -g : g;  g += weight_decay * p
//   square_avg = alpha * square_avg + (1 - alpha) * g * g
//   centered:  grad_avg = lerp(grad_avg, g, 1 - alpha);  avg = sqrt(square_avg - grad_avg^2) + eps
//   otherwise: avg = sqrt(square_avg) + eps
//   (eps_in_sqrt, Optax's form: sqrt(square_avg - grad_avg^2 + eps), sqrt(square_avg + eps))
//   momentum > 0: buf = momentum * buf + g / avg;  p -= lr * buf
//   otherwise:    p -= lr * g / avg
//
// state0: square_avg, state1: momentum_buffer (momentum > 0), state2: grad_avg (centered).

struct Hyper {
    lr: f32,
    alpha: f32,
    one_minus_alpha: f32,
    eps: f32,
    weight_decay: f32,
    momentum: f32,
}

@group(0) @binding(1) var<storage, read_write> hyper: array<Hyper>;

override CENTERED: bool = false;
// momentum > 0: keep a momentum buffer.
override MOMENTUM: bool = false;
override MAXIMIZE: bool = false;
// Optax's form: eps inside the square root.
override EPS_IN_SQRT: bool = false;

fn prepare_group(g: u32, step: f32) {
    // RMSprop derives nothing from the step count.
}

fn rmsprop_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    square_avg: ptr<function, vec4<f32>>,
    momentum_buffer: ptr<function, vec4<f32>>,
    grad_avg: ptr<function, vec4<f32>>,
    h: Hyper,
) {
    var g = select(grad, -grad, MAXIMIZE);
    g = select(g, g + h.weight_decay * *p, h.weight_decay != 0.0);
    *square_avg = h.alpha * *square_avg + h.one_minus_alpha * g * g;
    var v = *square_avg;
    if CENTERED {
        *grad_avg = lerp(*grad_avg, g, h.one_minus_alpha);
        v = *square_avg - *grad_avg * *grad_avg;
    }
    let avg = select(sqrt(v) + h.eps, sqrt(v + h.eps), EPS_IN_SQRT);
    if MOMENTUM {
        *momentum_buffer = h.momentum * *momentum_buffer + g / avg;
        *p = *p - h.lr * *momentum_buffer;
    } else {
        *p = *p - h.lr * (g / avg);
    }
}

fn uses_state(slot: u32) -> bool {
    return slot == 0u || (slot == 1u && MOMENTUM) || (slot == 2u && CENTERED);
}

fn step_math(e: ptr<function, Elements>, h: Hyper, c: Control) {
    var p = (*e).param;
    var square_avg = (*e).state0;
    var momentum_buffer = (*e).state1;
    var grad_avg = (*e).state2;
    rmsprop_math(&p, (*e).grad, &square_avg, &momentum_buffer, &grad_avg, h);
    (*e).param = p;
    (*e).state0 = square_avg;
    (*e).state1 = momentum_buffer;
    (*e).state2 = grad_avg;
}
