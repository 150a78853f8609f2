//! The article's way to train: nudge each weight a little and see what the
//! loss does.

use addmul_core::{Error, Float, Parameters, Result};

/// Finite-difference gradient estimation, the article's "nudge each weight"
/// trainer.
///
/// For every weight `w`, the loss is measured with `w` nudged up (and, for
/// the central scheme, down); the change divided by the nudge is the
/// gradient. This costs one or two full forward passes **per weight**, where
/// backpropagation gets all gradients for about the price of two forward
/// passes; that difference is why backpropagation exists. The estimates are
/// written into each parameter's gradient, so any [`Optimizer`](crate::Optimizer)
/// can then take the step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NudgeTrainer {
    /// How far to nudge each weight.
    pub nudge: f64,
    /// `(L(w+h) - L(w-h)) / 2h` when set, else the article's one-sided
    /// `(L(w+h) - L(w)) / h`.
    pub central: bool,
}

impl Default for NudgeTrainer {
    fn default() -> Self {
        NudgeTrainer { nudge: 1e-5, central: true }
    }
}

// ANCHOR: nudge
impl NudgeTrainer {
    /// Estimates every gradient of `loss` and stores it in the parameters'
    /// gradients (replacing what was there). Returns the loss at the current
    /// weights.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if the nudge is not positive; any error of
    /// `loss`; [`Error::NonFinite`] if a measured loss is not finite.
    pub fn estimate_gradients<T, M>(&self, model: &mut M, loss: &mut dyn FnMut(&M) -> Result<f64>) -> Result<f64>
    where
        T: Float,
        M: Parameters<T>,
    {
        if !(self.nudge > 0.0) {
            return Err(Error::InvalidValue { what: "nudge", value: self.nudge, requirement: "> 0" });
        }
        let measure = |model: &M, loss: &mut dyn FnMut(&M) -> Result<f64>| -> Result<f64> {
            let l = loss(model)?;
            if l.is_finite() { Ok(l) } else { Err(Error::NonFinite { what: "loss", value: l, row: 0, col: 0 }) }
        };
        let base = measure(model, loss)?;
        let shapes: Vec<usize> = {
            let mut v = Vec::new();
            model.visit(&mut |_, p| v.push(p.len()));
            v
        };
        for (which, &len) in shapes.iter().enumerate() {
            for index in 0..len {
                let original = with_entry(model, which, index, |w| *w);
                with_entry(model, which, index, |w| *w = T::of(original.as_f64() + self.nudge));
                let up = measure(model, loss);
                let down = if self.central {
                    with_entry(model, which, index, |w| *w = T::of(original.as_f64() - self.nudge));
                    Some(measure(model, loss))
                } else {
                    None
                };
                with_entry(model, which, index, |w| *w = original);
                let grad = match down {
                    Some(down) => (up? - down?) / (2.0 * self.nudge),
                    None => (up? - base) / self.nudge,
                };
                set_grad(model, which, index, T::of(grad));
            }
        }
        Ok(base)
    }
}
// ANCHOR_END: nudge

/// Runs `f` on entry `index` of the `which`-th parameter's value.
fn with_entry<T: Float, M: Parameters<T>, R>(
    model: &mut M,
    which: usize,
    index: usize,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let mut f = Some(f);
    let mut out = None;
    let mut i = 0;
    model.visit_mut(&mut |_, p| {
        if i == which
            && let Some(f) = f.take()
        {
            out = Some(f(&mut p.value_mut()[index]));
        }
        i += 1;
    });
    out.expect("the parameter exists: its index came from the same model")
}

fn set_grad<T: Float, M: Parameters<T>>(model: &mut M, which: usize, index: usize, g: T) {
    let mut i = 0;
    model.visit_mut(&mut |_, p| {
        if i == which {
            p.grad_mut()[index] = g;
        }
        i += 1;
    });
}
