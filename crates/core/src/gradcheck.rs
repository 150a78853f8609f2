//! The gradient-check harness: analytic gradients against central finite
//! differences, in `f64`.
//!
//! For a scalar loss `L`, the numeric derivative with respect to one entry `w`
//! is `(L(w + h) - L(w - h)) / 2h`. Its error is about `h² L'''/6` from
//! truncation plus `eps |L| / h` from rounding, so with `h = 1e-5` in `f64`
//! both are near `1e-11` for losses of order one. The harness compares it with
//! the analytic gradient for **every entry of every input and parameter** and
//! reports the worst relative error,
//!
//! ```text
//! |analytic - numeric| / max(|analytic|, |numeric|, floor)
//! ```
//!
//! where the `floor` keeps entries whose true gradient is (nearly) zero from
//! turning rounding noise into a huge ratio.
//!
//! A layer's output is a matrix, not a scalar; tests reduce it with a fixed
//! random *probe* `R` of the output's shape: `L = sum(R ⊙ y)`, whose gradient
//! with respect to `y` is `R` itself. [`GradCheck::layer`] does exactly that.

use std::fmt;

use crate::{Float, Layer, Matrix, Parameters, ParametersExt, Result};

/// The tolerance addmul's gradient checks use where the function is smooth.
pub const TIGHT: f64 = 1e-6;

/// Settings for a gradient check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradCheck {
    /// The finite-difference step `h`.
    pub step: f64,
    /// The smallest denominator of the relative error.
    pub floor: f64,
    /// Richardson extrapolation: also take the central difference at `h/2`
    /// and report `(4 D(h/2) - D(h)) / 3`, in which the `h²` truncation
    /// terms cancel (what is left is of order `h⁴`), for twice the
    /// evaluations. For functions whose curvature is large next to the
    /// tolerance (a whole model on a handful of features).
    pub richardson: bool,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck { step: 1e-5, floor: 1e-3, richardson: false }
    }
}

/// Where the analytic and numeric gradients disagreed most.
#[derive(Debug, Clone, PartialEq)]
pub struct Discrepancy {
    /// The input (`"input 0"`) or parameter name (`"fc.weight"`).
    pub tensor: String,
    /// Row of the entry.
    pub row: usize,
    /// Column of the entry.
    pub col: usize,
    /// The backward pass's value.
    pub analytic: f64,
    /// The finite-difference estimate.
    pub numeric: f64,
    /// Their relative error.
    pub rel_error: f64,
}

/// The result of a gradient check.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GradReport {
    /// How many entries were compared.
    pub checked: usize,
    /// The worst entry, if any was checked.
    pub worst: Option<Discrepancy>,
}

impl GradReport {
    /// The worst relative error (0 if nothing was checked).
    pub fn worst_rel_error(&self) -> f64 {
        self.worst.as_ref().map_or(0.0, |d| d.rel_error)
    }

    /// `true` if every entry agreed within `tol`.
    pub fn passes(&self, tol: f64) -> bool {
        self.worst_rel_error() <= tol
    }

    fn record(&mut self, tensor: &str, row: usize, col: usize, analytic: f64, numeric: f64, floor: f64) {
        self.checked += 1;
        let denom = analytic.abs().max(numeric.abs()).max(floor);
        let mut rel_error = (analytic - numeric).abs() / denom;
        if rel_error.is_nan() {
            rel_error = f64::INFINITY;
        }
        if self.worst.as_ref().is_none_or(|w| rel_error > w.rel_error) {
            self.worst = Some(Discrepancy { tensor: tensor.to_string(), row, col, analytic, numeric, rel_error });
        }
    }
}

impl fmt::Display for GradReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.worst {
            None => write!(f, "no gradient entries checked"),
            Some(d) => write!(
                f,
                "{} entries checked; worst relative error {:.3e} at {}[{}, {}] (analytic {:.12e}, numeric {:.12e})",
                self.checked, d.rel_error, d.tensor, d.row, d.col, d.analytic, d.numeric
            ),
        }
    }
}

/// Sets entry `index` of the `which`-th parameter (in visiting order) to
/// `value`.
fn set_entry<M: Parameters<f64> + ?Sized>(model: &mut M, which: usize, index: usize, value: f64) {
    let mut i = 0;
    model.visit_mut(&mut |_, p| {
        if i == which {
            p.value_mut()[index] = value;
        }
        i += 1;
    });
}

impl GradCheck {
    /// Checks the gradients of a scalar function of `model`'s parameters and
    /// of `inputs`.
    ///
    /// `f` must compute the loss **and** run the backward pass: it returns the
    /// loss and the gradient with respect to each input (same order and shapes
    /// as `inputs`), and it adds the parameter gradients into the model's
    /// [`Param`](crate::Param)s. The harness zeroes them before the analytic
    /// call, then calls `f` twice per entry with that entry nudged by `±h`
    /// (four times with [`GradCheck::richardson`]; only the returned loss is
    /// used there). Inputs and parameters are
    /// restored exactly afterwards.
    ///
    /// # Errors
    /// Whatever `f` returns.
    ///
    /// # Panics
    /// If `f` returns a different number of input gradients than there are
    /// inputs, or one of the wrong shape: that is a bug in the test.
    pub fn run<M, E, F>(&self, model: &mut M, inputs: &mut [Matrix<f64>], mut f: F) -> Result<GradReport, E>
    where
        M: Parameters<f64> + ?Sized,
        F: FnMut(&mut M, &[Matrix<f64>]) -> Result<(f64, Vec<Matrix<f64>>), E>,
    {
        model.zero_grads();
        let (_, input_grads) = f(model, inputs)?;
        assert_eq!(input_grads.len(), inputs.len(), "one gradient per input");
        let mut param_grads = Vec::new();
        model.visit(&mut |name, p| param_grads.push((name.to_string(), p.grad().clone())));

        let values = model.snapshot();
        let mut report = GradReport::default();
        for (which, (name, grad)) in param_grads.iter().enumerate() {
            for index in 0..grad.len() {
                let original = values[which][index];
                let numeric = self.derivative(|delta| {
                    set_entry(model, which, index, original + delta);
                    f(model, inputs).map(|(loss, _)| loss)
                });
                set_entry(model, which, index, original);
                let (row, col) = (index % grad.nrows(), index / grad.nrows());
                report.record(name, row, col, grad[index], numeric?, self.floor);
            }
        }
        for j in 0..inputs.len() {
            assert_eq!(input_grads[j].shape(), inputs[j].shape(), "gradient of input {j} has the input's shape");
            let name = format!("input {j}");
            for index in 0..inputs[j].len() {
                let original = inputs[j][index];
                let numeric = self.derivative(|delta| {
                    inputs[j][index] = original + delta;
                    f(model, inputs).map(|(loss, _)| loss)
                });
                inputs[j][index] = original;
                let (row, col) = (index % inputs[j].nrows(), index / inputs[j].nrows());
                report.record(&name, row, col, input_grads[j][index], numeric?, self.floor);
            }
        }
        model.zero_grads();
        Ok(report)
    }

    /// The finite-difference derivative from `loss_at(delta)`, the loss with
    /// the entry moved by `delta`: central differences at `h`, and at `h/2`
    /// combined with them when [`GradCheck::richardson`] is on.
    fn derivative<E>(&self, mut loss_at: impl FnMut(f64) -> Result<f64, E>) -> Result<f64, E> {
        let mut central = |s: f64| -> Result<f64, E> { Ok((loss_at(s)? - loss_at(-s)?) / (2.0 * s)) };
        let coarse = central(self.step)?;
        if !self.richardson {
            return Ok(coarse);
        }
        Ok((4.0 * central(self.step / 2.0)? - coarse) / 3.0)
    }

    /// Checks a [`Layer`] on input `x` with the probe loss `L = sum(probe ⊙ y)`.
    ///
    /// # Errors
    /// The layer's error, e.g. if `x` or `probe` has the wrong shape.
    pub fn layer<L: Layer<f64>>(&self, layer: &mut L, x: &Matrix<f64>, probe: &Matrix<f64>) -> Result<GradReport> {
        let mut inputs = [x.clone()];
        self.run(layer, &mut inputs, |layer, xs| {
            let (y, cache) = layer.forward(&xs[0])?;
            let loss = crate::dot(&y, probe)?;
            let dx = layer.backward(&cache, probe)?;
            Ok((loss, vec![dx]))
        })
    }
}

/// A report as a `Result`, for `?` or `prop_assert!` in tests: `Err` carries
/// the report's message when the worst error exceeds `tol`.
///
/// # Errors
/// The report's text if the check failed.
pub fn within<T: Float>(report: &GradReport, tol: T) -> std::result::Result<(), String> {
    if report.passes(tol.as_f64()) {
        Ok(())
    } else {
        Err(format!("gradient check failed (tolerance {tol:e}): {report}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Param, Parameters};

    /// y = w ⊙ x², with a deliberately wrong backward when `bug` is set.
    struct Square {
        w: Param<f64>,
        bug: bool,
    }
    impl Parameters<f64> for Square {
        fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
            f("w", &self.w);
        }
        fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
            f("w", &mut self.w);
        }
    }
    impl Layer<f64> for Square {
        type Cache = Matrix<f64>;
        fn forward(&self, x: &Matrix<f64>) -> Result<(Matrix<f64>, Matrix<f64>)> {
            Ok((self.w.value().component_mul(&x.component_mul(x)), x.clone()))
        }
        fn backward(&mut self, x: &Matrix<f64>, dy: &Matrix<f64>) -> Result<Matrix<f64>> {
            *self.w.grad_mut() += dy.component_mul(&x.component_mul(x));
            let k = if self.bug { 2.001 } else { 2.0 };
            Ok(dy.component_mul(self.w.value()).component_mul(x) * k)
        }
    }

    fn setup(bug: bool) -> (Square, Matrix<f64>, Matrix<f64>) {
        let w = Matrix::from_row_slice(2, 2, &[0.5, -1.0, 2.0, 0.25]);
        let x = Matrix::from_row_slice(2, 2, &[1.0, 2.0, -0.5, 3.0]);
        let r = Matrix::from_row_slice(2, 2, &[0.3, -0.7, 1.1, 0.9]);
        (Square { w: Param::matrix(w), bug }, x, r)
    }

    #[test]
    fn a_correct_backward_passes_tightly() {
        let (mut layer, x, r) = setup(false);
        let report = GradCheck::default().layer(&mut layer, &x, &r).unwrap();
        assert_eq!(report.checked, 8);
        within(&report, TIGHT).unwrap();
    }

    #[test]
    fn a_wrong_backward_is_caught_and_located() {
        let (mut layer, x, r) = setup(true);
        let report = GradCheck::default().layer(&mut layer, &x, &r).unwrap();
        assert!(!report.passes(TIGHT));
        let worst = report.worst.as_ref().unwrap();
        assert_eq!(worst.tensor, "input 0");
        assert!((worst.rel_error - 0.0005).abs() < 1e-6, "{report}");
        assert!(within(&report, TIGHT).unwrap_err().contains("input 0"));
    }

    #[test]
    fn richardson_cancels_the_truncation_error() {
        // L = sum(exp(a·x)) with a large `a`: the central difference at
        // h = 1e-3 is off by about h² a² / 6 relative; extrapolation leaves
        // the h⁴ term only.
        struct NoParams;
        impl Parameters<f64> for NoParams {
            fn visit<'a>(&'a self, _: &mut dyn FnMut(&str, &'a Param<f64>)) {}
            fn visit_mut<'a>(&'a mut self, _: &mut dyn FnMut(&str, &'a mut Param<f64>)) {}
        }
        let a = 20.0;
        let mut x = [Matrix::from_row_slice(1, 3, &[0.1, -0.05, 0.02])];
        let mut check = |richardson| {
            let settings = GradCheck { step: 1e-3, richardson, ..GradCheck::default() };
            let report = settings
                .run(&mut NoParams, &mut x, |_, x| {
                    let loss = x[0].iter().map(|v| (a * v).exp()).sum::<f64>();
                    Ok::<_, crate::Error>((loss, vec![x[0].map(|v| a * (a * v).exp())]))
                })
                .unwrap();
            report.worst.unwrap().rel_error
        };
        let (plain, extrapolated) = (check(false), check(true));
        assert!((plain - 1e-6 * a * a / 6.0).abs() < 2e-6, "plain {plain:e}");
        assert!(extrapolated < 1e-8, "extrapolated {extrapolated:e}");
    }

    #[test]
    fn the_model_is_left_as_it_was() {
        let (mut layer, x, r) = setup(false);
        let before = layer.w.value().clone();
        GradCheck::default().layer(&mut layer, &x, &r).unwrap();
        assert_eq!(layer.w.value(), &before);
        assert_eq!(layer.w.grad(), &Matrix::zeros(2, 2));
    }
}
