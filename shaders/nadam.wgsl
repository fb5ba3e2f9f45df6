// NAdam (Dozat 2016, "Incorporating Nesterov Momentum into Adam"), as torch.optim.NAdam and
// (OPTAX_FORM) optax.nadam.
//
//   g = maximize ? -g : g
//   decoupled: p *= 1 - lr * weight_decay        otherwise: g += weight_decay * p
//   exp_avg = lerp(exp_avg, g, 1 - beta1)
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * g * g
//   denom = sqrt(exp_avg_sq / (1 - beta2^t) + eps_root) + eps
//   p -= grad_coef * g / denom
//   p -= exp_avg_coef * exp_avg / denom
// PyTorch: mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay)), mu_product = mu_1 ... mu_t,
//   grad_coef = lr (1 - mu_t) / (1 - mu_product), exp_avg_coef = lr mu_{t+1} / (1 - mu_product mu_{t+1})
// Optax: grad_coef = lr (1 - beta1) / (1 - beta1^t), exp_avg_coef = lr beta1 / (1 - beta1^(t+1))
//
// state0: exp_avg, state1: exp_avg_sq. Needs common/moments.wgsl.

// What the host writes (NAdamHyper in src/optim/nadam.rs).
struct Hyper {
    lr: f32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    ln_beta1: f32,
    ln_beta2: f32,
    // momentum_decay * ln(0.96)
    ln_mu_base: f32,
    eps: f32,
    eps_root: f32,
    weight_decay: f32,
    // 1 - lr * weight_decay
    decay: f32,
}

// What `prepare_group` derives each step (NAdamDerived).
struct Derived {
    grad_coef: f32,
    exp_avg_coef: f32,
    // 1 - beta2^t
    bias_correction2: f32,
}

// What `prepare_group` carries from step to step (NAdamRunning): the ln(beta1) and
// momentum_decay * ln(0.96) of the last step taken (mu_ln_beta1 is 1, no logarithm of a beta,
// before the first step), and mu_ln_excess, PyTorch's running ln(mu_1 ... mu_t) minus the
// closed form at the last step's values: 0 as long as beta1 and momentum_decay stay as they
// are.
struct Running {
    mu_ln_beta1: f32,
    mu_ln_base: f32,
    mu_ln_excess: f32,
}

struct Group {
    hyper: Hyper,
    derived: Derived,
    running: Running,
}

override MAXIMIZE: bool = false;
override DECOUPLED_WEIGHT_DECAY: bool = false;
// optax.nadam's coefficients (no momentum schedule).
override OPTAX_FORM: bool = false;

// The momentum cache mu_t = beta1 (1 - 0.5 * 0.96^(t momentum_decay)) and 1 - mu_t, each a
// sum of terms of one sign: with e = expm1(t ln_mu_base) <= 0, mu_t = beta1 / 2 * (1 - e) and
// 1 - mu_t = (1 - beta1) + beta1 / 2 * (1 + e).
fn nadam_mu(h: Hyper, step: f32) -> vec2<f32> {
    let e = expm1_nonpositive(step * h.ln_mu_base);
    let half_beta1 = 0.5 * h.beta1;
    return vec2(half_beta1 * (1.0 - e), h.one_minus_beta1 + half_beta1 * (1.0 + e));
}

// sum_{i=1..t} -ln(1 - q^i / 2) with q = 0.96^momentum_decay (ln_mu_base = ln q) in closed
// form: sum_k (1/2)^k / k * q^k (1 - q^(kt)) / (1 - q^k) (expand each log and swap the sums).
// 24 terms reach f32's precision; each factor comes from expm1 without cancellation; when q^k
// rounds to 1 (momentum_decay 0) the geometric sum is t.
fn nadam_schedule_sum(ln_mu_base: f32, step: f32) -> f32 {
    var sum = 0.0;
    var half_power = 1.0;
    for (var k = 1u; k <= 24u; k++) {
        half_power = half_power * 0.5;
        let ln_qk = f32(k) * ln_mu_base;
        let one_minus_qk = -expm1_nonpositive(ln_qk);
        let one_minus_qkt = -expm1_nonpositive(step * ln_qk);
        let geometric = select(step, (1.0 - one_minus_qk) * (one_minus_qkt / one_minus_qk), one_minus_qk > 0.0);
        sum = sum + half_power / f32(k) * geometric;
    }
    return sum;
}

// ln(mu_1 mu_2 ... mu_t) in closed form for constant beta1 and momentum_decay:
// t ln(beta1) + sum_{i=1..t} ln(1 - q^i / 2).
fn nadam_ln_mu_product(h: Hyper, step: f32) -> f32 {
    return step * h.ln_beta1 - nadam_schedule_sum(h.ln_mu_base, step);
}

// PyTorch's running ln(mu_1 ... mu_t), each mu_i from step i's own beta1 and momentum_decay,
// as the closed form at this step's values plus the excess. When the values change between
// steps t - 1 and t, the excess takes the difference of the two closed forms at t - 1:
// (t - 1) (ln beta1' - ln beta1) plus the schedule sums' difference when momentum_decay
// changed. A zero beta1 makes the product 0 for good: the excess is then -inf once beta1
// leaves 0 (while it is 0 the closed form is -inf already).
// -inf, ln(0), as bits: a test on bits survives compilers that assume finite math.
const NEG_INF_BITS: u32 = 0xff800000u;

fn nadam_ln_excess(h: Hyper, r: Running, step: f32) -> f32 {
    let started = r.mu_ln_beta1 <= 0.0;
    var excess = r.mu_ln_excess;
    if started && (r.mu_ln_beta1 != h.ln_beta1 || r.mu_ln_base != h.ln_mu_base) {
        let before = step - 1.0;
        if bitcast<u32>(r.mu_ln_beta1) == NEG_INF_BITS {
            excess = bitcast<f32>(NEG_INF_BITS);
        } else if bitcast<u32>(h.ln_beta1) != NEG_INF_BITS {
            var change = before * (r.mu_ln_beta1 - h.ln_beta1);
            if r.mu_ln_base != h.ln_mu_base {
                change = change + (nadam_schedule_sum(h.ln_mu_base, before) - nadam_schedule_sum(r.mu_ln_base, before));
            }
            excess = excess + change;
        }
    }
    return excess;
}

fn prepare_group(g: u32, step: f32) {
    let h = groups[g].hyper;
    groups[g].derived.bias_correction2 = bias_correction(h.ln_beta2, step);
    if OPTAX_FORM {
        groups[g].derived.grad_coef = h.lr * h.one_minus_beta1 / bias_correction(h.ln_beta1, step);
        groups[g].derived.exp_avg_coef = h.lr * h.beta1 / bias_correction(h.ln_beta1, step + 1.0);
        return;
    }
    let mu = nadam_mu(h, step);
    let mu_next = nadam_mu(h, step + 1.0);
    let excess = nadam_ln_excess(h, groups[g].running, step);
    groups[g].running = Running(h.ln_beta1, h.ln_mu_base, excess);
    // 1 - mu_product and 1 - mu_product * mu_{t+1}.
    let one_minus_product = -expm1_nonpositive(nadam_ln_mu_product(h, step) + excess);
    let one_minus_product_next = -expm1_nonpositive(nadam_ln_mu_product(h, step + 1.0) + excess);
    groups[g].derived.grad_coef = h.lr * mu.y / one_minus_product;
    groups[g].derived.exp_avg_coef = h.lr * mu_next.x / one_minus_product_next;
}

fn nadam_math(
    p: ptr<function, vec4<f32>>,
    grad: vec4<f32>,
    exp_avg: ptr<function, vec4<f32>>,
    exp_avg_sq: ptr<function, vec4<f32>>,
    h: Hyper,
    d: Derived,
) {
    let g = adam_moments(
        p,
        grad,
        exp_avg,
        exp_avg_sq,
        Moments(h.weight_decay, h.decay, h.one_minus_beta1, h.beta2, h.one_minus_beta2),
    );
    let denom = sqrt(*exp_avg_sq / d.bias_correction2 + h.eps_root) + h.eps;
    *p = *p - d.grad_coef * (g / denom);
    *p = *p - d.exp_avg_coef * (*exp_avg / denom);
}

fn uses_state(slot: u32) -> bool {
    return slot < 2u;
}

fn step_math(e: ptr<function, Elements>, group: Group, c: Control) {
    var p = (*e).param;
    var exp_avg = (*e).state0;
    var exp_avg_sq = (*e).state1;
    nadam_math(&p, (*e).grad, &exp_avg, &exp_avg_sq, group.hyper, group.derived);
    (*e).param = p;
    (*e).state0 = exp_avg;
    (*e).state1 = exp_avg_sq;
}
