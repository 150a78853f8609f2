//! Learning-rate schedules.

use std::f64::consts::PI;

use addmul_core::{Error, Result};

/// How the learning rate changes with the step number (0-based: the index of
/// the optimizer step about to be taken).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The same rate every step.
    Constant {
        /// The rate.
        lr: f64,
    },
    /// Linear warmup to `max_lr`, then cosine decay to `min_lr` at
    /// `decay_steps`, then `min_lr` (nanoGPT's schedule):
    ///
    /// ```text
    /// step < warmup:        max_lr · (step + 1) / (warmup + 1)
    /// step > decay_steps:   min_lr
    /// otherwise:            min_lr + ½ (1 + cos(π r)) (max_lr - min_lr),
    ///                       r = (step - warmup) / (decay_steps - warmup)
    /// ```
    WarmupCosine {
        /// Peak rate, reached at step `warmup`.
        max_lr: f64,
        /// Final rate, reached at step `decay_steps`.
        min_lr: f64,
        /// Number of warmup steps.
        warmup: u64,
        /// Step at which the decay ends (usually the number of iterations).
        decay_steps: u64,
    },
    /// "Attention Is All You Need", section 5.3:
    /// `factor · d_model^-½ · min(s^-½, s · warmup^-1.5)` with `s = step + 1`:
    /// linear warmup, then decay with the inverse square root of the step.
    InverseSqrt {
        /// The model width.
        d_model: usize,
        /// Warmup steps (the paper uses 4000).
        warmup: u64,
        /// A constant multiplier (the paper uses 1).
        factor: f64,
    },
}

impl Schedule {
    /// The learning rate for step `step`.
    pub fn lr(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant { lr } => lr,
            Schedule::WarmupCosine { max_lr, min_lr, warmup, decay_steps } => {
                if step < warmup {
                    max_lr * (step + 1) as f64 / (warmup + 1) as f64
                } else if step > decay_steps {
                    min_lr
                } else {
                    let r = (step - warmup) as f64 / decay_steps.saturating_sub(warmup).max(1) as f64;
                    min_lr + 0.5 * (1.0 + (PI * r).cos()) * (max_lr - min_lr)
                }
            }
            Schedule::InverseSqrt { d_model, warmup, factor } => {
                let s = (step + 1) as f64;
                let w = warmup.max(1) as f64;
                factor * (d_model as f64).powf(-0.5) * s.powf(-0.5).min(s * w.powf(-1.5))
            }
        }
    }

    /// Checks that the schedule only produces usable rates.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for a rate that is not positive and finite
    /// (`min_lr` may be 0), `min_lr > max_lr`, a warmup beyond the decay, or
    /// `d_model` 0.
    pub fn validate(&self) -> Result<()> {
        let positive = |what, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::InvalidValue { what, value: v, requirement: "> 0 and finite" })
            }
        };
        match *self {
            Schedule::Constant { lr } => positive("learning rate", lr),
            Schedule::WarmupCosine { max_lr, min_lr, warmup, decay_steps } => {
                positive("max learning rate", max_lr)?;
                if !(0.0..=max_lr).contains(&min_lr) {
                    return Err(Error::InvalidValue {
                        what: "min learning rate",
                        value: min_lr,
                        requirement: "in [0, max learning rate]",
                    });
                }
                if warmup > decay_steps {
                    return Err(Error::InvalidValue {
                        what: "warmup steps",
                        value: warmup as f64,
                        requirement: "<= decay steps",
                    });
                }
                Ok(())
            }
            Schedule::InverseSqrt { d_model, factor, .. } => {
                positive("schedule factor", factor)?;
                if d_model == 0 {
                    return Err(Error::InvalidValue { what: "d_model", value: 0.0, requirement: ">= 1" });
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_hits_its_end_points() {
        let s = Schedule::WarmupCosine { max_lr: 1e-3, min_lr: 1e-4, warmup: 100, decay_steps: 2000 };
        assert_eq!(s.lr(0), 1e-3 / 101.0);
        assert_eq!(s.lr(99), 1e-3 * 100.0 / 101.0);
        assert_eq!(s.lr(100), 1e-3);
        assert!((s.lr(1050) - 5.5e-4).abs() < 1e-15);
        assert_eq!(s.lr(2000), 1e-4);
        assert_eq!(s.lr(5000), 1e-4);
        // Monotone after the warmup.
        assert!((100..2000).all(|i| s.lr(i + 1) <= s.lr(i)));
    }

    #[test]
    fn inverse_sqrt_peaks_at_warmup() {
        let s = Schedule::InverseSqrt { d_model: 512, warmup: 4000, factor: 1.0 };
        let peak = s.lr(3999);
        assert!((peak - 512f64.powf(-0.5) * 4000f64.powf(-0.5)).abs() < 1e-15);
        assert!(s.lr(100) < peak && s.lr(8000) < peak);
        // After the warmup it falls as 1/sqrt(step).
        assert!((s.lr(15999) / s.lr(3999) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn bad_schedules_are_rejected() {
        assert!(Schedule::Constant { lr: 0.0 }.validate().is_err());
        assert!(Schedule::Constant { lr: -1.0 }.validate().is_err());
        let s = Schedule::WarmupCosine { max_lr: 1e-3, min_lr: 1e-2, warmup: 1, decay_steps: 10 };
        assert!(s.validate().unwrap_err().to_string().contains("min learning rate"));
        let s = Schedule::WarmupCosine { max_lr: 1e-3, min_lr: 0.0, warmup: 11, decay_steps: 10 };
        assert!(s.validate().is_err());
    }
}
