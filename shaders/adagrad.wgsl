// Adagrad (Duchi et al. 2011): torch.optim.Adagrad.
//
//   g = maximize ? -g : g;  g += weight_decay * p
//   clr = lr / (1 + (step - 1) * lr_decay)
//   sum += g * g
//   p  -= clr * g / (sqrt(sum) + eps)
//   (eps_in_sqrt, Optax's form: p -= clr * where(sum > 0, g / sqrt(sum + eps), 0))
//
// state0: sum (starts at initial_accumulator_value).

// What the host writes (AdagradHyper in src/optim/adagrad.rs).
struct Hyper {
    lr: f32,
    lr_decay: f32,
    weight_decay: f32,
    eps: f32,
}

// What `prepare_group` derives each step (AdagradDerived).
struct Derived {
    // lr / (1 + (step - 1) * lr_decay)
    clr: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
}

override MAXIMIZE: bool = false;
// Optax's form: where(sum > 0, g / sqrt(sum + eps), 0).
override EPS_IN_SQRT: bool = false;

fn prepare_group(g: u32, step: f32) {
    // The steps before this one, counted in integers: written `(step - 1.0) * lr_decay`, a
    // compiler that reassociates floating point (lavapipe's does) may form
    // `step * lr_decay - lr_decay`, which for a large lr_decay cancels to 0 and makes clr
    // infinite. Exact for every step below 2^24, as `step - 1.0` is.
    let before = f32(u32(step) - 1u);
    let h = groups[g].hyper;
    groups[g].derived.clr = h.lr / (1.0 + before * h.lr_decay);
}

fn adagrad_math(p: ptr<function, vec4<f32>>, grad: vec4<f32>, sum: ptr<function, vec4<f32>>, h: Hyper, d: Derived) {
    let g = l2_grad(grad, *p, h.weight_decay);
    *sum = *sum + g * g;
    if EPS_IN_SQRT {
        let scaled = select(vec4(0.0), g / sqrt(*sum + h.eps), *sum > vec4(0.0));
        *p = *p - d.clr * scaled;
    } else {
        let denom = sqrt(*sum) + h.eps;
        *p = *p - d.clr * (g / denom);
    }
}

fn uses_state(slot: u32) -> bool {
    return true;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var sum = (*e).state0;
    adagrad_math(&p, (*e).grad, &sum, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = sum;
}
