// Schedule-Free (Defazio et al. 2024, "The Road Less Scheduled"), the pieces the schedulefree
// package's AdamWScheduleFree and SGDScheduleFree share: the warmed-up lr, the running lr_max
// and weight_sum, the averaging weight ckp1, the y and z update from the (normalized) gradient,
// and the eval()/train() switch. `beta` is AdamW's beta1, SGD's momentum.
//
//   lr         = lr * min(t / warmup_steps, 1)
//   lr_max     = max(lr, lr_max)
//   weight     = t^r * lr_max^weight_lr_power
//   weight_sum = weight_sum + weight
//   ckp1       = weight / weight_sum              (0 when weight_sum is 0)
//   g          = g + weight_decay * y
//   y          = lerp(y, z, ckp1) + lr * (beta * (1 - ckp1) - 1) * g
//   z          = z - lr * g
//
// state0 is z in both.

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

// What the prologue carries from step to step (ScheduleFreeRunning in
// src/optim/schedule_free.rs): never written by the host after the build but from a
// checkpoint, so a new configuration or a schedule carries them on.
struct Running {
    // The largest lr so far (-1 before the first step).
    lr_max: f32,
    // The sum of the averaging weights so far.
    weight_sum: f32,
    // The package's `train_mode`: 1 while the parameters are y, 0 while they are x (after
    // eval()). Kept on the device, so the mode follows the work submitted, whatever encoders
    // were recorded and dropped.
    train_mode: f32,
}

// A dispatch's move of the parameters and the mode after it, from the mode before it and the
// step counter (advanced for a step, not for a switch pass): `(moves, train_mode)`. A switch
// pass (TO_EVAL, TO_TRAIN) moves them when the mode is not its target yet and a step has
// made z; a step moves x back to y first when they are x (a step in eval mode, which the
// package refuses, takes train() first here) and z exists (from the second step), and leaves
// train mode.
fn schedule_free_mode(train_mode: f32, step: f32) -> vec2<f32> {
    if TO_EVAL || TO_TRAIN {
        let after = select(1.0, 0.0, TO_EVAL);
        return vec2(select(0.0, 1.0, train_mode != after && step > 0.0), after);
    }
    return vec2(select(0.0, 1.0, train_mode == 0.0 && step > 1.0), 1.0);
}

// A step's scalars, and the running values after it.
struct ScheduleFreeStep {
    // The warmed-up lr.
    lr: f32,
    ckp1: f32,
    // lr * (beta * (1 - ckp1) - 1), y's multiplier of the gradient.
    y_step: f32,
    lr_max: f32,
    weight_sum: f32,
}

// The package's step scalars at step `step` (its k + 1), from the running values before it.
fn schedule_free_schedule(
    lr: f32,
    beta: f32,
    warmup_steps: f32,
    r: f32,
    weight_lr_power: f32,
    running: Running,
    step: f32,
) -> ScheduleFreeStep {
    // The package's `k < warmup_steps` with k = step - 1.
    let scheduled = select(lr, lr * (step / warmup_steps), step <= warmup_steps);
    let new_max = max(scheduled, running.lr_max);
    let weight = schedule_free_power(step, r) * schedule_free_power(new_max, weight_lr_power);
    let new_sum = running.weight_sum + weight;
    let ckp1 = select(weight / new_sum, 0.0, new_sum == 0.0);
    return ScheduleFreeStep(
        scheduled,
        ckp1,
        scheduled * (beta * (1.0 - ckp1) - 1.0),
        new_max,
        new_sum,
    );
}

// y and z from the gradient g (AdamW's normalized one), weight decay taken at y.
fn schedule_free_update(
    y: ptr<function, vec4<f32>>,
    z: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    weight_decay: f32,
    ckp1: f32,
    y_step: f32,
    lr: f32,
) {
    let g = select(grad, grad + weight_decay * *y, weight_decay != 0.0);
    *y = lerp(*y, *z, ckp1) + y_step * g;
    *z = *z - lr * g;
}

// With TO_EVAL or TO_TRAIN, moves the parameters where the prologue says so (`moves`: y to
// x, p = lerp(p, z, eval_weight), or x to y, p = lerp(p, z, train_weight)) and returns true:
// the update is then done. Otherwise moves x back to y where the prologue says so (a step in
// eval mode), at the first step starts z as the parameters, and returns false.
fn schedule_free_begin(
    e: ptr<function, Elements>,
    eval_weight: f32,
    train_weight: f32,
    moves: f32,
    c: Control,
) -> bool {
    let p = (*e).param;
    let move_it = moves != 0.0;
    if TO_EVAL || TO_TRAIN {
        let weight = select(train_weight, eval_weight, TO_EVAL);
        (*e).param = select(p, lerp(p, (*e).state0, weight), move_it);
        return true;
    }
    let y = select(p, lerp(p, (*e).state0, train_weight), move_it);
    (*e).param = y;
    (*e).state0 = select((*e).state0, y, c.step == 1u);
    return false;
}
