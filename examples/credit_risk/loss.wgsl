// The batch gather and the loss of the credit-default network (examples/credit_risk/mlp.rs).

struct Batch {
    // First position in `order` of this batch.
    start: u32,
    rows: u32,
    features: u32,
    // Focal loss: gamma (0 with alpha < 0 is binary cross-entropy) and the positives' weight
    // alpha (negatives get 1 - alpha; no weighting when alpha < 0), as torchvision's
    // sigmoid_focal_loss.
    gamma: f32,
    alpha: f32,
}

@group(0) @binding(0) var<uniform> batch: Batch;
@group(0) @binding(1) var<storage, read> order: array<u32>;
@group(0) @binding(2) var<storage, read> data: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// x[i, f] = data[order[start + i], f]; y[i] = labels[order[start + i]].
@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) id: vec3<u32>) {
    let e = id.x;
    if e >= batch.rows * batch.features {
        return;
    }
    let i = e / batch.features;
    let f = e % batch.features;
    let record = order[batch.start + i];
    x[e] = data[record * batch.features + f];
    if f == 0u {
        y[i] = labels[record];
    }
}

@group(0) @binding(6) var<storage, read> logits: array<f32>;
@group(0) @binding(7) var<storage, read_write> dlogits: array<f32>;
// [0]: the batch's mean loss.
@group(0) @binding(8) var<storage, read_write> loss: array<f32>;

var<workgroup> partial: array<f32, 256>;

// log(1 + exp(x)) without overflow.
fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

// Focal loss (Lin et al. 2017) from logits, as torchvision.ops.sigmoid_focal_loss with
// reduction "mean": FL = alpha_t (1 - p_t)^gamma CE, CE = softplus(-s), s = z for a positive,
// -z for a negative, 1 - p_t = sigmoid(-s). Its derivative in s is
// -alpha_t q^gamma (gamma (1 - q) CE + q) with q = 1 - p_t. One workgroup: every sample's
// gradient (divided by the batch size: the mean), and the mean loss.
@compute @workgroup_size(256)
fn focal_loss(@builtin(local_invocation_index) lane: u32) {
    var sum = 0.0;
    let n = f32(batch.rows);
    for (var i = lane; i < batch.rows; i += 256u) {
        let positive = y[i] > 0.5;
        let s = select(-logits[i], logits[i], positive);
        let ce = softplus(-s);
        let q = sigmoid(-s);
        var alpha_t = 1.0;
        if batch.alpha >= 0.0 {
            alpha_t = select(1.0 - batch.alpha, batch.alpha, positive);
        }
        // q^gamma, with 0^0 = 1.
        let modulating = select(pow(q, batch.gamma), 1.0, batch.gamma == 0.0);
        sum += alpha_t * modulating * ce;
        let ds = -alpha_t * modulating * (batch.gamma * (1.0 - q) * ce + q);
        dlogits[i] = select(-ds, ds, positive) / n;
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width /= 2u) {
        if lane < width {
            partial[lane] += partial[lane + width];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        loss[0] = partial[0] / n;
    }
}
