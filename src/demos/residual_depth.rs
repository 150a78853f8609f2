//! Chapter 9: a deep stack trained with and without residual connections;
//! chapter 10: the residual stack with and without layer normalization.

use addmul_core::{Init, Layer, Matrix, Param, Parameters, ParametersExt, Result, rng, visit_child, visit_child_mut};
use addmul_layernorm::LayerNorm;
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

/// A block that normalizes its input first: `W relu(LN(x)) + b`, the
/// pre-norm wiring of GPT-2 once a residual connection goes around it.
#[derive(Debug, Clone)]
struct NormBlock {
    norm: LayerNorm<f64>,
    block: Block,
}

impl Layer<f64> for NormBlock {
    type Cache = (addmul_layernorm::LayerNormCache<f64>, (Matrix<f64>, Matrix<f64>));
    fn forward(&self, x: &Matrix<f64>) -> Result<(Matrix<f64>, Self::Cache)> {
        let (h, norm) = self.norm.forward(x)?;
        let (y, block) = self.block.forward(&h)?;
        Ok((y, (norm, block)))
    }
    fn backward(&mut self, (norm, block): &Self::Cache, dy: &Matrix<f64>) -> Result<Matrix<f64>> {
        let dh = self.block.backward(block, dy)?;
        self.norm.backward(norm, &dh)
    }
}

impl Parameters<f64> for NormBlock {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
        visit_child("ln", &self.norm, f);
        self.block.visit(f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
        visit_child_mut("ln", &mut self.norm, f);
        self.block.visit_mut(f);
    }
}

/// How the blocks are wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wiring {
    /// One block after another.
    Plain,
    /// `x + block(x)` (chapter 9).
    Residual,
    /// `x + block(LN(x))`: residual with layer normalization (chapter 10).
    PreNorm,
}

/// Blocks with or without the residual connection around each.
#[derive(Debug, Clone)]
enum Blocks {
    Plain(Vec<Block>),
    Residual(Vec<Residual<Block>>),
    PreNorm(Vec<Residual<NormBlock>>),
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
    /// How the blocks were wired.
    pub wiring: Wiring,
    /// The size (root mean square) of the stream after each block, at
    /// initialisation, over the whole data set.
    pub stream_rms: Vec<f64>,
    /// The epoch (from 1) in which the training loss stopped being finite;
    /// the run stopped there.
    pub diverged_at: Option<usize>,
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
    fn new(config: &DepthConfig, wiring: Wiring) -> Self {
        // PyTorch's default for linear layers: uniform in ±1/sqrt(fan_in).
        let init = Init::Uniform { bound: 1.0 / (config.width as f64).sqrt() };
        let mut r = rng(config.seed);
        let input = Linear::new(4, config.width, true, Init::Uniform { bound: 0.5 }, &mut r);
        let plain: Vec<Block> = (0..config.depth)
            .map(|_| Block { linear: Linear::new(config.width, config.width, true, init, &mut r) })
            .collect();
        let output = Linear::new(config.width, 2, true, init, &mut r);
        let blocks = match wiring {
            Wiring::Plain => Blocks::Plain(plain),
            Wiring::Residual => Blocks::Residual(plain.into_iter().map(Residual::new).collect()),
            Wiring::PreNorm => Blocks::PreNorm(
                plain
                    .into_iter()
                    .map(|block| Residual::new(NormBlock { norm: LayerNorm::new(config.width), block }))
                    .collect(),
            ),
        };
        DeepStack { input, blocks, output }
    }

    /// Mean cross-entropy over the batch, with the backward pass, and the
    /// size (root mean square) of the stream after each block.
    fn train_step(&mut self, x: &Matrix<f64>, targets: &[usize]) -> Result<(f64, Vec<f64>)> {
        /// Runs the blocks, the head (which returns the loss and the
        /// gradient at its input), and the blocks' backward passes.
        fn through<L: Layer<f64>>(
            bs: &mut [L],
            mut h: Matrix<f64>,
            head: impl FnOnce(&Matrix<f64>) -> Result<(f64, Matrix<f64>)>,
        ) -> Result<(f64, Matrix<f64>, Vec<f64>)> {
            let (mut caches, mut rms) = (Vec::with_capacity(bs.len()), Vec::with_capacity(bs.len()));
            for b in bs.iter() {
                let (y, c) = b.forward(&h)?;
                h = y;
                rms.push((h.norm_squared() / h.len() as f64).sqrt());
                caches.push(c);
            }
            let (loss, mut g) = head(&h)?;
            for (b, c) in bs.iter_mut().zip(&caches).rev() {
                g = b.backward(c, &g)?;
            }
            Ok((loss, g, rms))
        }
        let (h, input_cache) = self.input.forward(x)?;
        let output = &mut self.output;
        let head = |h: &Matrix<f64>| -> Result<(f64, Matrix<f64>)> {
            let (scores, cache) = output.forward(h)?;
            let (loss, ce) = cross_entropy(&scores, targets)?;
            Ok((loss, output.backward(&cache, &ce.backward())?))
        };
        let (loss, g, rms) = match &mut self.blocks {
            Blocks::Plain(bs) => through(bs, h, head)?,
            Blocks::Residual(bs) => through(bs, h, head)?,
            Blocks::PreNorm(bs) => through(bs, h, head)?,
        };
        self.input.backward(&input_cache, &g)?;
        Ok((loss, rms))
    }

    fn block_grad_norms(&self) -> Vec<f64> {
        let norm = |b: &Block| b.linear.weight().grad().norm();
        match &self.blocks {
            Blocks::Plain(bs) => bs.iter().map(norm).collect(),
            Blocks::Residual(bs) => bs.iter().map(|b| norm(b.inner())).collect(),
            Blocks::PreNorm(bs) => bs.iter().map(|b| norm(&b.inner().block)).collect(),
        }
    }
}

impl Parameters<f64> for DeepStack {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
        visit_child("input", &self.input, f);
        match &self.blocks {
            Blocks::Plain(bs) => bs.iter().enumerate().for_each(|(i, b)| visit_child(&format!("blocks.{i}"), b, f)),
            Blocks::Residual(bs) => bs.iter().enumerate().for_each(|(i, b)| visit_child(&format!("blocks.{i}"), b, f)),
            Blocks::PreNorm(bs) => bs.iter().enumerate().for_each(|(i, b)| visit_child(&format!("blocks.{i}"), b, f)),
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
            Blocks::PreNorm(bs) => {
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
/// A numeric error from training (e.g. an invalid configuration, or a loss
/// that stops being finite).
pub fn residual_depth(config: &DepthConfig) -> Result<[DepthRun; 2]> {
    let (x, targets) = leaf_flower_data(config)?;
    let run = |wiring| {
        let r = train(config, wiring, &x, &targets)?;
        match r.diverged_at {
            Some(epoch) => Err(addmul_core::Error::NonFinite {
                what: "deep stack training loss",
                value: f64::NAN,
                row: epoch,
                col: 0,
            }),
            None => Ok(r),
        }
    };
    Ok([run(Wiring::Plain)?, run(Wiring::Residual)?])
}

/// Trains the same residual stack without and with layer normalization
/// (pre-norm: `x + block(LN(x))`), same data, weights and optimizer. A run
/// whose loss stops being finite stops there ([`DepthRun::diverged_at`]).
///
/// # Errors
/// A numeric error from training (e.g. an invalid configuration).
pub fn layer_norm_depth(config: &DepthConfig) -> Result<[DepthRun; 2]> {
    let (x, targets) = leaf_flower_data(config)?;
    Ok([train(config, Wiring::Residual, &x, &targets)?, train(config, Wiring::PreNorm, &x, &targets)?])
}

/// The standardized leaf/flower examples (one column each) and their classes.
fn leaf_flower_data(config: &DepthConfig) -> Result<(Matrix<f64>, Vec<usize>)> {
    let data = generate(800, &mut rng(config.seed));
    let scale = Standardizer::fit(&data)?;
    Ok((scale.matrix(&data), data.iter().map(|e| e.class.index()).collect()))
}

fn train(config: &DepthConfig, wiring: Wiring, x_all: &Matrix<f64>, targets: &[usize]) -> Result<DepthRun> {
    let mut net = DeepStack::new(config, wiring);
    let mut sgd = Sgd::with_momentum(config.lr, config.momentum)?;
    let mut shuffle = rng(config.seed ^ 1);
    net.zero_grads();
    let (_, stream_rms) = net.train_step(x_all, targets)?;
    let grad_norm_by_layer = net.block_grad_norms();
    let (mut first_layer_grad_norm, mut train_loss, mut diverged_at) = (Vec::new(), Vec::new(), None);
    for epoch in 0..config.epochs {
        let mut total = 0.0;
        for (i, batch) in shuffled_batches(targets.len(), 32, &mut shuffle)?.iter().enumerate() {
            let x = Matrix::from_fn(4, batch.len(), |r, c| x_all[(r, batch[c])]);
            let t: Vec<usize> = batch.iter().map(|&i| targets[i]).collect();
            net.zero_grads();
            total += net.train_step(&x, &t)?.0 * batch.len() as f64;
            if i == 0 {
                first_layer_grad_norm.push(net.block_grad_norms()[0]);
            }
            sgd.step(&mut net)?;
        }
        let mean = total / targets.len() as f64;
        if !mean.is_finite() {
            diverged_at = Some(epoch + 1);
            break;
        }
        train_loss.push(mean);
    }
    Ok(DepthRun {
        residual: wiring != Wiring::Plain,
        wiring,
        stream_rms,
        grad_norm_by_layer,
        first_layer_grad_norm,
        train_loss,
        diverged_at,
    })
}
