//! Mirrors of the gradient processing in `shaders/clip.wgsl` and of the gradient load of the
//! update kernels (`process_grad` in `shaders/common/entry.wgsl`), on the host.

use crate::grad::{GradHyper, NormStats, CLIP_NONE, CLIP_PYTORCH};
use crate::kernel::Control;

const ABS_MASK: u32 = 0x7fff_ffff;
const INF_BITS: u32 = 0x7f80_0000;

/// `clip_by_value` of `shaders/common/control.wgsl`: no clamp at all when the bound is inf.
pub fn clip_by_value(u: f32, clip_value: f32) -> f32 {
    if !clip_value.is_finite() {
        return u;
    }
    // f32::clamp keeps NaN, as the WGSL does explicitly.
    u.clamp(-clip_value, clip_value)
}

/// `process_grad` of `shaders/common/entry.wgsl`: the gradient as a step sees it.
pub fn load_grad(g: f32, c: &Control) -> f32 {
    clip_by_value(g * c.inv_grad_scale, c.clip_value) * c.clip_coef
}

/// The global norm of `grads` in f64, as `torch.nn.utils.get_total_norm` defines it for any
/// `norm_type` > 0 or inf (the norm of the per-tensor norms is the norm of every element):
/// NaN when any gradient is NaN, else inf when any is inf.
pub fn global_norm(grads: &[Vec<f32>], norm_type: f64) -> f64 {
    let values = grads.iter().flatten().map(|&g| f64::from(g));
    if norm_type == f64::INFINITY {
        values.fold(0.0, |max: f64, g| {
            if max.is_nan() || g.is_nan() {
                f64::NAN
            } else {
                max.max(g.abs())
            }
        })
    } else if norm_type == 2.0 {
        values.map(|g| g * g).sum::<f64>().sqrt()
    } else {
        values
            .map(|g| g.abs().powf(norm_type))
            .sum::<f64>()
            .powf(norm_type.recip())
    }
}

/// `power` of `shaders/clip.wgsl`, in f64: `|c|^p`, exactly `c^2` for the 2-norm.
fn power(c: f64, p: f64) -> f64 {
    if p == 2.0 {
        c * c
    } else {
        c.abs().powf(p)
    }
}

/// `grad_partials` and `grad_local`: one device's [`NormStats`]. The sum of `|c|^p` is taken in
/// f64 and rounded once; the device's f32 tree agrees to about 1e-7 relative (the 2- and
/// 1-norms; WGSL's `pow` adds its own error for other `p`).
pub fn norm_stats(grads: &[Vec<f32>], c: &Control, h: &GradHyper) -> NormStats {
    let inv_grad_scale = 1.0 / c.grad_scale;
    let mut sum = 0.0_f64;
    let mut max_bits = 0;
    for &g in grads.iter().flatten() {
        let u = g * inv_grad_scale;
        let clamped = clip_by_value(u, c.clip_value);
        let u_bits = u.to_bits() & ABS_MASK;
        let key = if u_bits >= INF_BITS {
            u_bits
        } else {
            clamped.to_bits() & ABS_MASK
        };
        max_bits = max_bits.max(key);
        sum += power(f64::from(clamped), f64::from(h.norm_type));
    }
    let value = f32::from_bits(max_bits);
    if !value.is_finite() {
        return NormStats {
            value,
            nonfinite: 1.0,
        };
    }
    if h.inf_norm != 0 {
        return NormStats {
            value,
            nonfinite: 0.0,
        };
    }
    NormStats {
        value: sum as f32,
        nonfinite: 0.0,
    }
}

/// `norm_of` of `shaders/clip.wgsl`: the `p`-th root of a sum of `|c|^p`.
pub fn norm_of(sum: f32, h: &GradHyper) -> f32 {
    if h.inf_norm != 0 || !sum.is_finite() || h.norm_type == 1.0 {
        return sum;
    }
    if h.norm_type == 2.0 {
        return sum.sqrt();
    }
    if sum == 0.0 {
        0.0
    } else {
        sum.powf(h.inv_norm_type)
    }
}

/// `clip_coefficient` of `shaders/clip.wgsl`.
pub fn clip_coefficient(norm: f32, h: &GradHyper) -> f32 {
    if h.clip_mode == CLIP_NONE {
        return 1.0;
    }
    if !norm.is_finite() {
        return if norm.is_nan() { norm } else { 0.0 };
    }
    if h.clip_mode == CLIP_PYTORCH {
        return 1.0_f32.min(h.max_norm / (norm + 1e-6));
    }
    if norm < h.max_norm {
        return 1.0;
    }
    h.max_norm / norm
}

/// `update_scale` of `shaders/clip.wgsl` (ATen's `_amp_update_scale_`).
pub fn update_scale(c: &mut Control, found_inf: bool, h: &GradHyper) {
    if found_inf {
        c.grad_scale *= h.backoff_factor;
        c.growth_tracker = 0;
        return;
    }
    let successful = c.growth_tracker + 1;
    if successful == h.growth_interval {
        let grown = c.grad_scale * h.growth_factor;
        if grown.is_finite() {
            c.grad_scale = grown;
        }
        c.growth_tracker = 0;
    } else {
        c.growth_tracker = successful;
    }
}

/// `grad_finalize` of `shaders/clip.wgsl`: from (all-reduced) stats to the control block.
pub fn finalize(c: &mut Control, h: &GradHyper, s: NormStats) {
    if c.nonfinite_step != 0 {
        c.found_inf = 1;
        return;
    }
    let found_inf = (s.nonfinite.to_bits() & ABS_MASK) != 0;
    let norm = norm_of(s.value, h);
    c.grad_norm = norm;
    c.clip_coef = clip_coefficient(norm, h);
    c.inv_grad_scale = 1.0 / c.grad_scale;
    c.found_inf = u32::from(found_inf);
    if h.error_if_nonfinite != 0 && (found_inf || !norm.is_finite()) {
        c.found_inf = 1;
        c.nonfinite_step = c.step + 1;
        return;
    }
    if found_inf {
        c.skipped_steps += 1;
    }
    if h.scaler != 0 {
        update_scale(c, found_inf, h);
    }
}
