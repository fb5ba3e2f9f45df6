// Schedule-Free SGD (Defazio et al. 2024, "The Road Less Scheduled"), as the schedulefree
// package's SGDScheduleFree. The parameters are y; z is the base SGD iterate. The schedule, the
// y and z update and the eval/train switch are common/schedule_free.wgsl's:
//
//   g = g + weight_decay * y
//   y = lerp(y, z, ckp1) + lr * (momentum * (1 - ckp1) - 1) * g
//   z = z - lr * g
//
// With TO_EVAL or TO_TRAIN the prologue (which leaves the step counter alone) and the update
// dispatches move the parameters instead (the package's eval() and train()) where the mode the
// prologue keeps on the device says they are not there yet: y to x, p = lerp(p, z,
// 1 - 1 / momentum), or x to y, p = lerp(p, z, 1 - momentum); no state changes, and nothing moves
// before the first step. A step in eval mode moves x back to y first.
//
// state0: z.

// What the host writes (ScheduleFreeSgdHyper in src/optim/schedule_free_sgd.rs).
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
}

// What `prepare_group` derives each step (ScheduleFreeSgdDerived): the warmed-up lr; ckp1;
// y's multiplier of the gradient, lr * (momentum * (1 - ckp1) - 1).
struct Derived {
    scheduled_lr: f32,
    ckp1: f32,
    y_step: f32,
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
        h.momentum,
        h.warmup_steps,
        h.r,
        h.weight_lr_power,
        groups[g].running,
        step,
    );
    groups[g].derived.scheduled_lr = s.lr;
    groups[g].derived.ckp1 = s.ckp1;
    groups[g].derived.y_step = s.y_step;
    groups[g].running.lr_max = s.lr_max;
    groups[g].running.weight_sum = s.weight_sum;
}

fn uses_state(slot: u32) -> bool {
    return slot < 1u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    let h = group.hyper;
    let d = group.derived;
    if schedule_free_begin(e, h.eval_weight, h.train_weight, group.derived.moves, c) {
        return;
    }
    var y = (*e).param;
    var z = (*e).state0;
    schedule_free_update(&y, &z, (*e).grad, h.weight_decay, d.ckp1, d.y_step, d.scheduled_lr);
    (*e).param = y;
    (*e).state0 = z;
}
