// Rprop (Riedmiller & Braun 1993, "A Direct Adaptive Method for Faster Backpropagation
// Learning: The RPROP Algorithm"), as torch.optim.Rprop (Rprop without weight backtracking):
// each element's step size grows while its gradient keeps its sign and shrinks when it flips.
//
//   g = maximize ? -g : g;  g += weight_decay * p    (an extension: PyTorch's has none, 0)
//   step_size = t == 1 ? lr : step_size               (PyTorch's lazy start, the group's lr then)
//   s = g * prev
//   step_size = clamp(step_size * (s > 0 ? etaplus : s < 0 ? etaminus : 1),
//                     step_size_min, step_size_max)
//   g = s < 0 ? 0 : g
//   p -= sign(g) * step_size
//   prev = g
//
// A NaN in s makes the step size NaN, as torch.sign and torch.clamp propagate it.
// state0: prev, state1: step_size. Needs common/l2.wgsl.

// What the host writes (RpropHyper in src/optim/rprop.rs).
struct Hyper {
    lr: f32,
    etaminus: f32,
    etaplus: f32,
    step_size_min: f32,
    step_size_max: f32,
    weight_decay: f32,
}

// One parameter group's record: Rprop derives nothing from the step count.
struct Group {
    hyper: Hyper,
}

override MAXIMIZE: bool = false;

fn prepare_group(g: u32, step: f32) {
    // Rprop derives nothing from the step count.
}

fn rprop_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    prev: ptr<function, vec4<f32>>,
    step_size: ptr<function, vec4<f32>>,
    first_step: bool,
    h: Hyper,
) {
    let g = l2_grad(grad, *p, h.weight_decay);
    let size = select(*step_size, vec4(h.lr), first_step);
    let s = g * *prev;
    var eta = select(vec4(1.0), vec4(h.etaminus), s < vec4(0.0));
    eta = select(eta, vec4(h.etaplus), s > vec4(0.0));
    // On bits: compilers may assume finite math. `s + size` is NaN where either is.
    let nan = ((bitcast<vec4<u32>>(s) & vec4(ABS_MASK)) > vec4(INF_BITS))
        | ((bitcast<vec4<u32>>(size) & vec4(ABS_MASK)) > vec4(INF_BITS));
    let clamped = clamp(size * eta, vec4(h.step_size_min), vec4(h.step_size_max));
    *step_size = select(clamped, s + size, nan);
    let kept = select(g, vec4(0.0), s < vec4(0.0));
    *p = *p - sign(kept) * *step_size;
    *prev = kept;
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var prev = (*e).state0;
    var step_size = (*e).state1;
    rprop_math(&p, (*e).grad, &prev, &step_size, c.step == 1u, group.hyper);
    (*e).param = p;
    (*e).state0 = prev;
    (*e).state1 = step_size;
}
