//! Optimizers: how a gradient becomes a change of the weights.

use std::collections::BTreeMap;
use std::fmt;

use addmul_core::{Error, Float, Matrix, Param, ParamKind, Parameters, Result};

/// Something that updates parameters from their gradients.
///
/// State (momentum, Adam's moments) is kept per parameter **name**, so an
/// optimizer can be checkpointed and matched to a model by name.
pub trait Optimizer<T: Float> {
    /// Applies one update to every parameter from its current gradient.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if a parameter changed shape since the
    /// optimizer first saw it.
    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<()>;
    /// The learning rate the next step will use.
    fn lr(&self) -> f64;
    /// Sets the learning rate (schedules call this before each step).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `lr` is negative or not finite.
    fn set_lr(&mut self, lr: f64) -> Result<()>;
}

fn check_lr(lr: f64, allow_zero: bool) -> Result<f64> {
    let ok = lr.is_finite() && (lr > 0.0 || (allow_zero && lr == 0.0));
    if ok {
        Ok(lr)
    } else {
        Err(Error::InvalidValue {
            what: "learning rate",
            value: lr,
            requirement: if allow_zero { ">= 0 and finite" } else { "> 0 and finite" },
        })
    }
}

fn check_unit(what: &'static str, v: f64) -> Result<f64> {
    if (0.0..1.0).contains(&v) { Ok(v) } else { Err(Error::InvalidValue { what, value: v, requirement: "in [0, 1)" }) }
}

/// Looks up (or creates, zeroed) the state matrix for `name`.
fn state_for<'a, T: Float>(
    map: &'a mut BTreeMap<String, Matrix<T>>,
    name: &str,
    p: &Param<T>,
) -> Result<&'a mut Matrix<T>> {
    let m = map.entry(name.to_string()).or_insert_with(|| Matrix::zeros(p.value().nrows(), p.value().ncols()));
    if m.shape() != p.value().shape() {
        return Err(Error::shape("optimizer state", p.shape().to_string(), addmul_core::Shape::of(m)));
    }
    Ok(m)
}

/// Runs `f` on every parameter that is not frozen, stopping at the first
/// error.
fn try_visit<T: Float>(
    params: &mut dyn Parameters<T>,
    mut f: impl FnMut(&str, &mut Param<T>) -> Result<()>,
) -> Result<()> {
    let mut result = Ok(());
    params.visit_mut(&mut |name, p| {
        if result.is_ok() && !p.is_frozen() {
            result = f(name, p);
        }
    });
    result
}

// ANCHOR: sgd
/// Stochastic gradient descent, optionally with momentum:
///
/// ```text
/// v ← μ v + g
/// w ← w - lr · v        (μ = 0: plain w ← w - lr · g)
/// ```
///
/// This is PyTorch's convention (the learning rate multiplies the velocity).
#[derive(Debug, Clone)]
pub struct Sgd<T: Float> {
    lr: f64,
    momentum: f64,
    velocity: BTreeMap<String, Matrix<T>>,
}
// ANCHOR_END: sgd

impl<T: Float> Sgd<T> {
    /// Plain gradient descent.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `lr <= 0`.
    pub fn new(lr: f64) -> Result<Self> {
        Self::with_momentum(lr, 0.0)
    }

    /// Gradient descent with momentum `μ` in `[0, 1)`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `lr <= 0` or `μ` is outside `[0, 1)`.
    pub fn with_momentum(lr: f64, momentum: f64) -> Result<Self> {
        Ok(Sgd { lr: check_lr(lr, false)?, momentum: check_unit("momentum", momentum)?, velocity: BTreeMap::new() })
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<()> {
        let lr = T::of(self.lr);
        let mu = T::of(self.momentum);
        let momentum = self.momentum > 0.0;
        let velocity = &mut self.velocity;
        try_visit(params, |name, p| {
            if momentum {
                let v = state_for(velocity, name, p)?;
                let (w, g) = p.parts_mut();
                for ((w, v), &g) in w.iter_mut().zip(v.iter_mut()).zip(g.iter()) {
                    *v = mu * *v + g;
                    *w -= lr * *v;
                }
            } else {
                let (w, g) = p.parts_mut();
                w.zip_apply(g, |w, g| *w -= lr * g);
            }
            Ok(())
        })
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.lr = check_lr(lr, true)?;
        Ok(())
    }
}

/// AdamW's hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment (mean of gradients).
    pub beta1: f64,
    /// Decay of the second moment (mean of squared gradients).
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Decoupled weight decay, applied to the parameters chosen by the decay
    /// rule.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, decay 0.01.
    fn default() -> Self {
        AdamWConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 }
    }
}

/// Which parameters AdamW decays.
pub type DecayRule = Box<dyn Fn(&str, ParamKind) -> bool + Send + Sync>;

/// Adam's two running averages for one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Moments<T: Float> {
    /// First moment `m`.
    pub m: Matrix<T>,
    /// Second moment `v`.
    pub v: Matrix<T>,
}

// ANCHOR: adamw
/// Adam with decoupled weight decay (Loshchilov & Hutter), step by step as
/// PyTorch's `torch.optim.AdamW` computes it:
///
/// ```text
/// w ← w (1 - lr · λ)                       only if the decay rule chooses w
/// m ← β1 m + (1 - β1) g
/// v ← β2 v + (1 - β2) g²
/// w ← w - lr / (1 - β1ᵗ) · m / (√v / √(1 - β2ᵗ) + ε)
/// ```
///
/// By default only matrices are decayed, never biases or layer-norm gains.
pub struct AdamW<T: Float> {
    config: AdamWConfig,
    decay: DecayRule,
    t: u64,
    moments: BTreeMap<String, Moments<T>>,
}
// ANCHOR_END: adamw

impl<T: Float> fmt::Debug for AdamW<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdamW").field("config", &self.config).field("t", &self.t).finish_non_exhaustive()
    }
}

impl<T: Float> AdamW<T> {
    /// AdamW that decays matrices only.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if `lr <= 0`, a beta is outside `[0, 1)`, or
    /// `eps` or the weight decay is negative.
    pub fn new(config: AdamWConfig) -> Result<Self> {
        check_lr(config.lr, false)?;
        check_unit("beta1", config.beta1)?;
        check_unit("beta2", config.beta2)?;
        for (what, v) in [("eps", config.eps), ("weight decay", config.weight_decay)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::InvalidValue { what, value: v, requirement: ">= 0 and finite" });
            }
        }
        Ok(AdamW { config, decay: Box::new(|_, kind| kind == ParamKind::Matrix), t: 0, moments: BTreeMap::new() })
    }

    /// Replaces the rule that chooses which parameters are decayed.
    pub fn decay_if(mut self, rule: impl Fn(&str, ParamKind) -> bool + Send + Sync + 'static) -> Self {
        self.decay = Box::new(rule);
        self
    }

    /// The hyper-parameters (with the current learning rate).
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// How many steps have been taken.
    pub fn steps_taken(&self) -> u64 {
        self.t
    }

    /// The moments by parameter name (for checkpoints).
    pub fn moments(&self) -> &BTreeMap<String, Moments<T>> {
        &self.moments
    }

    /// Restores the step count and moments saved from [`AdamW::moments`].
    pub fn restore(&mut self, steps_taken: u64, moments: BTreeMap<String, Moments<T>>) {
        self.t = steps_taken;
        self.moments = moments;
    }
}

impl<T: Float> Optimizer<T> for AdamW<T> {
    fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<()> {
        let k = self.begin_step();
        let (moments, decay) = (&mut self.moments, &self.decay);
        try_visit(params, |name, p| {
            let state = moments_for(moments, name, p)?;
            k.update(decay(name, p.kind()), p, state);
            Ok(())
        })
    }
    fn lr(&self) -> f64 {
        self.config.lr
    }
    fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.config.lr = check_lr(lr, true)?;
        Ok(())
    }
}

/// The numbers one AdamW step applies to every parameter.
#[derive(Debug, Clone, Copy)]
struct AdamWStep<T> {
    decay: bool,
    shrink: T,
    b2: T,
    one_b1: T,
    one_b2: T,
    step_size: T,
    bias2_sqrt: T,
    eps: T,
}

impl<T: Float> AdamWStep<T> {
    /// One parameter's update; `decay` says whether the rule chose it.
    fn update(&self, decay: bool, p: &mut Param<T>, state: &mut Moments<T>) {
        self.update_scaled(decay, p, state, None);
    }

    /// As `update`, reading every gradient as `g · scale` (the value it would
    /// have after scaling it in place, without writing it back).
    fn update_scaled(&self, decay: bool, p: &mut Param<T>, state: &mut Moments<T>, scale: Option<T>) {
        // Decoupled weight decay first (PyTorch's `p.mul_(1 - lr·wd)`), in
        // the same pass; multiplying by 1 when there is none changes nothing.
        let shrink = if self.decay && decay { self.shrink } else { T::one() };
        let (w, g) = p.parts_mut();
        let (w, g) = (w.as_mut_slice(), g.as_slice());
        let (m, v) = (state.m.as_mut_slice(), state.v.as_mut_slice());
        // One zipped loop per case (no index bounds to check), so that each
        // one vectorises.
        let all = w.iter_mut().zip(g).zip(m.iter_mut().zip(v.iter_mut()));
        match scale {
            None => all.for_each(|((w, &g), (m, v))| self.one(w, shrink, g, m, v)),
            Some(s) => all.for_each(|((w, &g), (m, v))| self.one(w, shrink, g * s, m, v)),
        }
    }

    /// One weight: the same operations, in the same order, as PyTorch's AdamW.
    #[inline(always)]
    fn one(&self, w: &mut T, shrink: T, g: T, m: &mut T, v: &mut T) {
        *m += self.one_b1 * (g - *m);
        *v = self.b2 * *v + self.one_b2 * g * g;
        let denom = v.sqrt() / self.bias2_sqrt + self.eps;
        *w = *w * shrink - self.step_size * (*m / denom);
    }
}

/// Looks up (or creates, zeroed) the moments of `name`, checking the shape.
fn moments_for<'a, T: Float>(
    moments: &'a mut BTreeMap<String, Moments<T>>,
    name: &str,
    p: &Param<T>,
) -> Result<&'a mut Moments<T>> {
    let (rows, cols) = p.value().shape();
    if !moments.contains_key(name) {
        // Only on a parameter's first step: no name is copied after that.
        moments.insert(name.to_string(), Moments { m: Matrix::zeros(rows, cols), v: Matrix::zeros(rows, cols) });
    }
    let state = moments.get_mut(name).expect("inserted above");
    if state.m.shape() != (rows, cols) || state.v.shape() != (rows, cols) {
        return Err(Error::shape("AdamW state", p.shape().to_string(), addmul_core::Shape::of(&state.m)));
    }
    Ok(state)
}

impl<T: Float> AdamW<T> {
    /// Counts the step and works out its numbers.
    fn begin_step(&mut self) -> AdamWStep<T> {
        self.t += 1;
        let c = self.config;
        let t = self.t as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        AdamWStep {
            decay: c.weight_decay > 0.0,
            shrink: T::of(1.0 - c.lr * c.weight_decay),
            b2: T::of(c.beta2),
            one_b1: T::of(1.0 - c.beta1),
            one_b2: T::of(1.0 - c.beta2),
            step_size: T::of(c.lr / bias1),
            bias2_sqrt: T::of((1.0 - c.beta2.powi(t)).sqrt()),
            eps: T::of(c.eps),
        }
    }

    /// The same step as [`Optimizer::step`], bit for bit, with the
    /// parameters shared out among `threads` scoped threads in groups of
    /// about equal size (each parameter's update is independent of the
    /// others').
    ///
    /// # Errors
    /// As [`Optimizer::step`].
    pub fn step_parallel(&mut self, params: &mut dyn Parameters<T>, threads: usize) -> Result<()>
    where
        T: Send,
    {
        let mut count = 0;
        params.visit(&mut |_, p| count += usize::from(!p.is_frozen()));
        self.step_parallel_with(params, threads, None, vec![(); count], |_, ()| {})
    }

    /// [`AdamW::step_parallel`] for a trainer that wants fewer passes over
    /// memory: every gradient is read as `g · grad_scale` (what gradient
    /// clipping would have written, bit for bit), and right after each
    /// parameter's update, on the same thread and while it is still in
    /// cache, `after(param, extra)` runs with that parameter's entry of
    /// `extras` (one per parameter that is not frozen, in visiting order; frozen
    /// parameters are left alone).
    ///
    /// # Errors
    /// As [`Optimizer::step`]; [`Error::ShapeMismatch`] if `extras` has not
    /// one entry per parameter.
    pub fn step_parallel_with<E: Send>(
        &mut self,
        params: &mut dyn Parameters<T>,
        threads: usize,
        grad_scale: Option<T>,
        extras: Vec<E>,
        after: impl Fn(&mut Param<T>, E) + Sync,
    ) -> Result<()>
    where
        T: Send,
    {
        let mut count = 0;
        params.visit(&mut |_, p| count += usize::from(!p.is_frozen()));
        if extras.len() != count {
            let got = addmul_core::Shape { rows: extras.len(), cols: 1 };
            return Err(Error::shape("AdamW extras", format!("{count} (one per trained parameter)"), got));
        }
        let mut named: Vec<(String, &mut Param<T>, E)> = Vec::with_capacity(count);
        let mut extras = extras.into_iter();
        params.visit_mut(&mut |name, p| {
            if !p.is_frozen() {
                named.push((name.to_string(), p, extras.next().expect("counted above")));
            }
        });
        let k = self.begin_step();
        for (name, p, _) in &named {
            moments_for(&mut self.moments, name, p)?;
        }
        let mut names: Vec<&str> = named.iter().map(|(n, _, _)| n.as_str()).collect();
        names.sort_unstable();
        if threads <= 1 || names.windows(2).any(|w| w[0] == w[1]) {
            // One thread, or a name used twice (its moments must be updated
            // twice, in order): in visiting order on this thread.
            for (name, p, extra) in named {
                let state = self.moments.get_mut(&name).expect("created above");
                k.update_scaled((self.decay)(&name, p.kind()), p, state, grad_scale);
                after(p, extra);
            }
            return Ok(());
        }
        // Pair every parameter with its moments: both in name order.
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let mut states = self.moments.iter_mut();
        let mut work = Vec::with_capacity(named.len());
        for (name, p, extra) in named {
            let state = loop {
                let (key, state) = states.next().expect("every name has moments");
                if *key == name {
                    break state;
                }
            };
            work.push(((self.decay)(&name, p.kind()), p, state, extra));
        }
        addmul_core::parallel::run_balanced(
            work,
            threads,
            |(_, p, _, _)| p.len(),
            |group| {
                for (decay, p, state, extra) in group {
                    k.update_scaled(decay, p, state, grad_scale);
                    after(p, extra);
                }
            },
        );
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`,
/// and returns the norm before clipping.
///
/// As in PyTorch's `clip_grad_norm_`, the factor is
/// `max_norm / (norm + 1e-6)`, applied only when it is below 1.
///
/// # Errors
/// [`Error::InvalidValue`] if `max_norm` is not positive, or
/// [`Error::NonFinite`] if the gradient norm is not finite.
pub fn clip_grad_norm<T: Float>(params: &mut dyn Parameters<T>, max_norm: f64) -> Result<f64> {
    use addmul_core::ParametersExt;
    if !(max_norm > 0.0) {
        return Err(Error::InvalidValue { what: "max gradient norm", value: max_norm, requirement: "> 0" });
    }
    let norm = params.grad_norm();
    if let Some(factor) = clip_factor(norm, max_norm)? {
        params.scale_grads(T::of(factor));
    }
    Ok(norm)
}

/// The factor by which [`clip_grad_norm`] scales gradients whose global norm
/// is `norm`: `max_norm / (norm + 1e-6)` when that is below 1, else `None`
/// (for callers that measure the norm themselves, say on several threads).
///
/// # Errors
/// [`Error::InvalidValue`] if `max_norm <= 0`; [`Error::NonFinite`] if the
/// norm is NaN or infinite.
pub fn clip_factor(norm: f64, max_norm: f64) -> Result<Option<f64>> {
    if !(max_norm > 0.0) {
        return Err(Error::InvalidValue { what: "max gradient norm", value: max_norm, requirement: "> 0" });
    }
    if !norm.is_finite() {
        return Err(Error::NonFinite { what: "gradient norm", value: norm, row: 0, col: 0 });
    }
    let factor = max_norm / (norm + 1e-6);
    Ok((factor < 1.0).then_some(factor))
}
