//! A small multi-layer network: linear layers with an activation between them.

use std::borrow::Cow;

use addmul_core::{
    Error, Float, Init, Layer, Matrix, Op, Param, Parameters, Result, Rng, matmul, visit_child, visit_child_mut,
};

use crate::{Activation, Linear};

/// A multi-layer perceptron: `Linear → f → Linear → f → … → Linear`.
///
/// The activation is applied after every layer but the last, whose output
/// (the scores) is returned as is. Parameter names are `layers.{i}.weight`
/// and `layers.{i}.bias`, unless the layers are given names of their own
/// ([`Mlp::with_names`]: GPT-2's feed-forward network is `c_fc`, `c_proj`).
///
/// # Example
/// ```
/// use addmul_core::{rng, Init, Layer, Matrix};
/// use addmul_nn::{Activation, Mlp};
/// // 4 inputs, 3 hidden neurons, 2 outputs: the article's network.
/// let net = Mlp::<f64>::new(&[4, 3, 2], Activation::Relu, Init::HeNormal, &mut rng(0))?;
/// let (scores, _) = net.forward(&Matrix::zeros(4, 5))?;
/// assert_eq!(scores.shape(), (2, 5));
/// # Ok::<(), addmul_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp<T: Float> {
    layers: Vec<Linear<T>>,
    activation: Activation,
    /// Each layer's name; `None` for `layers.{i}`.
    names: Option<Vec<&'static str>>,
}

/// What [`Mlp::forward`] keeps for the backward pass.
#[derive(Debug, Clone)]
pub struct MlpCache<T: Float> {
    /// The input of each linear layer (the first is the network's input,
    /// the others the activations).
    inputs: Vec<Matrix<T>>,
    /// The output of each linear layer but the last, before the activation.
    pre_activations: Vec<Matrix<T>>,
}

impl<T: Float> MlpCache<T> {
    /// The pre-activation values of each hidden layer, for inspection (and for
    /// tests that stay away from ReLU's kink).
    pub fn pre_activations(&self) -> &[Matrix<T>] {
        &self.pre_activations
    }
}

impl<T: Float> Mlp<T> {
    /// A network with layer widths `sizes` (`[inputs, hidden…, outputs]`),
    /// weights drawn from `init`, zero biases.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] if fewer than two sizes are given or a size is 0.
    pub fn new(sizes: &[usize], activation: Activation, init: Init, rng: &mut Rng) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::InvalidValue {
                what: "number of layer sizes",
                value: sizes.len() as f64,
                requirement: "at least 2 (inputs and outputs)",
            });
        }
        if let Some(&zero) = sizes.iter().find(|&&s| s == 0) {
            return Err(Error::InvalidValue { what: "layer size", value: zero as f64, requirement: ">= 1" });
        }
        let layers = sizes.windows(2).map(|w| Linear::new(w[0], w[1], true, init, rng)).collect();
        Ok(Mlp { layers, activation, names: None })
    }

    /// A network from explicit layers (for example with a different
    /// initialisation for the last, or without biases).
    ///
    /// # Errors
    /// [`Error::Empty`] if there are no layers, [`Error::ShapeMismatch`] if a
    /// layer's input width is not the previous layer's output width.
    pub fn from_layers(layers: Vec<Linear<T>>, activation: Activation) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::Empty { what: "Mlp layers" });
        }
        for pair in layers.windows(2) {
            if pair[1].in_features() != pair[0].out_features() {
                return Err(Error::shape(
                    "Mlp::from_layers",
                    format!("[_, {}] for the next weight", pair[0].out_features()),
                    pair[1].weight().shape(),
                ));
            }
        }
        Ok(Mlp { layers, activation, names: None })
    }

    /// The same network with its layers named `names` (first to last)
    /// instead of `layers.{i}`.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] unless there is one name per layer.
    pub fn with_names(self, names: &[&'static str]) -> Result<Self> {
        if names.len() != self.layers.len() {
            return Err(Error::InvalidValue {
                what: "number of layer names",
                value: names.len() as f64,
                requirement: "one per layer",
            });
        }
        Ok(Mlp { names: Some(names.to_vec()), ..self })
    }

    /// The linear layers, first to last.
    pub fn layers(&self) -> &[Linear<T>] {
        &self.layers
    }

    /// The linear layers by their parameter-name prefixes (`c_fc`, ... or
    /// `layers.{i}`), first to last.
    pub fn linear_layers(&self) -> Vec<(String, &Linear<T>)> {
        self.layers.iter().enumerate().map(|(i, l)| (layer_name(&self.names, i).into_owned(), l)).collect()
    }

    /// The linear layers by their parameter-name prefixes (`c_fc`, ... or
    /// `layers.{i}`), first to last, mutably: to freeze them or attach
    /// adapters to them.
    pub fn linear_layers_mut(&mut self) -> Vec<(String, &mut Linear<T>)> {
        let names = &self.names;
        self.layers.iter_mut().enumerate().map(|(i, l)| (layer_name(names, i).into_owned(), l)).collect()
    }

    /// The activation between layers.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of inputs.
    pub fn in_features(&self) -> usize {
        self.layers[0].in_features()
    }

    /// Number of outputs.
    pub fn out_features(&self) -> usize {
        self.layers[self.layers.len() - 1].out_features()
    }

    // ANCHOR: collapse
    /// The single linear layer that computes the same function, for a network
    /// without an activation ([`Activation::Identity`]): `W₂(W₁x + b₁) + b₂`
    /// is `(W₂W₁)x + (W₂b₁ + b₂)`, however many layers there are. This is why
    /// the activation between a feed-forward network's layers is not optional:
    /// without it, depth and width buy nothing one matrix could not do.
    ///
    /// # Errors
    /// [`Error::Unsupported`] if the network has an activation (it is not
    /// linear then) or a layer has a side path attached.
    pub fn collapse(&self) -> Result<Linear<T>> {
        if self.activation != Activation::Identity {
            return Err(Error::Unsupported {
                op: "Mlp::collapse",
                reason: "only a network without an activation is one linear layer",
            });
        }
        if self.layers.iter().any(|l| l.side_path().is_some()) {
            return Err(Error::Unsupported { op: "Mlp::collapse", reason: "a layer has a side path attached" });
        }
        let bias_of = |layer: &Linear<T>| match layer.bias() {
            Some(b) => b.value().clone(),
            None => Matrix::zeros(layer.out_features(), 1),
        };
        let mut weight = self.layers[0].weight().value().clone();
        let mut bias = bias_of(&self.layers[0]);
        for layer in &self.layers[1..] {
            let w = layer.weight().value();
            weight = matmul(w, Op::N, &weight, Op::N)?;
            bias = matmul(w, Op::N, &bias, Op::N)? + bias_of(layer);
        }
        Linear::from_weights(weight, Some(bias.as_slice().to_vec()))
    }
    // ANCHOR_END: collapse

    /// The output for `x` without keeping a cache.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `[inputs, n]`.
    pub fn predict(&self, x: &Matrix<T>) -> Result<Matrix<T>> {
        let mut h = self.layers[0].apply(x)?;
        for layer in &self.layers[1..] {
            h = layer.apply(&self.activation.map(&h))?;
        }
        Ok(h)
    }
}

// ANCHOR: mlp_layer
impl<T: Float> Mlp<T> {
    /// [`Layer::forward`] that keeps `x`, which the caller no longer needs,
    /// for the backward pass instead of copying it.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if `x` is not `[inputs, n]`.
    pub fn forward_owned(&self, x: Matrix<T>) -> Result<(Matrix<T>, MlpCache<T>)> {
        let n = self.layers.len();
        let mut cache = MlpCache { inputs: Vec::with_capacity(n), pre_activations: Vec::with_capacity(n - 1) };
        let mut h = x;
        for layer in &self.layers[..n - 1] {
            let z = layer.apply(&h)?;
            cache.inputs.push(h);
            h = self.activation.map(&z);
            cache.pre_activations.push(z);
        }
        let y = self.layers[n - 1].apply(&h)?;
        cache.inputs.push(h);
        Ok((y, cache))
    }
}

impl<T: Float> Layer<T> for Mlp<T> {
    type Cache = MlpCache<T>;

    fn forward(&self, x: &Matrix<T>) -> Result<(Matrix<T>, MlpCache<T>)> {
        self.forward_owned(x.clone())
    }

    fn backward(&mut self, cache: &MlpCache<T>, dy: &Matrix<T>) -> Result<Matrix<T>> {
        let last = self.layers.len() - 1;
        let mut grad = self.layers[last].backward(&cache.inputs[last], dy)?;
        for i in (0..last).rev() {
            grad = self.activation.backward_owned(&cache.pre_activations[i], grad)?;
            grad = self.layers[i].backward(&cache.inputs[i], &grad)?;
        }
        Ok(grad)
    }
}
// ANCHOR_END: mlp_layer

/// The name of layer `i`: its own (no allocation on the training step's
/// parameter walks), or `layers.{i}`.
fn layer_name(names: &Option<Vec<&'static str>>, i: usize) -> Cow<'static, str> {
    match names {
        Some(names) => Cow::Borrowed(names[i]),
        None => Cow::Owned(format!("layers.{i}")),
    }
}

impl<T: Float> Parameters<T> for Mlp<T> {
    fn visit<'a>(&'a self, f: &mut dyn FnMut(&str, &'a Param<T>)) {
        for (i, layer) in self.layers.iter().enumerate() {
            visit_child(&layer_name(&self.names, i), layer, f);
        }
    }
    fn visit_mut<'a>(&'a mut self, f: &mut dyn FnMut(&str, &'a mut Param<T>)) {
        for (i, layer) in self.layers.iter_mut().enumerate() {
            visit_child_mut(&layer_name(&self.names, i), layer, f);
        }
    }
}
