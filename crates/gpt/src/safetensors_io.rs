//! Parameters to and from safetensors, in Hugging Face GPT-2's names and
//! layouts.
//!
//! A parameter stored `[rows, cols]` column-major has the bytes of a
//! row-major `[cols, rows]` tensor, which is exactly how PyTorch stores GPT-2's
//! Conv1D weights (`[in, out]`) and embeddings (`[vocab, n_embd]`): nothing is
//! transposed on the way in or out.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use addmul_core::{Float, Matrix, Parameters, bf16_to_f32, f16_to_f32};
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

// --- streaming a model's weights in -----------------------------------------

/// The element types a weights file may hold; 16-bit ones are widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    F32,
    F64,
    F16,
    Bf16,
}

impl Stored {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "F32" => Stored::F32,
            "F64" => Stored::F64,
            "F16" => Stored::F16,
            "BF16" => Stored::Bf16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Stored::F32 => 4,
            Stored::F64 => 8,
            Stored::F16 | Stored::Bf16 => 2,
        }
    }

    /// The value of one element's little-endian bytes.
    fn decode(self, b: &[u8]) -> f64 {
        match self {
            Stored::F32 => f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            Stored::F64 => f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            Stored::Bf16 => f64::from(bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
            Stored::F16 => f64::from(f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        }
    }
}

/// Where one tensor's bytes are in a safetensors file.
#[derive(Debug, Clone)]
struct Entry {
    stored: Stored,
    shape: Vec<usize>,
    /// Byte offset from the start of the file.
    start: u64,
}

impl Entry {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Reads a safetensors header (the 8-byte length, then JSON naming each
/// tensor's dtype, shape and byte range) from a file of `len` bytes, checking
/// that every range lies in the file and fits its shape.
fn read_header<R: Read + Seek>(r: &mut R, len: u64, path: &Path) -> Result<BTreeMap<String, Entry>> {
    let bad = |problem: String| GptError::checkpoint(path, format!("not a valid safetensors file: {problem}"));
    let mut n = [0u8; 8];
    r.seek(SeekFrom::Start(0)).map_err(GptError::io("reading", path))?;
    r.read_exact(&mut n).map_err(|_| bad("shorter than its 8-byte header length".into()))?;
    let n = u64::from_le_bytes(n);
    if n > len.saturating_sub(8) || n > 100_000_000 {
        return Err(bad(format!("a header of {n} bytes in a file of {len}")));
    }
    let mut header = vec![0u8; n as usize];
    r.read_exact(&mut header).map_err(GptError::io("reading", path))?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("its header is not a JSON object: {e}")))?;
    let data_start = 8 + n;
    let mut out = BTreeMap::new();
    for (name, v) in json {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v["dtype"].as_str().unwrap_or("missing");
        let stored = Stored::parse(dtype).ok_or_else(|| {
            GptError::checkpoint(path, format!("tensor {name} has dtype {dtype}; expected F32, F64, F16 or BF16"))
        })?;
        let shape: Option<Vec<usize>> =
            v["shape"].as_array().and_then(|s| s.iter().map(|d| d.as_u64().map(|d| d as usize)).collect());
        let offsets: Option<Vec<u64>> =
            v["data_offsets"].as_array().and_then(|o| o.iter().map(serde_json::Value::as_u64).collect());
        let (Some(shape), Some([begin, end])) = (shape, offsets.as_deref().and_then(|o| <[u64; 2]>::try_from(o).ok()))
        else {
            return Err(bad(format!("tensor {name} has no shape or data_offsets")));
        };
        if shape.len() > 2 {
            return Err(GptError::checkpoint(
                path,
                format!("tensor {name} has shape {shape:?}; expected 1 or 2 dimensions"),
            ));
        }
        let bytes = shape.iter().try_fold(stored.size(), |acc, &d| acc.checked_mul(d));
        if end < begin || bytes != Some((end - begin) as usize) || data_start.checked_add(end).is_none_or(|e| e > len) {
            return Err(bad(format!(
                "tensor {name}'s bytes {begin}..{end} do not fit its shape {shape:?} or the file"
            )));
        }
        out.insert(name, Entry { stored, shape, start: data_start + begin });
    }
    Ok(out)
}

/// The number of values the tensors of a safetensors file of `len` bytes
/// hold, from its header alone.
///
/// # Errors
/// [`GptError::Checkpoint`] for a malformed header.
pub fn stored_values<R: Read + Seek>(r: &mut R, len: u64, path: &Path) -> Result<usize> {
    Ok(read_header(r, len, path)?.values().map(Entry::len).sum())
}

/// Streams a tensor's values, widened to f64, a chunk at a time, to `each`
/// (element index, value); stops at the first error `each` returns.
fn stream<R: Read + Seek>(
    r: &mut R,
    entry: &Entry,
    path: &Path,
    mut each: impl FnMut(usize, f64) -> std::result::Result<(), String>,
) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    r.seek(SeekFrom::Start(entry.start)).map_err(GptError::io("reading", path))?;
    let size = entry.stored.size();
    let mut buf = vec![0u8; CHUNK.min(entry.len() * size)];
    let mut done = 0;
    while done < entry.len() {
        let count = (entry.len() - done).min(CHUNK / size);
        let bytes = &mut buf[..count * size];
        r.read_exact(bytes).map_err(GptError::io("reading", path))?;
        for (i, b) in bytes.chunks_exact(size).enumerate() {
            each(done + i, entry.stored.decode(b)).map_err(|problem| GptError::checkpoint(path, problem))?;
        }
        done += count;
    }
    Ok(())
}

/// Fills every parameter of `model` from a safetensors file of `len` bytes
/// read through `r`, straight into the parameters: no copy of the file or of
/// a tensor is held (a 1 MiB buffer at a time), so loading needs little more
/// memory than the model. F16 and BF16 tensors are widened.
///
/// Every parameter must be present, with its shape and finite values. Extra
/// tensors are an error, except the ones Hugging Face files carry for their
/// own reasons (the causal-mask buffers `*.attn.bias` / `*.attn.masked_bias`
/// of old files, an `lm_head.weight` equal to `transformer.wte.weight`: a
/// different one would be an untied head, which addmul's GPT does not have)
/// and all-zero biases of a model built without biases.
///
/// # Errors
/// [`GptError::Checkpoint`] naming the first problem and the file;
/// [`GptError::Io`] if it cannot be read.
pub fn load_stream_into<T: Float, R: Read + Seek>(
    model: &mut dyn Parameters<T>,
    r: &mut R,
    len: u64,
    path: &Path,
) -> Result<()> {
    let mut entries = read_header(r, len, path)?;
    let mut error: Option<GptError> = None;
    model.visit_mut(&mut |name, p| {
        if error.is_some() {
            return;
        }
        let Some(entry) = entries.remove(name) else {
            error = Some(GptError::checkpoint(path, format!("tensor {name} is missing")));
            return;
        };
        if entry.shape != p.row_major_shape() {
            let problem = format!(
                "tensor {name} has shape {:?}; the model's config needs {:?}",
                entry.shape,
                p.row_major_shape()
            );
            error = Some(GptError::checkpoint(path, problem));
            return;
        }
        let values = p.value_mut().as_mut_slice();
        let filled = stream(r, &entry, path, |i, v| {
            if !v.is_finite() {
                return Err(format!("tensor {name} holds {v} at element {i}: the weights are damaged"));
            }
            values[i] = T::of(v);
            Ok(())
        });
        error = filled.err();
    });
    if let Some(e) = error {
        return Err(e);
    }
    for (name, entry) in &entries {
        if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
            continue;
        }
        if name == "lm_head.weight" {
            let mut wte = None;
            model.visit(&mut |n, p| {
                if n == "transformer.wte.weight" {
                    wte = Some((p.row_major_shape(), p.value().as_slice().to_vec()));
                }
            });
            let untied = "tensor lm_head.weight differs from transformer.wte.weight: the output head is not tied \
                          to the embeddings (tie_word_embeddings = false), which addmul's GPT does not support";
            match &wte {
                Some((shape, values)) if *shape == entry.shape => {
                    stream(r, entry, path, |i, v| if v == values[i].as_f64() { Ok(()) } else { Err(untied.into()) })?;
                }
                _ => return Err(GptError::checkpoint(path, untied)),
            }
            continue;
        }
        let foreign = format!("tensor {name} does not belong to a model of this configuration");
        if !name.ends_with(".bias") {
            return Err(GptError::checkpoint(path, foreign));
        }
        stream(r, entry, path, |_, v| if v == 0.0 { Ok(()) } else { Err(foreign.clone()) })?;
    }
    Ok(())
}
