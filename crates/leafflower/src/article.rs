//! The article's hand-made network, with fixed weights.

use addmul_core::{Matrix, Param, Parameters, Result};
use addmul_nn::{Activation, Linear, Mlp};

use crate::Class;

/// The leaf in the article: dominant colour (R, G, B) = (32, 107, 56) and a
/// volume of 11.2 ml.
pub const ARTICLE_LEAF: [f64; 4] = [32.0, 107.0, 56.0, 11.2];

/// A sunflower, our choice: a bright yellow (230, 180, 20) and 45 ml.
pub const SUNFLOWER: [f64; 4] = [230.0, 180.0, 20.0, 45.0];

// ANCHOR: article_weights
/// Hidden layer: one row of weights per neuron, one column per input
/// (R, G, B, volume). The top row is the article's; the other two are ours.
pub const HIDDEN_WEIGHTS: [[f64; 4]; 3] = [
    [0.10, -0.29, -0.07, 0.46], // the article's top neuron
    [0.12, -0.03, -0.05, 0.10], // ours: likes red, dislikes blue
    [-0.05, 0.08, 0.02, -0.10], // ours: likes green, dislikes volume
];

/// Output layer: row 0 scores "leaf", row 1 scores "flower".
pub const OUTPUT_WEIGHTS: [[f64; 3]; 2] = [
    [-0.05, -0.10, 0.30], // leaf
    [0.02, 0.15, -0.20],  // flower
];
// ANCHOR_END: article_weights

/// The article's network: 4 inputs, 3 hidden neurons, 2 outputs, no
/// activation function, biases on the hidden neurons. The larger output wins.
///
/// Its parameters are named like an [`Mlp`]'s: `layers.0.weight`,
/// `layers.0.bias`, `layers.1.weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArticleNetwork {
    net: Mlp<f64>,
}

/// Every number the article's network computes for one object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// The three hidden neurons.
    pub hidden: [f64; 3],
    /// The two scores: `[leaf, flower]`.
    pub scores: [f64; 2],
    /// The class whose score is larger.
    pub class: Class,
}

fn matrix<const R: usize, const C: usize>(rows: &[[f64; C]; R]) -> Matrix<f64> {
    Matrix::from_fn(R, C, |i, j| rows[i][j])
}

impl ArticleNetwork {
    /// The network with our documented weights and biases `hidden_bias` on
    /// the three hidden neurons (the article adds 0.25 to the top one).
    pub fn new(hidden_bias: [f64; 3]) -> Self {
        let hidden =
            Linear::from_weights(matrix(&HIDDEN_WEIGHTS), Some(hidden_bias.to_vec())).expect("3 biases for 3 neurons");
        let output = Linear::from_weights(matrix(&OUTPUT_WEIGHTS), None).expect("no bias");
        let net = Mlp::from_layers(vec![hidden, output], Activation::Identity).expect("4-3 then 3-2 fit");
        ArticleNetwork { net }
    }

    /// The network as an [`Mlp`] with the identity activation.
    pub fn as_mlp(&self) -> &Mlp<f64> {
        &self.net
    }

    // ANCHOR: evaluate
    /// Runs the network on one object `(R, G, B, volume)`.
    ///
    /// # Errors
    /// Never for a 4-value input; the `Result` comes from the layers.
    pub fn evaluate(&self, object: [f64; 4]) -> Result<Evaluation> {
        let [hidden, output] = self.net.layers() else { unreachable!("two layers") };
        let x = Matrix::from_column_slice(4, 1, &object);
        let h = hidden.apply(&x)?; // each neuron: Σ weight × input (+ bias)
        let s = output.apply(&h)?; // each score: Σ weight × hidden neuron
        let class = if s[0] > s[1] { Class::Leaf } else { Class::Flower };
        Ok(Evaluation { hidden: [h[0], h[1], h[2]], scores: [s[0], s[1]], class })
    }
    // ANCHOR_END: evaluate
}

impl Parameters<f64> for ArticleNetwork {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<f64>)) {
        self.net.visit(f);
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<f64>)) {
        self.net.visit_mut(f);
    }
}
