//! Mirror of `shaders/adabelief.wgsl`.

use super::common::{max, prepare_adam, radam_rho, rectification};
use super::step::{Mirror, Tensor};
use crate::optim::{AdaBeliefConfig, AdaBeliefOptions, AdamDerived, AdamHyper};

/// `prepare_group` of `shaders/adabelief.wgsl`.
pub fn prepare_adabelief(h: &AdamHyper, step: f32, o: AdaBeliefOptions) -> AdamDerived {
    let mut d = prepare_adam(h, step);
    if !o.rectify {
        return d;
    }
    let rho = radam_rho(h.ln_beta2, h.rho_inf, step);
    let rectified = rho >= 5.0;
    let rectified_step_size =
        d.step_size * rectification(rho, h.rect_inf) * d.bias_correction2_sqrt;
    d.rectified_step_size = if rectified { rectified_step_size } else { 0.0 };
    d.rectified = if rectified { 1.0 } else { 0.0 };
    d
}

/// `adabelief_math` of `shaders/adabelief.wgsl` (its arguments, with the structural options).
#[allow(clippy::too_many_arguments)]
pub fn adabelief_math(
    p: &mut f32,
    grad: f32,
    exp_avg: &mut f32,
    exp_avg_var: &mut f32,
    max_exp_avg_var: &mut f32,
    h: &AdamHyper,
    d: &AdamDerived,
    o: AdaBeliefOptions,
) {
    let mut g = grad;
    if h.weight_decay != 0.0 {
        if o.weight_decouple {
            *p *= h.decay;
        } else {
            g += h.weight_decay * *p;
        }
    }
    *exp_avg = h.beta1 * *exp_avg + h.one_minus_beta1 * g;
    let grad_residual = g - *exp_avg;
    *exp_avg_var = h.beta2 * *exp_avg_var + h.one_minus_beta2 * grad_residual * grad_residual;
    *exp_avg_var += h.eps_root;
    let mut second_moment = *exp_avg_var;
    if o.amsgrad {
        *max_exp_avg_var = max(*max_exp_avg_var, *exp_avg_var);
        second_moment = *max_exp_avg_var;
    }
    if o.rectify {
        let adaptive = d.rectified_step_size * (*exp_avg / (exp_avg_var.sqrt() + h.eps));
        let sgd = if o.degenerated_to_sgd {
            d.step_size * *exp_avg
        } else {
            0.0
        };
        *p -= if d.rectified != 0.0 { adaptive } else { sgd };
        return;
    }
    let denom = second_moment.sqrt() / d.bias_correction2_sqrt + h.eps;
    *p -= d.step_size * (*exp_avg / denom);
}

impl Mirror for AdaBeliefConfig {
    type Prepared = (AdamHyper, AdamDerived, AdaBeliefOptions);

    fn prologue(&self, step: f32, _running: &mut [f32]) -> Self::Prepared {
        let (h, o) = (self.hyper(), self.options());
        (h, prepare_adabelief(&h, step, o), o)
    }

    fn update(&self, (h, d, o): &Self::Prepared, tensor: &mut Tensor<'_>) {
        tensor.each(&mut |p, g, [s0, s1, s2]| adabelief_math(p, g, s0, s1, s2, h, d, *o));
    }
}
