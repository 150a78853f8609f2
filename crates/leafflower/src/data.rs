//! A generated data set of leaves and flowers.

use rand::RngExt;
use rand_distr::{Distribution, LogNormal, Normal};

use addmul_core::{Error, Matrix, Result, Rng};

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Output 0.
    Leaf = 0,
    /// Output 1.
    Flower = 1,
}

impl Class {
    /// The output index: 0 for leaf, 1 for flower.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Leaf => "leaf",
            Class::Flower => "flower",
        }
    }
}

/// One object: its dominant colour, its volume and what it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Example {
    /// `(R, G, B, volume in ml)`.
    pub features: [f64; 4],
    /// Leaf or flower.
    pub class: Class,
}

/// A colour family: mean (R, G, B), the spread of each channel, and how
/// often it occurs within its class.
struct Family {
    rgb: [f64; 3],
    spread: f64,
    weight: f64,
}

// ANCHOR: distributions
/// Leaves: mostly green, some autumn-coloured (the overlap with flowers that
/// makes the problem worth a network).
const LEAF_COLOURS: [Family; 2] = [
    Family { rgb: [50.0, 120.0, 50.0], spread: 22.0, weight: 0.8 }, // green
    Family { rgb: [190.0, 110.0, 40.0], spread: 30.0, weight: 0.2 }, // autumn
];
/// Flowers: yellow, red, purple, white, and a few green ones.
const FLOWER_COLOURS: [Family; 5] = [
    Family { rgb: [230.0, 185.0, 30.0], spread: 20.0, weight: 0.3 }, // yellow
    Family { rgb: [200.0, 45.0, 55.0], spread: 25.0, weight: 0.25 }, // red
    Family { rgb: [130.0, 60.0, 160.0], spread: 25.0, weight: 0.2 }, // purple
    Family { rgb: [235.0, 230.0, 225.0], spread: 12.0, weight: 0.15 }, // white
    Family { rgb: [120.0, 160.0, 90.0], spread: 25.0, weight: 0.1 }, // green
];
/// Volumes are log-normal: leaves have a median of 8 ml, flowers 30 ml, both
/// with a log-spread of 0.6, so they overlap too.
const LEAF_VOLUME: (f64, f64) = (8.0, 0.6);
const FLOWER_VOLUME: (f64, f64) = (30.0, 0.6);
// ANCHOR_END: distributions

fn draw_colour(families: &[Family], rng: &mut Rng) -> [f64; 3] {
    let mut u: f64 = rng.random();
    let family = families
        .iter()
        .find(|f| {
            u -= f.weight;
            u < 0.0
        })
        .unwrap_or(&families[families.len() - 1]);
    let noise = Normal::new(0.0, family.spread).expect("positive spread");
    family.rgb.map(|c| (c + noise.sample(rng)).clamp(0.0, 255.0).round())
}

/// `n` objects, each a leaf or a flower with probability ½, drawn from the
/// distributions documented above.
pub fn generate(n: usize, rng: &mut Rng) -> Vec<Example> {
    (0..n)
        .map(|_| {
            let class = if rng.random::<bool>() { Class::Leaf } else { Class::Flower };
            let (families, (median, spread)) = match class {
                Class::Leaf => (&LEAF_COLOURS[..], LEAF_VOLUME),
                Class::Flower => (&FLOWER_COLOURS[..], FLOWER_VOLUME),
            };
            let [r, g, b] = draw_colour(families, rng);
            let volume = LogNormal::new(median.ln(), spread).expect("positive spread").sample(rng);
            Example { features: [r, g, b, (volume * 10.0).round() / 10.0], class }
        })
        .collect()
}

/// Rescales each feature to mean 0 and standard deviation 1, with statistics
/// taken from the training set only. (The article feeds raw numbers; with
/// colours near 200 and volumes near 10, gradient descent would need a
/// different step size for every input.) Volume is taken as its logarithm
/// first, since it spans a factor of ten.
#[derive(Debug, Clone, PartialEq)]
pub struct Standardizer {
    mean: [f64; 4],
    std: [f64; 4],
}

fn transform(features: [f64; 4]) -> [f64; 4] {
    [features[0], features[1], features[2], features[3].max(1e-3).ln()]
}

impl Standardizer {
    /// Statistics of `examples`.
    ///
    /// # Errors
    /// [`Error::Empty`] if there are no examples; [`Error::NonFinite`] if a
    /// feature is NaN or infinite; [`Error::InvalidValue`] for a negative
    /// colour or a volume that is not positive.
    pub fn fit(examples: &[Example]) -> Result<Self> {
        if examples.is_empty() {
            return Err(Error::Empty { what: "leaf/flower data set" });
        }
        for (j, e) in examples.iter().enumerate() {
            for (i, &v) in e.features.iter().enumerate() {
                if !v.is_finite() {
                    return Err(Error::NonFinite { what: "leaf/flower feature", value: v, row: i, col: j });
                }
            }
            if e.features[3] <= 0.0 {
                return Err(Error::InvalidValue { what: "volume", value: e.features[3], requirement: "> 0 ml" });
            }
            if let Some(&c) = e.features[..3].iter().find(|&&c| c < 0.0) {
                return Err(Error::InvalidValue { what: "colour channel", value: c, requirement: ">= 0" });
            }
        }
        let n = examples.len() as f64;
        let mut mean = [0.0; 4];
        let mut var = [0.0; 4];
        for e in examples {
            for (m, v) in mean.iter_mut().zip(transform(e.features)) {
                *m += v / n;
            }
        }
        for e in examples {
            for ((s, m), v) in var.iter_mut().zip(&mean).zip(transform(e.features)) {
                *s += (v - m).powi(2) / n;
            }
        }
        Ok(Standardizer { mean, std: var.map(|v| v.sqrt().max(1e-9)) })
    }

    /// One standardized object.
    pub fn apply(&self, features: [f64; 4]) -> [f64; 4] {
        let t = transform(features);
        std::array::from_fn(|i| (t[i] - self.mean[i]) / self.std[i])
    }

    /// A `[4, n]` input matrix, one column per example.
    pub fn matrix(&self, examples: &[Example]) -> Matrix<f64> {
        let cols: Vec<[f64; 4]> = examples.iter().map(|e| self.apply(e.features)).collect();
        Matrix::from_fn(4, examples.len(), |i, j| cols[j][i])
    }
}
