// Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), as the schedulefree
// package's AdamWScheduleFree. The parameters are y; z is the base iterate.
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

// The update pipelines that switch the parameters between y and x (one at most).
override TO_EVAL: bool = false;
override TO_TRAIN: bool = false;

// x^y as Python's float power for x >= 0, y >= 0: 1 when y is 0 (0^0 included), 0 for 0^y.
fn schedule_free_power(x: f32, y: f32) -> f32 {
    if y == 0.0 {
        return 1.0;
    }
    if x == 0.0 {
        return 0.0;
    }
    return pow(x, y);
}

fn prepare_group(g: u32, step: f32) {
    let h = hyper[g];
    // The package's `k < warmup_steps` with k = step - 1.
    let lr = select(h.lr, h.lr * (step / h.warmup_steps), step <= h.warmup_steps);
    let lr_max = max(lr, h.lr_max);
    let weight = schedule_free_power(step, h.r) * schedule_free_power(lr_max, h.weight_lr_power);
    let weight_sum = h.weight_sum + weight;
    let ckp1 = select(weight / weight_sum, 0.0, weight_sum == 0.0);
    hyper[g].scheduled_lr = lr;
    hyper[g].ckp1 = ckp1;
    hyper[g].y_step = lr * (h.beta1 * (1.0 - ckp1) - 1.0);
    hyper[g].bias_correction2 = bias_correction(h.ln_beta2, step);
    hyper[g].lr_max = lr_max;
    hyper[g].weight_sum = weight_sum;
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
    var g = grad / denom;
    g = select(g, g + h.weight_decay * *y, h.weight_decay != 0.0);
    *y = lerp(*y, *z, h.ckp1) + h.y_step * g;
    *z = *z - h.scheduled_lr * g;
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, h: Hyper, c: Control) {
    var y = (*e).param;
    if TO_EVAL || TO_TRAIN {
        let weight = select(h.train_weight, h.eval_weight, TO_EVAL);
        (*e).param = select(lerp(y, (*e).state0, weight), y, c.step == 0u);
        return;
    }
    // z starts as the parameters, at the first step.
    var z = select((*e).state0, y, c.step == 1u);
    var exp_avg_sq = (*e).state1;
    schedule_free_adamw_math(&y, (*e).grad, &z, &exp_avg_sq, h);
    (*e).param = y;
    (*e).state0 = z;
    (*e).state1 = exp_avg_sq;
}
