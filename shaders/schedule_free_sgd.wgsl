// Schedule-Free SGD (Defazio et al. 2024, "The Road Less Scheduled"), as the schedulefree
// package's SGDScheduleFree. The parameters are y; z is the base SGD iterate. The schedule, the
// y and z update and the eval/train switch are common/schedule_free.wgsl's:
//
//   g = g + weight_decay * y
//   y = lerp(y, z, ckp1) + lr * (momentum * (1 - ckp1) - 1) * g
//   z = z - lr * g
//
// With TO_EVAL or TO_TRAIN the update dispatches move the parameters instead (the package's
// eval() and train()): y to x, p = lerp(p, z, 1 - 1 / momentum), or x to y,
// p = lerp(p, z, 1 - momentum); no state changes, and nothing moves before the first step.
//
// state0: z.

struct Hyper {
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    warmup_steps: f32,
    r: f32,
    weight_lr_power: f32,
    // 1 - 1 / momentum and 1 - momentum: eval()'s and train()'s weights of z.
    eval_weight: f32,
    train_weight: f32,
    // Written by `prepare_group` each step: the warmed-up lr; ckp1; y's multiplier of the
    // gradient, lr * (momentum * (1 - ckp1) - 1).
    scheduled_lr: f32,
    ckp1: f32,
    y_step: f32,
    // Running values, kept here by `prepare_group` and never written by the host after the
    // build: the largest lr so far (-1 before the first step) and the sum of the averaging
    // weights.
    lr_max: f32,
    weight_sum: f32,
}

@group(0) @binding(1) var<storage, read_write> hyper: array<Hyper>;

fn prepare_group(g: u32, step: f32) {
    let h = hyper[g];
    let s = schedule_free_schedule(
        h.lr,
        h.momentum,
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
    hyper[g].lr_max = s.lr_max;
    hyper[g].weight_sum = s.weight_sum;
}

fn uses_state(slot: u32) -> bool {
    return slot < 1u;
}

fn step_math(e: ptr<function, Elements>, h: Hyper, c: Control) {
    if schedule_free_begin(e, h.eval_weight, h.train_weight, c) {
        return;
    }
    var y = (*e).param;
    var z = (*e).state0;
    schedule_free_update(&y, &z, (*e).grad, h.weight_decay, h.ckp1, h.y_step, h.scheduled_lr);
    (*e).param = y;
    (*e).state0 = z;
}
