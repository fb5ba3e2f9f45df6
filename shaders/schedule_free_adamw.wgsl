// Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), as the schedulefree
// package's AdamWScheduleFree. The parameters are y; z is the base iterate. The schedule, the
// y and z update and the eval/train switch are common/schedule_free.wgsl's.
//
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   g = g / (sqrt(exp_avg_sq / (1 - beta2^t)) + eps) + weight_decay * y
//   y = lerp(y, z, ckp1) + lr * (beta1 * (1 - ckp1) - 1) * g
//   z = z - lr * g
//
// With TO_EVAL or TO_TRAIN the prologue (which leaves the step counter alone) and the update
// dispatches move the parameters instead (the package's eval() and train()) where the mode the
// prologue keeps on the device says they are not there yet: y to x, p = lerp(p, z,
// 1 - 1 / beta1), or x to y, p = lerp(p, z, 1 - beta1); no state changes, and nothing moves
// before the first step. A step in eval mode moves x back to y first.
//
// state0: z, state1: exp_avg_sq.

// What the host writes (ScheduleFreeAdamWHyper in src/optim/schedule_free_adamw.rs).
struct Hyper {
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    ln_beta2: f32,
    eps: f32,
    weight_decay: f32,
    warmup_steps: f32,
    r: f32,
    weight_lr_power: f32,
    // 1 - 1 / beta1 and 1 - beta1: eval()'s and train()'s weights of z.
    eval_weight: f32,
    train_weight: f32,
}

// What `prepare_group` derives each step (ScheduleFreeAdamWDerived): the warmed-up lr; ckp1;
// y's multiplier of the normalized gradient, lr * (beta1 * (1 - ckp1) - 1); 1 - beta2^t.
struct Derived {
    scheduled_lr: f32,
    ckp1: f32,
    y_step: f32,
    bias_correction2: f32,
    // 1 when this dispatch moves the parameters between y and x (see schedule_free_mode).
    moves: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
    running: Running,
}

fn prepare_group(g: u32, step: f32) {
    let h = groups[g].hyper;
    let mode = schedule_free_mode(groups[g].running.train_mode, step);
    groups[g].derived.moves = mode.x;
    groups[g].running.train_mode = mode.y;
    if TO_EVAL || TO_TRAIN {
        return;
    }
    let s = schedule_free_schedule(
        h.lr,
        h.beta1,
        h.warmup_steps,
        h.r,
        h.weight_lr_power,
        groups[g].running,
        step,
    );
    groups[g].derived.scheduled_lr = s.lr;
    groups[g].derived.ckp1 = s.ckp1;
    groups[g].derived.y_step = s.y_step;
    groups[g].derived.bias_correction2 = bias_correction(h.ln_beta2, step);
    groups[g].running.lr_max = s.lr_max;
    groups[g].running.weight_sum = s.weight_sum;
}

fn schedule_free_adamw_math(
    y: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    z: ptr<function, vec4<f32>>,
    exp_avg_sq: ptr<function, vec4<f32>>,
    h: Hyper,
    d: Derived,
) {
    *exp_avg_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * grad * grad;
    let denom = sqrt(*exp_avg_sq / d.bias_correction2) + h.eps;
    schedule_free_update(y, z, grad / denom, h.weight_decay, d.ckp1, d.y_step, d.scheduled_lr);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    let h = group.hyper;
    if schedule_free_begin(e, h.eval_weight, h.train_weight, group.derived.moves, c) {
        return;
    }
    var y = (*e).param;
    var z = (*e).state0;
    var exp_avg_sq = (*e).state1;
    schedule_free_adamw_math(&y, (*e).grad, &z, &exp_avg_sq, h, group.derived);
    (*e).param = y;
    (*e).state0 = z;
    (*e).state1 = exp_avg_sq;
}
