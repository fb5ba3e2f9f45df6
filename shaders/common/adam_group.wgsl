// The record of one parameter group of the Adam family (Adam, AdamW, AdaBelief, Adamax).
// `Hyper` is what the host writes, each field rounded once from the f64 value PyTorch
// computes in Python; `Derived` is what `prepare_adam` (called by each kernel's
// `prepare_group`) derives from the step count: the step size and the bias corrections, and
// AdaBelief's rectified step. Mirrored by AdamHyper and AdamDerived in src/optim/adam.rs.
struct Hyper {
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    ln_beta1: f32,
    ln_beta2: f32,
    eps: f32,
    // Added inside the square root: Optax's eps_root (AMSGrad's Optax form, AdaBelief; for
    // AdaBelief as adabelief-pytorch, eps itself).
    eps_root: f32,
    weight_decay: f32,
    // Decoupled weight decay multiplier: 1 - lr * weight_decay (1 - weight_decay for
    // AdaBelief's fixed_decay).
    decay: f32,
    // AdaBelief's rectify: 2 / (1 - beta2) - 1 (else 0).
    rho_inf: f32,
    // AdaBelief's rectify: rho_inf / ((rho_inf - 4) (rho_inf - 2)) (0 when rho_inf <= 4).
    rect_inf: f32,
}

struct Derived {
    // lr / (1 - beta1^step)
    step_size: f32,
    // sqrt(1 - beta2^step)
    bias_correction2_sqrt: f32,
    // 1 - beta2^step
    bias_correction2: f32,
    // Written by adabelief.wgsl's `prepare_group` with rectify: the rectified step's multiplier
    // of exp_avg / denom, lr / (1 - beta1^t) * r_t * sqrt(1 - beta2^t); 1 when the step is
    // rectified, else 0.
    rectified_step_size: f32,
    rectified: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
}

// The per-step scalars of the Adam family: bias corrections and step size.
fn prepare_adam(g: u32, step: f32) {
    let h = groups[g].hyper;
    groups[g].derived.step_size = h.lr / bias_correction(h.ln_beta1, step);
    let bias_correction2 = bias_correction(h.ln_beta2, step);
    groups[g].derived.bias_correction2 = bias_correction2;
    groups[g].derived.bias_correction2_sqrt = sqrt(bias_correction2);
}
