//! Parameters to and from safetensors, in Hugging Face GPT-2's names and
//! layouts.
//!
//! A parameter stored `[rows, cols]` column-major has the bytes of a
//! row-major `[cols, rows]` tensor, which is exactly how PyTorch stores GPT-2's
//! Conv1D weights (`[in, out]`) and embeddings (`[vocab, n_embd]`): nothing is
//! transposed on the way in or out.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use addmul_core::{Float, Matrix, Parameters};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use crate::{GptError, Result};

/// The little-endian bytes of a matrix's column-major storage.
fn to_bytes<T: Float>(m: &Matrix<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() * std::mem::size_of::<T>());
    for &v in m.iter() {
        if std::mem::size_of::<T>() == 4 {
            out.extend_from_slice(&(v.as_f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&v.as_f64().to_le_bytes());
        }
    }
    out
}

fn dtype_of<T: Float>() -> Dtype {
    if std::mem::size_of::<T>() == 4 { Dtype::F32 } else { Dtype::F64 }
}

/// Serialises named tensors `(name, row-major shape, column-major matrix)`
/// with metadata.
///
/// # Errors
/// [`GptError::Checkpoint`] if safetensors rejects the data.
pub fn serialize<T: Float>(
    tensors: &[(String, Vec<usize>, Matrix<T>)],
    metadata: HashMap<String, String>,
    path_for_errors: &Path,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(n, s, m)| (n.clone(), s.clone(), to_bytes(m))).collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| Ok((n.as_str(), TensorView::new(dtype_of::<T>(), s.clone(), b)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| GptError::checkpoint(path_for_errors, e.to_string()))?;
    safetensors::serialize(views, Some(metadata)).map_err(|e| GptError::checkpoint(path_for_errors, e.to_string()))
}

/// Every parameter of `model` as `(name, row-major shape, matrix)`.
pub fn named_tensors<T: Float>(model: &dyn Parameters<T>) -> Vec<(String, Vec<usize>, Matrix<T>)> {
    let mut out = Vec::new();
    model.visit(&mut |name, p| out.push((name.to_string(), p.row_major_shape(), p.value().clone())));
    out
}

/// Tensors by name: their row-major shape as stored, and their values as a
/// column-major matrix.
pub type Tensors<T> = BTreeMap<String, (Vec<usize>, Matrix<T>)>;

/// The tensors of a safetensors file, decoded to column-major matrices of `T`
/// shaped like the parameters they will fill: a row-major `[a, b]` tensor
/// becomes an `[b, a]` matrix and `[n]` becomes `[n, 1]`.
///
/// # Errors
/// [`GptError::Checkpoint`] for a corrupt or truncated file, an unsupported
/// dtype, or a tensor of more than two dimensions.
pub fn read_tensors<T: Float>(bytes: &[u8], path: &Path) -> Result<Tensors<T>> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| GptError::checkpoint(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let values: Vec<T> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| T::of(f32::from_le_bytes([c[0], c[1], c[2], c[3]]).into()))
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| T::of(f64::from_le_bytes(c.try_into().expect("chunks of 8 bytes"))))
                .collect(),
            other => {
                return Err(GptError::checkpoint(
                    path,
                    format!("tensor {name} has dtype {other:?}; expected F32 or F64"),
                ));
            }
        };
        let (rows, cols) = match shape.as_slice() {
            [n] => (*n, 1),
            [a, b] => (*b, *a),
            [] => (1, 1),
            _ => {
                return Err(GptError::checkpoint(
                    path,
                    format!("tensor {name} has shape {shape:?}; expected 1 or 2 dimensions"),
                ));
            }
        };
        out.insert(name, (shape, Matrix::from_vec(rows, cols, values)));
    }
    Ok(out)
}

/// Fills every parameter of `model` from `tensors` by name.
///
/// Tensors that the model does not have are an error, except the ones
/// Hugging Face files carry for their own reasons (the causal-mask buffers
/// `*.attn.bias` / `*.attn.masked_bias` of old files, an `lm_head.weight`
/// equal to `transformer.wte.weight`) and all-zero biases of a model built
/// without biases.
///
/// # Errors
/// [`GptError::Checkpoint`] naming the first missing tensor, unexpected
/// tensor, shape mismatch, or non-finite value.
pub fn load_into<T: Float>(model: &mut dyn Parameters<T>, mut tensors: Tensors<T>, path: &Path) -> Result<()> {
    let mut error = None;
    // A separate output head must be a copy of the embeddings: addmul's head
    // is tied to them (as GPT-2's is), and using wte for a different
    // `lm_head.weight` would silently give other logits.
    if let (Some((head_shape, head)), Some((wte_shape, wte))) =
        (tensors.get("lm_head.weight"), tensors.get("transformer.wte.weight"))
        && (head_shape != wte_shape || head != wte)
    {
        return Err(GptError::checkpoint(
            path,
            "tensor lm_head.weight differs from transformer.wte.weight: the output head is not tied to the \
             embeddings (tie_word_embeddings = false), which addmul's GPT does not support",
        ));
    }
    model.visit_mut(&mut |name, p| {
        if error.is_some() {
            return;
        }
        error = match tensors.remove(name) {
            None => Some(format!("tensor {name} is missing")),
            Some((shape, _)) if shape != p.row_major_shape() => {
                Some(format!("tensor {name} has shape {shape:?}; the model's config needs {:?}", p.row_major_shape()))
            }
            Some((_, m)) if m.iter().any(|v| !v.as_f64().is_finite()) => {
                let (at, v) = m.iter().enumerate().find(|(_, v)| !v.as_f64().is_finite()).expect("found above");
                Some(format!("tensor {name} holds {} at element {at}: the weights are damaged", v.as_f64()))
            }
            Some((_, m)) => p.load(&m).err().map(|e| e.to_string()),
        };
    });
    if let Some(problem) = error {
        return Err(GptError::checkpoint(path, problem));
    }
    for (name, (_, m)) in tensors {
        let hf_buffer = name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight";
        let zero_bias = name.ends_with(".bias") && m.iter().all(|v| *v == T::zero());
        if !(hf_buffer || zero_bias) {
            return Err(GptError::checkpoint(
                path,
                format!("tensor {name} does not belong to a model of this configuration"),
            ));
        }
    }
    Ok(())
}
