// Hyperparameters of one parameter group of the Adam family (Adam, AdamW, AdaBelief, Adamax).
// Host-written fields are rounded once from the f64 values PyTorch computes in Python;
// step_size and the bias corrections are derived on the device each step by `prepare_adam`,
// which each kernel's `prepare_group` calls; the last four are AdaBelief's rectification
// (rectify), zero for every other kernel.
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
    // lr / (1 - beta1^step)
    step_size: f32,
    // sqrt(1 - beta2^step)
    bias_correction2_sqrt: f32,
    // 1 - beta2^step
    bias_correction2: f32,
    // 2 / (1 - beta2) - 1, with rectify (else 0).
    rho_inf: f32,
    // rho_inf / ((rho_inf - 4) (rho_inf - 2)), with rectify (0 when rho_inf <= 4).
    rect_inf: f32,
    // Written by adabelief.wgsl's `prepare_group` with rectify: the rectified step's multiplier
    // of exp_avg / denom, lr / (1 - beta1^t) * r_t * sqrt(1 - beta2^t); 1 when the step is
    // rectified, else 0.
    rectified_step_size: f32,
    rectified: f32,
}

@group(0) @binding(1) var<storage, read_write> hyper: array<Hyper>;

// The per-step scalars of the Adam family: bias corrections and step size.
fn prepare_adam(g: u32, step: f32) {
    let h = hyper[g];
    hyper[g].step_size = h.lr / bias_correction(h.ln_beta1, step);
    let bias_correction2 = bias_correction(h.ln_beta2, step);
    hyper[g].bias_correction2 = bias_correction2;
    hyper[g].bias_correction2_sqrt = sqrt(bias_correction2);
}
