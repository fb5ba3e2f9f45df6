// RMSprop (Hinton 2012; centered: Graves 2013): torch.optim.RMSprop.
//
//   g = maximize ? -g : g;  g += weight_decay * p
//   square_avg = alpha * square_avg + (1 - alpha) * g * g
//   centered:  grad_avg = lerp(grad_avg, g, 1 - alpha);  avg = sqrt(square_avg - grad_avg^2) + eps
//   otherwise: avg = sqrt(square_avg) + eps
//   (eps_in_sqrt, Optax's form: sqrt(square_avg - grad_avg^2 + eps), sqrt(square_avg + eps))
//   (bias_correction, Optax's: square_avg and grad_avg above divided by 1 - alpha^t)
//   momentum > 0: buf = momentum * buf + g / avg;  p -= lr * buf
//   otherwise:    p -= lr * g / avg
//
// state0: square_avg, state1: momentum_buffer (momentum > 0), state2: grad_avg (centered).

// What the host writes (RmsPropHyper in src/optim/rmsprop.rs).
struct Hyper {
    lr: f32,
    alpha: f32,
    one_minus_alpha: f32,
    eps: f32,
    weight_decay: f32,
    momentum: f32,
    ln_alpha: f32,
}

// What `prepare_group` derives each step (RmsPropDerived).
struct Derived {
    // 1 - alpha^step (BIAS_CORRECTION; 0 otherwise).
    bias_correction: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
}

override CENTERED: bool = false;
// momentum > 0: keep a momentum buffer.
override MOMENTUM: bool = false;
override MAXIMIZE: bool = false;
// Optax's form: eps inside the square root.
override EPS_IN_SQRT: bool = false;
// Optax's bias_correction: both averages divided by 1 - alpha^step.
override BIAS_CORRECTION: bool = false;

fn prepare_group(g: u32, step: f32) {
    if BIAS_CORRECTION {
        groups[g].derived.bias_correction = bias_correction(groups[g].hyper.ln_alpha, step);
    }
}

// square_avg - grad_avg^2 with the value of PyTorch's `addcmul(square_avg, grad_avg, grad_avg,
// value=-1)`, one fused multiply-add. Gradients near 1e20 overflow square_avg to inf first;
// when grad_avg^2 overflows too, the fused form is still inf (inf minus an exact finite
// product), where inf - inf would be NaN and lose the parameter. WGSL's `fma` may round its
// product (lavapipe's does), so the case is selected explicitly (on bits: compilers may
// assume finite math); elsewhere the two forms differ by the product's rounding alone.
fn centered_variance(square_avg: vec4<f32>, grad_avg: vec4<f32>) -> vec4<f32> {
    let v = square_avg - grad_avg * grad_avg;
    let square_avg_inf = bitcast<vec4<u32>>(square_avg) == vec4(INF_BITS);
    let grad_avg_finite = (bitcast<vec4<u32>>(grad_avg) & vec4(ABS_MASK)) < vec4(INF_BITS);
    return select(v, square_avg, square_avg_inf & grad_avg_finite);
}

fn rmsprop_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    square_avg: ptr<function, vec4<f32>>,
    momentum_buffer: ptr<function, vec4<f32>>,
    grad_avg: ptr<function, vec4<f32>>,
    h: Hyper,
    d: Derived,
) {
    let g = l2_grad(grad, *p, h.weight_decay);
    *square_avg = h.alpha * *square_avg + h.one_minus_alpha * g * g;
    var v = *square_avg;
    if BIAS_CORRECTION {
        v = v / d.bias_correction;
    }
    if CENTERED {
        *grad_avg = lerp(*grad_avg, g, h.one_minus_alpha);
        var m = *grad_avg;
        if BIAS_CORRECTION {
            m = m / d.bias_correction;
        }
        v = centered_variance(v, m);
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

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var square_avg = (*e).state0;
    var momentum_buffer = (*e).state1;
    var grad_avg = (*e).state2;
    rmsprop_math(&p, (*e).grad, &square_avg, &momentum_buffer, &grad_avg, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = square_avg;
    (*e).state1 = momentum_buffer;
    (*e).state2 = grad_avg;
}
