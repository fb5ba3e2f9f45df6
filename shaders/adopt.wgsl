// ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any beta2 with the
// Optimal Rate"), as the authors' PyTorch ADOPT (pytorch-optimizer's) and (OPTAX_FORM)
// optax.contrib.adopt.
//
//   g = maximize ? -g : g
//   decoupled: p *= decay (1 - lr * weight_decay; fixed_decay: 1 - weight_decay)
//   otherwise: g += weight_decay * p
//   step 1:  exp_avg_sq = exp_avg_sq + g * g      (the second moment is only initialised)
//   else:
//     normed = g / max(sqrt(exp_avg_sq), eps)     (the previous second moment)
//     use_clipping: normed = clamp(normed, -clip, clip), clip = t^(1/4) (Optax: (t - 1)^(1/4))
//     exp_avg = lerp(exp_avg, normed, 1 - beta1)
//     p -= lr * (nesterov ? lerp(exp_avg, normed, 1 - beta1) : exp_avg)
//     exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//
// state0: exp_avg, state1: exp_avg_sq. Needs common/moments.wgsl.

// What the host writes (AdoptHyper in src/optim/adopt.rs).
struct Hyper {
    lr: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    weight_decay: f32,
    // 1 - lr * weight_decay (fixed_decay: 1 - weight_decay)
    decay: f32,
}

// What `prepare_group` derives each step (AdoptDerived).
struct Derived {
    // The bound of the normalised gradient.
    clip: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
}

override MAXIMIZE: bool = false;
override DECOUPLED_WEIGHT_DECAY: bool = false;
override USE_CLIPPING: bool = true;
override NESTEROV: bool = false;
// optax.contrib.adopt: the clip at step t is (t - 1)^(1/4), its count before the step.
override OPTAX_FORM: bool = false;

fn prepare_group(g: u32, step: f32) {
    // step - 1 is exact: an integer count below 2^24.
    let count = select(step, step - 1.0, OPTAX_FORM);
    // sqrt(sqrt(.)) is correctly rounded twice, where pow(count, 0.25) is only loosely bounded.
    groups[g].derived.clip = sqrt(sqrt(count));
}

fn adopt_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_avg_sq: ptr<function, vec4<f32>>,
    first_step: bool,
    h: Hyper,
    d: Derived,
) {
    let g = decayed_grad(p, grad, Moments(h.weight_decay, h.decay, h.one_minus_beta1, h.beta2, h.one_minus_beta2));
    var normed = g / max(sqrt(*exp_avg_sq), vec4(h.eps));
    if USE_CLIPPING {
        normed = clamp(normed, vec4(-d.clip), vec4(d.clip));
    }
    let next = lerp(*exp_avg, normed, h.one_minus_beta1);
    var update = next;
    if NESTEROV {
        update = lerp(next, normed, h.one_minus_beta1);
    }
    // The first step only initialises the second moment.
    *exp_avg = select(next, *exp_avg, first_step);
    *p = select(*p - h.lr * update, *p, first_step);
    let next_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * g * g;
    *exp_avg_sq = select(next_sq, *exp_avg_sq + g * g, first_step);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    var exp_avg_sq = (*e).state1;
    adopt_math(&p, (*e).grad, &exp_avg, &exp_avg_sq, c.step == 1u, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_avg_sq;
}
