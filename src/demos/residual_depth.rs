//! Chapter 9: a deep stack trained with and without residual connections.

use addmul_core::{Init, Layer, Matrix, Param, Parameters, ParametersExt, Result, rng, visit_child, visit_child_mut};
use addmul_leafflower::{Standardizer, generate};
use addmul_nn::{Activation, Linear};
use addmul_residual::Residual;
use addmul_softmax::cross_entropy;
use addmul_train::{Optimizer, Sgd, shuffled_batches};

/// One layer of the stack: `W relu(x) + b`.
#[derive(Debug, Clone)]
struct Block {
    linear: Linear<f64>,
}

impl Layer<f64> for Block {
    type Cache = (Matrix<f64>, Matrix<f64>);
    fn forward(&self, x: &Matrix<f64>) -> Result<(Matrix<f64>, Self::Cache)> {
        let a = Activation::Relu.map(x);
        let (y, lin) = self.linear.forward(&a)?;
        Ok((y, (x.clone(), lin)))
    }
    fn backward(&mut self, (x, lin): &Self::Cache, dy: &Matrix<f64>) -> Result<Matrix<f64>> {
        let da = self.linear.backward(lin, dy)?;
        Activation::Relu.backward_from_input(x, &da)
    }
}

impl Parameters<f64> for Block {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
        self.linear.visit(f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
        self.linear.visit_mut(f);
    }
}

/// Blocks with or without the residual connection around each.
#[derive(Debug, Clone)]
enum Blocks {
    Plain(Vec<Block>),
    Residual(Vec<Residual<Block>>),
}

/// `input → depth blocks → output`, 4 inputs, 2 scores.
#[derive(Debug, Clone)]
struct DeepStack {
    input: Linear<f64>,
    blocks: Blocks,
    output: Linear<f64>,
}

/// What one configuration did.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthRun {
    /// Whether the blocks had residual connections.
    pub residual: bool,
    /// The gradient norm of each block's weight at initialisation, first
    /// block first, for one batch.
    pub grad_norm_by_layer: Vec<f64>,
    /// The gradient norm of the first block's weight at every epoch's first
    /// step.
    pub first_layer_grad_norm: Vec<f64>,
    /// Mean training loss of every epoch.
    pub train_loss: Vec<f64>,
}

/// Settings of the experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DepthConfig {
    /// Number of blocks.
    pub depth: usize,
    /// Width of every block.
    pub width: usize,
    /// Epochs of SGD with momentum.
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// Momentum of the SGD.
    pub momentum: f64,
    /// Seed for data and weights (the same for both runs).
    pub seed: u64,
}

impl Default for DepthConfig {
    fn default() -> Self {
        DepthConfig { depth: 20, width: 16, epochs: 60, lr: 0.02, momentum: 0.9, seed: 3 }
    }
}

impl DeepStack {
    fn new(config: &DepthConfig, residual: bool) -> Self {
        // PyTorch's default for linear layers: uniform in ±1/sqrt(fan_in).
        let init = Init::Uniform { bound: 1.0 / (config.width as f64).sqrt() };
        let mut r = rng(config.seed);
        let input = Linear::new(4, config.width, true, Init::Uniform { bound: 0.5 }, &mut r);
        let plain: Vec<Block> = (0..config.depth)
            .map(|_| Block { linear: Linear::new(config.width, config.width, true, init, &mut r) })
            .collect();
        let output = Linear::new(config.width, 2, true, init, &mut r);
        let blocks = if residual {
            Blocks::Residual(plain.into_iter().map(Residual::new).collect())
        } else {
            Blocks::Plain(plain)
        };
        DeepStack { input, blocks, output }
    }

    /// Mean cross-entropy over the batch, with the backward pass.
    fn train_step(&mut self, x: &Matrix<f64>, targets: &[usize]) -> Result<f64> {
        let (mut h, input_cache) = self.input.forward(x)?;
        let mut caches = Vec::new();
        match &self.blocks {
            Blocks::Plain(bs) => bs.iter().try_for_each(|b| b.forward(&h).map(|(y, c)| (h = y, caches.push(c)).0))?,
            Blocks::Residual(bs) => {
                bs.iter().try_for_each(|b| b.forward(&h).map(|(y, c)| (h = y, caches.push(c)).0))?
            }
        }
        let (scores, out_cache) = self.output.forward(&h)?;
        let (loss, ce) = cross_entropy(&scores, targets)?;
        let mut g = self.output.backward(&out_cache, &ce.backward())?;
        match &mut self.blocks {
            Blocks::Plain(bs) => {
                for (b, c) in bs.iter_mut().zip(&caches).rev() {
                    g = b.backward(c, &g)?;
                }
            }
            Blocks::Residual(bs) => {
                for (b, c) in bs.iter_mut().zip(&caches).rev() {
                    g = b.backward(c, &g)?;
                }
            }
        }
        self.input.backward(&input_cache, &g)?;
        Ok(loss)
    }

    fn block_grad_norms(&self) -> Vec<f64> {
        let norm = |b: &Block| b.linear.weight().grad().norm();
        match &self.blocks {
            Blocks::Plain(bs) => bs.iter().map(norm).collect(),
            Blocks::Residual(bs) => bs.iter().map(|b| norm(b.inner())).collect(),
        }
    }
}

impl Parameters<f64> for DeepStack {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
        visit_child("input", &self.input, f);
        match &self.blocks {
            Blocks::Plain(bs) => bs.iter().enumerate().for_each(|(i, b)| visit_child(&format!("blocks.{i}"), b, f)),
            Blocks::Residual(bs) => bs.iter().enumerate().for_each(|(i, b)| visit_child(&format!("blocks.{i}"), b, f)),
        }
        visit_child("output", &self.output, f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
        visit_child_mut("input", &mut self.input, f);
        match &mut self.blocks {
            Blocks::Plain(bs) => {
                bs.iter_mut().enumerate().for_each(|(i, b)| visit_child_mut(&format!("blocks.{i}"), b, f))
            }
            Blocks::Residual(bs) => {
                bs.iter_mut().enumerate().for_each(|(i, b)| visit_child_mut(&format!("blocks.{i}"), b, f))
            }
        }
        visit_child_mut("output", &mut self.output, f);
    }
}

/// Trains the same deep stack (same data, same initial weights, same
/// optimizer) without and with residual connections, on the leaf/flower data.
///
/// # Errors
/// A numeric error from training (e.g. an invalid configuration).
pub fn residual_depth(config: &DepthConfig) -> Result<[DepthRun; 2]> {
    let data = generate(800, &mut rng(config.seed));
    let scale = Standardizer::fit(&data)?;
    let x_all = scale.matrix(&data);
    let targets: Vec<usize> = data.iter().map(|e| e.class.index()).collect();
    let run = |residual: bool| -> Result<DepthRun> {
        let mut net = DeepStack::new(config, residual);
        let mut sgd = Sgd::with_momentum(config.lr, config.momentum)?;
        let mut shuffle = rng(config.seed ^ 1);
        net.zero_grads();
        net.train_step(&x_all, &targets)?;
        let grad_norm_by_layer = net.block_grad_norms();
        let (mut first_layer_grad_norm, mut train_loss) = (Vec::new(), Vec::new());
        for _ in 0..config.epochs {
            let mut total = 0.0;
            for (i, batch) in shuffled_batches(data.len(), 32, &mut shuffle)?.iter().enumerate() {
                let x = Matrix::from_fn(4, batch.len(), |r, c| x_all[(r, batch[c])]);
                let t: Vec<usize> = batch.iter().map(|&i| targets[i]).collect();
                net.zero_grads();
                total += net.train_step(&x, &t)? * batch.len() as f64;
                if i == 0 {
                    first_layer_grad_norm.push(net.block_grad_norms()[0]);
                }
                sgd.step(&mut net)?;
            }
            let mean = total / data.len() as f64;
            if !mean.is_finite() {
                return Err(addmul_core::Error::NonFinite {
                    what: "deep stack training loss",
                    value: mean,
                    row: 0,
                    col: 0,
                });
            }
            train_loss.push(mean);
        }
        Ok(DepthRun { residual, grad_norm_by_layer, first_layer_grad_norm, train_loss })
    };
    Ok([run(false)?, run(true)?])
}
