//! Data-parallel training: one copy of the model per thread, each running
//! forward and backward on its share of a batch, then one update.
//!
//! A step of [`DataParallel`] goes:
//!
//! 1. [`ParallelStep::accumulate`] (once per micro-batch): every replica
//!    takes a consecutive share of the batch's items (see
//!    [`DataParallel::shares`]) and adds its share's gradient into its own
//!    parameters, each replica a job on the shared thread pool;
//! 2. [`ParallelStep::update`]: the replicas' gradients are summed into the
//!    first replica, parameter by parameter and always in replica order (so
//!    the result never depends on which thread finished first), the global
//!    norm is measured and the gradient clipped, AdamW takes its step, and
//!    each parameter's new value is copied back to the other replicas while
//!    it is still in cache. Every pass is shared among the threads by
//!    parameter; every gradient is left at zero for the next step.
//!
//! The model and its loss are the caller's: anything that is
//! [`Parameters<f32>`] can be trained, and the closure given to
//! [`ParallelStep::accumulate`] runs the model's own forward and backward.
//! The results are the same, bit for bit, as summing the replicas'
//! gradients one after the other on one thread and calling
//! [`clip_grad_norm`](crate::clip_grad_norm) and [`Optimizer::step`], except
//! that the norm's partial sums are added in groups (one per thread).
//!
//! # Example
//! ```
//! use addmul_core::{Matrix, Param, Parameters, visit_child, visit_child_mut};
//! use addmul_train::{AdamW, AdamWConfig, DataParallel};
//!
//! // A "model" with one weight w, trained on the loss Σ (w - x)² / n.
//! #[derive(Clone)]
//! struct Mean { w: Param<f32> }
//! impl Parameters<f32> for Mean {
//!     fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f32>)) { f("w", &self.w) }
//!     fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f32>)) { f("w", &mut self.w) }
//! }
//! let data = [1.0f32, 2.0, 3.0, 6.0];
//! let mut dp = DataParallel::new(Mean { w: Param::vector(vec![0.0]) }, 2);
//! let mut adam = AdamW::new(AdamWConfig { lr: 0.1, weight_decay: 0.0, ..AdamWConfig::default() })?;
//! for _ in 0..200 {
//!     let mut step = dp.step();
//!     let shares = step.shares(data.len());
//!     let losses = step.accumulate(&shares, |_, model, items| {
//!         let w = model.w.value()[0];
//!         let n = data.len() as f32;
//!         for &x in &data[items] {
//!             model.w.grad_mut()[0] += 2.0 * (w - x) / n;
//!         }
//!         Ok::<_, addmul_core::Error>(0.0)
//!     })?;
//!     assert_eq!(losses.len(), 2);
//!     step.update(&mut adam, 0.0)?;
//! }
//! assert!((dp.model().w.value()[0] - 3.0).abs() < 1e-2); // the mean
//! # Ok::<(), addmul_core::Error>(())
//! ```

use std::ops::Range;

use addmul_core::parallel::{run_balanced, run_each};
use addmul_core::{Matrix, Param, Parameters, ParametersExt, Result, sum_of_squares};

use crate::{AdamW, clip_factor};

/// A model replicated once per thread for data-parallel training. The
/// replicas hold the same weights between steps.
#[derive(Debug, Clone)]
pub struct DataParallel<M> {
    replicas: Vec<M>,
    /// Every replica's gradients are zero (the last update cleared them).
    grads_clear: bool,
}

impl<M: Parameters<f32> + Clone + Send + Sync> DataParallel<M> {
    /// `threads` copies of `model` (at least one).
    pub fn new(model: M, threads: usize) -> Self {
        DataParallel { replicas: vec![model; threads.max(1)], grads_clear: false }
    }

    /// Replicas, that is threads.
    pub fn threads(&self) -> usize {
        self.replicas.len()
    }

    /// The model (the first replica; the others hold the same weights).
    pub fn model(&self) -> &M {
        &self.replicas[0]
    }

    /// The trained model.
    pub fn into_model(mut self) -> M {
        self.replicas.swap_remove(0)
    }

    /// Puts `values` (as [`ParametersExt::snapshot`] takes them) into every
    /// replica.
    ///
    /// # Errors
    /// As [`ParametersExt::restore`].
    pub fn restore(&mut self, values: &[Matrix<f32>]) -> Result<()> {
        self.replicas.iter_mut().try_for_each(|r| r.restore(values))
    }

    /// How `n` items are shared among the replicas: consecutive ranges whose
    /// sizes differ by at most one, one per replica while there are items
    /// (replica `w` takes `shares[w]`).
    pub fn shares(&self, n: usize) -> Vec<Range<usize>> {
        let threads = self.replicas.len().min(n);
        let mut start = 0;
        (0..threads)
            .map(|w| {
                let len = n / threads + usize::from(w < n % threads);
                start += len;
                start - len..start
            })
            .collect()
    }

    /// Runs `work(replica index, replica, its share)` for every share, each
    /// as a job on the shared thread pool, and returns the results in
    /// replica order: for work that changes no weights, such as evaluation.
    ///
    /// # Errors
    /// The first error of a job, in replica order.
    pub fn map<R, E, F>(&self, shares: &[Range<usize>], work: F) -> std::result::Result<Vec<R>, E>
    where
        R: Send,
        E: Send,
        F: Fn(usize, &M, Range<usize>) -> std::result::Result<R, E> + Sync + Send,
    {
        let jobs: Vec<_> = self.replicas.iter().zip(shares.iter().cloned()).enumerate().collect();
        run_each(jobs, |(w, (model, share))| work(w, model, share)).into_iter().collect()
    }

    /// Starts a training step (see the module documentation).
    pub fn step(&mut self) -> ParallelStep<'_, M> {
        let zero_first = !std::mem::take(&mut self.grads_clear);
        ParallelStep { dp: self, zero_first }
    }
}

/// One training step of a [`DataParallel`] model: any number of
/// [`accumulate`](ParallelStep::accumulate) passes, then
/// [`update`](ParallelStep::update). A step dropped without its update (say,
/// after a non-finite loss) leaves the weights as they were; the next step
/// clears the gradients it left.
#[derive(Debug)]
pub struct ParallelStep<'a, M> {
    dp: &'a mut DataParallel<M>,
    /// The gradients may hold something from an unfinished step: clear them
    /// before the first pass.
    zero_first: bool,
}

impl<M: Parameters<f32> + Clone + Send + Sync> ParallelStep<'_, M> {
    /// As [`DataParallel::shares`].
    pub fn shares(&self, n: usize) -> Vec<Range<usize>> {
        self.dp.shares(n)
    }

    /// The model (the first replica).
    pub fn model(&self) -> &M {
        self.dp.model()
    }

    // ANCHOR: accumulate
    /// Runs `work(replica index, replica, its share)` for every share, each
    /// as a job on the shared thread pool, and returns the results (say,
    /// each share's loss) in replica order. `work` runs the model's forward
    /// and backward pass on its share, **adding** the gradient (scaled as the
    /// caller wants the replicas' sum to come out) into the replica's
    /// parameters.
    ///
    /// # Errors
    /// The first error of a job, in replica order.
    pub fn accumulate<R, E, F>(&mut self, shares: &[Range<usize>], work: F) -> std::result::Result<Vec<R>, E>
    where
        R: Send,
        E: Send,
        F: Fn(usize, &mut M, Range<usize>) -> std::result::Result<R, E> + Sync + Send,
    {
        let zero = std::mem::take(&mut self.zero_first);
        if zero {
            // Replicas without a share are cleared here, the others in
            // their own jobs (in parallel).
            self.dp.replicas.iter_mut().skip(shares.len()).for_each(|r| r.zero_grads());
        }
        let jobs: Vec<_> = self.dp.replicas.iter_mut().zip(shares.iter().cloned()).enumerate().collect();
        run_each(jobs, |(w, (model, share))| {
            if zero {
                model.zero_grads();
            }
            work(w, model, share)
        })
        .into_iter()
        .collect()
    }
    // ANCHOR_END: accumulate

    // ANCHOR: update
    /// Sums the replicas' gradients into the first replica (in replica
    /// order), clips them to a global norm of `grad_clip` (0: no clipping),
    /// lets `optimizer` take its step and copies the new weights to the other
    /// replicas; every pass is shared among the threads by parameter, and
    /// every gradient is left at zero. Returns the gradient norm before
    /// clipping.
    ///
    /// # Errors
    /// [`addmul_core::Error::NonFinite`] for a non-finite gradient norm when
    /// clipping (nothing is updated); an optimizer error.
    pub fn update(self, optimizer: &mut AdamW<f32>, grad_clip: f64) -> Result<f64> {
        let threads = self.dp.replicas.len();
        let (first, rest) = self.dp.replicas.split_first_mut().expect("at least one replica");
        let grad_norm = sum_gradients(first, rest, threads).sqrt();
        let scale = if grad_clip > 0.0 { clip_factor(grad_norm, grad_clip)? } else { None };
        // AdamW reads the clipped gradients; right after each parameter's
        // update its new value goes to the replicas and its gradient is cleared.
        // Frozen parameters are neither updated nor copied.
        let mut replicas: Vec<_> = rest.iter_mut().map(|r| r.trainable_params_mut().into_iter()).collect();
        let copies: Vec<Vec<&mut Param<f32>>> = (0..first.trainable_params_mut().len())
            .map(|_| replicas.iter_mut().map(|r| r.next().expect("replicas have the same parameters")).collect())
            .collect();
        optimizer.step_parallel_with(first, threads, scale.map(|s| s as f32), copies, |master, others| {
            for other in others {
                other.value_mut().as_mut_slice().copy_from_slice(master.value().as_slice());
            }
            master.zero_grad();
        })?;
        self.dp.grads_clear = true;
        Ok(grad_norm)
    }
    // ANCHOR_END: update
}

/// Adds every replica's gradient into `first`'s (clearing the replica's in
/// the same pass), parameters shared among `threads` in consecutive groups;
/// returns the sum of the squares of the summed gradients.
fn sum_gradients<M: Parameters<f32>>(first: &mut M, rest: &mut [M], threads: usize) -> f64 {
    let mut replicas: Vec<_> = rest.iter_mut().map(|r| r.trainable_params_mut().into_iter()).collect();
    let pairs: Vec<(&mut Param<f32>, Vec<&mut Param<f32>>)> = first
        .trainable_params_mut()
        .into_iter()
        .map(|p| (p, replicas.iter_mut().map(|r| r.next().expect("replicas have the same parameters")).collect()))
        .collect();
    let squares = run_balanced(
        pairs,
        threads,
        |(p, _)| p.len(),
        |group| {
            let mut sum = 0.0;
            for (master, others) in group {
                let total = master.grad_mut().as_mut_slice();
                for other in others {
                    for (t, g) in total.iter_mut().zip(other.grad_mut().as_mut_slice()) {
                        *t += *g;
                        *g = 0.0;
                    }
                }
                sum += sum_of_squares(total);
            }
            sum
        },
    );
    squares.iter().sum()
}
