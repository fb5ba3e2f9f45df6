// Scalar helpers shared by the optimizer kernels. Plain functions of their arguments, mirrored
// operation for operation by `src/reference/math.rs`.

// ln(2) split so that k * LN2_HI is exact for |k| < 512 (fdlibm's expf constants).
const LN2_HI: f32 = 6.9314575195e-01;
const LN2_LO: f32 = 1.4286067653e-06;
const LOG2_E: f32 = 1.4426950409e+00;

// exp(x) - 1 for x <= 0, to a few ulp, from correctly rounded + - * alone.
// WGSL's exp and pow promise only a loose accuracy, and 1 - exp(x) cancels for small |x|.
fn expm1_nonpositive(x: f32) -> f32 {
    if x < -104.0 {
        // exp(x) is below the smallest subnormal; also catches x = -inf (beta = 0).
        return -1.0;
    }
    // x = k ln2 + r with |r| <= ln2 / 2.
    let k = round(x * LOG2_E);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // expm1(r) by its Taylor series to r^10 / 10!: the first omitted term is below 2^-30.
    var p = 2.7557319224e-07;
    p = p * r + 2.7557319224e-06;
    p = p * r + 2.4801587302e-05;
    p = p * r + 1.9841269841e-04;
    p = p * r + 1.3888888889e-03;
    p = p * r + 8.3333333333e-03;
    p = p * r + 4.1666666667e-02;
    p = p * r + 1.6666666667e-01;
    p = p * r + 5.0000000000e-01;
    let em = r + r * r * p;
    // expm1(x) = 2^k (expm1(r) + 1) - 1.
    let s = ldexp(1.0, i32(k));
    return s * em + (s - 1.0);
}

// 1 - beta^step, from ln(beta) computed on the host in f64 (as PyTorch computes it in f64).
fn bias_correction(ln_beta: f32, step: f32) -> f32 {
    return -expm1_nonpositive(step * ln_beta);
}

// PyTorch's lerp (ATen's `lerp` in Lerp.h): start + weight * (end - start), computed from the
// nearer end for accuracy. `exp_avg.lerp_(grad, 1 - beta1)` is how torch.optim.Adam updates
// its first moment.
fn lerp(start: vec4<f32>, end: vec4<f32>, weight: f32) -> vec4<f32> {
    let diff = end - start;
    return select(end - diff * (1.0 - weight), start + weight * diff, abs(weight) < 0.5);
}
