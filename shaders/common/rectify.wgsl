// RAdam's rectification (Liu et al. 2020), shared by radam.wgsl and adabelief.wgsl (rectify):
// the length of the approximated SMA, rho_t, and the rectification term r_t. Mirrored by
// `radam_series`, `radam_rho` and `rectification` in src/reference/common.rs.

// x / (1 - e^-x) - 1 - x / 2, over x: 1 / (1 - e^-x) - 1 / x - 1 / 2, for 0 <= x < 1, from the
// Bernoulli series x/12 - x^3/720 + x^5/30240 - x^7/1209600 + x^9/47900160 (the next term is
// below 6e-13).
fn radam_series(x: f32) -> f32 {
    let x2 = x * x;
    var s = 2.0876756988e-08;
    s = s * x2 - 8.2671957672e-07;
    s = s * x2 + 3.3068783069e-05;
    s = s * x2 - 1.3888888889e-03;
    s = s * x2 + 8.3333333333e-02;
    return x * s;
}

// PyTorch's rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t) (the length of the approximated
// SMA), from ln(beta2). With a = -ln(beta2) and h the series above, the 2 / a in both terms
// cancels exactly: rho_t = 2 h(a) + t (1 - 2 h(t a)), a sum of positive terms, used while
// t a < 1 (there the direct form loses up to all of rho_t's digits: 1999 - 1998 = 1 at t = 1
// for beta2 = 0.999). Past it the direct form cancels less than two bits.
fn radam_rho(ln_beta2: f32, rho_inf: f32, step: f32) -> f32 {
    let a = -ln_beta2;
    let u = step * a;
    if u < 1.0 {
        return 2.0 * radam_series(a) + step * (1.0 - 2.0 * radam_series(u));
    }
    let bias_correction2 = bias_correction(ln_beta2, step);
    return rho_inf - 2.0 * step * (1.0 - bias_correction2) / bias_correction2;
}

// r_t = sqrt((rho_t - 4) (rho_t - 2) rho_inf / ((rho_inf - 4) (rho_inf - 2) rho_t)), from
// rect_inf = rho_inf / ((rho_inf - 4) (rho_inf - 2)) computed on the host in f64.
fn rectification(rho: f32, rect_inf: f32) -> f32 {
    return sqrt((rho - 4.0) * (rho - 2.0) / rho * rect_inf);
}
