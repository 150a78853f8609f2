//! The article's first example: a network that tells a leaf from a flower.
//!
//! An object is four numbers, its dominant colour (R, G, B) and its volume in
//! millilitres; the network answers with two numbers, a score for "leaf" and
//! one for "flower", and the larger wins.
//!
//! - [`ArticleNetwork`]: the article's 4-3-2 network with fixed weights. Its
//!   top hidden neuron reproduces the article's worked number: for the leaf
//!   (32, 107, 56, 11.2) and weights (0.10, -0.29, -0.07, 0.46) it is
//!   `-26.598`, or `-26.348` with a bias of 0.25.
//! - [`generate`]: a data set of leaves and flowers drawn from documented
//!   distributions (colour families and log-normal volumes that overlap).
//! - [`train_classifier`]: learns the weights by gradient descent, and with
//!   [`ClassifierConfig::overfitting`] shows a network memorising its
//!   training set while getting worse on new objects.
//!
//! # Example
//! ```
//! use addmul_leafflower::{ARTICLE_LEAF, ArticleNetwork, Class};
//! let eval = ArticleNetwork::new([0.0; 3]).evaluate(ARTICLE_LEAF)?;
//! assert!((eval.hidden[0] - -26.598).abs() < 1e-12);
//! assert_eq!(eval.class, Class::Leaf);
//! # Ok::<(), addmul_core::Error>(())
//! ```
#![deny(missing_docs)]

mod article;
mod classifier;
mod data;

pub use article::{ARTICLE_LEAF, ArticleNetwork, Evaluation, HIDDEN_WEIGHTS, OUTPUT_WEIGHTS, SUNFLOWER};
pub use classifier::{Classifier, ClassifierConfig, TrainingRun, train_classifier};
pub use data::{Class, Example, Standardizer, generate};
