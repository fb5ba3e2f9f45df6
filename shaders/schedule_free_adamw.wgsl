// Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), as the schedulefree
// package's AdamWScheduleFree. The parameters are y; z is the base iterate. The schedule, the
// y and z update and the eval/train switch are common/schedule_free.wgsl's.
//
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   g = g / (sqrt(exp_avg_sq / (1 - beta2^t)) + eps) + weight_decay * y
//   y = lerp(y, z, ckp1) + lr * (beta1 * (1 - ckp1) - 1) * g
//   z = z - lr * g
//
// With TO_EVAL or TO_TRAIN the update dispatches move the parameters instead (the package's
// eval() and train()): y to x, p = lerp(p, z, 1 - 1 / beta1), or x to y,
// p = lerp(p, z, 1 - beta1); no state changes, and nothing moves before the first step.
//
// state0: z, state1: exp_avg_sq.

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
    // Written by `prepare_group` each step: the warmed-up lr; ckp1; y's multiplier of the
    // normalized gradient, lr * (beta1 * (1 - ckp1) - 1); 1 - beta2^t.
    scheduled_lr: f32,
    ckp1: f32,
    y_step: f32,
    bias_correction2: f32,
    // Running values, kept here by `prepare_group` and never written by the host after the
    // build (the host writes the fields above only): the largest lr so far (-1 before the first
    // step) and the sum of the averaging weights.
    lr_max: f32,
    weight_sum: f32,
}

@group(0) @binding(1) var<storage, read_write> hyper: array<Hyper>;

fn prepare_group(g: u32, step: f32) {
    let h = hyper[g];
    let s = schedule_free_schedule(
        h.lr,
        h.beta1,
        h.warmup_steps,
        h.r,
        h.weight_lr_power,
        h.lr_max,
        h.weight_sum,
        step,
    );
    hyper[g].scheduled_lr = s.lr;
    hyper[g].ckp1 = s.ckp1;
    hyper[g].y_step = s.y_step;
    hyper[g].bias_correction2 = bias_correction(h.ln_beta2, step);
    hyper[g].lr_max = s.lr_max;
    hyper[g].weight_sum = s.weight_sum;
}

fn schedule_free_adamw_math(
    y: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    z: ptr<function, vec4<f32>>,
    exp_avg_sq: ptr<function, vec4<f32>>,
    h: Hyper,
) {
    *exp_avg_sq = h.beta2 * *exp_avg_sq + h.one_minus_beta2 * grad * grad;
    let denom = sqrt(*exp_avg_sq / h.bias_correction2) + h.eps;
    schedule_free_update(y, z, grad / denom, h.weight_decay, h.ckp1, h.y_step, h.scheduled_lr);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, h: Hyper, c: Control) {
    if schedule_free_begin(e, h.eval_weight, h.train_weight, c) {
        return;
    }
    var y = (*e).param;
    var z = (*e).state0;
    var exp_avg_sq = (*e).state1;
    schedule_free_adamw_math(&y, (*e).grad, &z, &exp_avg_sq, h);
    (*e).param = y;
    (*e).state0 = z;
    (*e).state1 = exp_avg_sq;
}
