//! Muon on the host ([`MuonConfig`]): Newton-Schulz orthogonalization in f32, one matrix at a
//! time, the oracle for the device's batched iterations.

use super::math::{bias_correction, lerp};
use crate::error::{Error, Result};
use crate::matrix::NormFloor;
use crate::optim::MuonConfig;

/// A row-major `rows x cols` matrix of f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub values: Vec<f32>,
}

impl Matrix {
    /// The transpose.
    pub fn transpose(&self) -> Matrix {
        let values = (0..self.cols)
            .flat_map(|j| (0..self.rows).map(move |i| (i, j)))
            .map(|(i, j)| self.values[i * self.cols + j])
            .collect();
        Matrix {
            rows: self.cols,
            cols: self.rows,
            values,
        }
    }

    /// `alpha (self @ other) + beta input` (`torch.addmm(input, self, other, beta, alpha)`),
    /// each dot product summed in f32 from the first term.
    fn addmm(&self, other: &Matrix, input: &Matrix, beta: f32, alpha: f32) -> Matrix {
        debug_assert_eq!(self.cols, other.rows);
        let values = (0..self.rows)
            .flat_map(|i| (0..other.cols).map(move |j| (i, j)))
            .map(|(i, j)| {
                let dot = (0..self.cols).fold(0.0f32, |sum, k| {
                    sum + self.values[i * self.cols + k] * other.values[k * other.cols + j]
                });
                beta * input.values[i * input.cols + j] + alpha * dot
            })
            .collect();
        Matrix {
            rows: self.rows,
            cols: other.cols,
            values,
        }
    }
}

/// `torch.optim.Muon`'s `_zeropower_via_newtonschulz` in f32 (PyTorch's runs in bfloat16):
/// transposed when taller than wide, divided by `max(||X||_F, eps)`, `steps` iterations of
/// `G = X X^T; X <- a X + (b G + c G G) X`, transposed back.
pub fn newton_schulz(update: &Matrix, coefficients: [f32; 3], steps: u32, eps: f32) -> Matrix {
    newton_schulz_with_floor(update, coefficients, steps, eps, NormFloor::Max)
}

/// [`newton_schulz`] dividing by the norm as `floor` says (`optax.contrib.muon`'s
/// `||X||_F + eps` with [`NormFloor::Add`]).
pub fn newton_schulz_with_floor(
    update: &Matrix,
    coefficients: [f32; 3],
    steps: u32,
    eps: f32,
    floor: NormFloor,
) -> Matrix {
    let [a, b, c] = coefficients;
    let tall = update.rows > update.cols;
    let mut x = if tall {
        update.transpose()
    } else {
        update.clone()
    };
    let norm = x.values.iter().fold(0.0f32, |sum, v| sum + v * v).sqrt();
    let scale = match floor {
        NormFloor::Max => norm.max(eps),
        NormFloor::Add => norm + eps,
    };
    x.values.iter_mut().for_each(|v| *v /= scale);
    for _ in 0..steps {
        let gram = x.addmm(&x.transpose(), &x, 0.0, 1.0);
        let gram_update = gram.addmm(&gram, &gram, b, c);
        x = gram_update.addmm(&x, &x, a, 1.0);
    }
    if tall {
        x.transpose()
    } else {
        x
    }
}

/// Muon over 2-D parameters on the host: `torch.optim.Muon`'s step with f32 math, its state
/// `momentum_buffer` per parameter.
#[derive(Clone, Debug)]
pub struct Muon {
    config: MuonConfig,
    shapes: Vec<(usize, usize)>,
    momentum_buffers: Vec<Vec<f32>>,
    // Steps taken (Optax's form corrects the momentum's bias by it).
    step: u32,
}

impl Muon {
    /// Muon over parameters of these shapes, each of two dimensions
    /// ([`Error::NotAMatrix`] otherwise); the configuration is validated
    /// ([`MuonConfig::validate`]).
    pub fn new(config: &MuonConfig, shapes: &[Vec<usize>]) -> Result<Self> {
        config.validate()?;
        let shapes = shapes
            .iter()
            .map(|s| MuonConfig::check_shape(s))
            .collect::<Result<Vec<_>>>()?;
        Ok(Muon {
            config: config.clone(),
            momentum_buffers: shapes.iter().map(|&(r, c)| vec![0.0; r * c]).collect(),
            shapes,
            step: 0,
        })
    }

    /// One step of every parameter (row-major values) from its gradient. Lengths are checked
    /// before anything changes.
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>]) -> Result<()> {
        let n = self.shapes.len();
        for (what, actual) in [("parameters", params.len()), ("gradients", grads.len())] {
            if actual != n {
                return Err(Error::WrongLength {
                    what,
                    expected: n,
                    actual,
                });
            }
        }
        for (i, (&(rows, cols), (p, g))) in
            self.shapes.iter().zip(params.iter().zip(grads)).enumerate()
        {
            for len in [p.len(), g.len()] {
                if len != rows * cols {
                    return Err(Error::LengthMismatch {
                        index: i,
                        param_len: (rows * cols) as u64,
                        grad_len: len as u64,
                    });
                }
            }
        }
        self.step += 1;
        let c = &self.config;
        let momentum = c.momentum as f32;
        let one_minus_momentum = (1.0 - c.momentum) as f32;
        let decay = (1.0 - c.lr * c.weight_decay) as f32;
        let coefficients = c.ns_coefficients.map(|v| v as f32);
        // Optax's bias corrections, as the device derives them from the step.
        let ln_momentum = c.momentum.ln() as f32;
        let correction = bias_correction(ln_momentum, self.step as f32);
        let next_correction = bias_correction(ln_momentum, self.step as f32 + 1.0);
        for (i, &(rows, cols)) in self.shapes.iter().enumerate() {
            let (p, g, buf) = (&mut params[i], &grads[i], &mut self.momentum_buffers[i]);
            let values: Vec<f32> = if c.optax_form {
                for (b, &g) in buf.iter_mut().zip(g) {
                    *b = one_minus_momentum * g + momentum * *b;
                }
                g.iter()
                    .zip(buf.iter())
                    .map(|(&g, &b)| match c.nesterov {
                        true => {
                            momentum * (b / next_correction) + one_minus_momentum * (g / correction)
                        }
                        false => b / correction,
                    })
                    .collect()
            } else {
                for (b, &g) in buf.iter_mut().zip(g) {
                    *b = lerp(*b, g, one_minus_momentum);
                }
                match c.nesterov {
                    true => g
                        .iter()
                        .zip(buf.iter())
                        .map(|(&g, &b)| lerp(g, b, momentum))
                        .collect(),
                    false => buf.clone(),
                }
            };
            let update = Matrix { rows, cols, values };
            let ortho = newton_schulz_with_floor(
                &update,
                coefficients,
                c.ns_steps,
                c.eps as f32,
                c.norm_floor(),
            );
            if c.optax_form {
                let (neg_lr, wd) = (-c.lr as f32, c.weight_decay as f32);
                let scale = c.adjust_lr.ratio(rows, cols) as f32;
                for (p, o) in p.iter_mut().zip(&ortho.values) {
                    *p += neg_lr * (scale * o + wd * *p);
                }
                continue;
            }
            let step = -(c.adjusted_lr(rows, cols)) as f32;
            for (p, o) in p.iter_mut().zip(&ortho.values) {
                *p *= decay;
                *p += step * o;
            }
        }
        Ok(())
    }

    /// The momentum buffer of parameter `index`.
    pub fn momentum_buffer(&self, index: usize) -> Result<&[f32]> {
        self.momentum_buffers
            .get(index)
            .map(Vec::as_slice)
            .ok_or(Error::NoSuchTensor {
                owner: "Muon reference",
                index,
                count: self.shapes.len(),
            })
    }
}
