//! The tokenizers a GPT can be trained with, and how they are saved beside a
//! checkpoint (`tokenizer.json`).

use std::path::Path;

use addmul_tokenizer::{Bpe, BpeTrainer, CharTokenizer, Pattern, Tokenizer};
use serde_json::json;

use crate::{Error, Result};

/// Which tokenizer to train on a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerKind {
    /// One id per distinct character of the corpus (the default, as the
    /// article and nanoGPT's `shakespeare_char`).
    Char,
    /// Byte-level BPE with GPT-2's pre-splitting, trained to a vocabulary size.
    Bpe,
}

impl std::str::FromStr for TokenizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "char" => Ok(TokenizerKind::Char),
            "bpe" => Ok(TokenizerKind::Bpe),
            other => {
                Err(Error::Invalid { what: "tokenizer".into(), problem: format!("`{other}`: expected char or bpe") })
            }
        }
    }
}

/// A trained tokenizer of one of the supported kinds.
#[derive(Debug, Clone)]
pub enum TextTokenizer {
    /// Characters.
    Char(CharTokenizer),
    /// Byte-level BPE.
    Bpe(Bpe),
}

const FORMAT: &str = "addmul-tokenizer/1";

impl TextTokenizer {
    /// Trains a tokenizer of `kind` on `text` (`vocab_size` is used by BPE
    /// only).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] (e.g. a BPE vocabulary below 256).
    pub fn train(kind: TokenizerKind, text: &str, vocab_size: usize) -> Result<Self> {
        Ok(match kind {
            TokenizerKind::Char => TextTokenizer::Char(CharTokenizer::from_text(text)),
            TokenizerKind::Bpe => {
                TextTokenizer::Bpe(BpeTrainer::new(vocab_size).pattern(Some(Pattern::Gpt2)).train(text)?)
            }
        })
    }

    /// Token ids of a text to read, such as a prompt or a text to evaluate:
    /// a BPE's special tokens written in the text (GPT-2's
    /// `<|endoftext|>`) are read as those tokens, as Hugging Face's GPT-2
    /// tokenizer reads them.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for text the tokenizer cannot encode.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        Ok(match self {
            TextTokenizer::Char(t) => t.encode(text)?,
            TextTokenizer::Bpe(t) => t.encode_with(text, &addmul_tokenizer::SpecialPolicy::allow_all())?,
        })
    }

    /// The id of `<|endoftext|>` in a BPE that has it (GPT-2's), which ends a
    /// generated text.
    pub fn end_of_text(&self) -> Option<u32> {
        match self {
            TextTokenizer::Char(_) => None,
            TextTokenizer::Bpe(t) => t.special_id(addmul_tokenizer::ENDOFTEXT),
        }
    }

    /// As a trait object.
    pub fn as_dyn(&self) -> &dyn Tokenizer {
        match self {
            TextTokenizer::Char(t) => t,
            TextTokenizer::Bpe(t) => t,
        }
    }

    /// The JSON saved as `tokenizer.json`: `{"format", "kind", ...}` with the
    /// alphabet of a character tokenizer, or the BPE's own file format (a
    /// tiktoken rank file with a header).
    pub fn to_json(&self) -> String {
        let value = match self {
            TextTokenizer::Char(t) => {
                json!({ "format": FORMAT, "kind": "char", "alphabet": t.alphabet().iter().collect::<String>() })
            }
            TextTokenizer::Bpe(t) => {
                json!({ "format": FORMAT, "kind": "bpe", "bpe": t.to_file_string() })
            }
        };
        serde_json::to_string_pretty(&value).expect("a JSON value serialises")
    }

    /// Reads [`TextTokenizer::to_json`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for JSON that is not a tokenizer file;
    /// [`Error::Tokenizer`] for a corrupt BPE.
    pub fn from_json(text: &str) -> Result<Self> {
        let bad = |problem: &str| Error::Invalid { what: "tokenizer.json".into(), problem: problem.into() };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(bad(&format!("expected \"format\": \"{FORMAT}\"")));
        }
        match v.get("kind").and_then(|k| k.as_str()) {
            Some("char") => {
                let alphabet = v.get("alphabet").and_then(|a| a.as_str()).ok_or_else(|| bad("missing \"alphabet\""))?;
                Ok(TextTokenizer::Char(CharTokenizer::new(alphabet.chars())))
            }
            Some("bpe") => {
                let data = v.get("bpe").and_then(|a| a.as_str()).ok_or_else(|| bad("missing \"bpe\""))?;
                Ok(TextTokenizer::Bpe(Bpe::from_file_string(data)?))
            }
            _ => Err(bad("\"kind\" must be \"char\" or \"bpe\"")),
        }
    }
}

impl TextTokenizer {
    // ANCHOR: load_dir
    /// The tokenizer of a model folder: addmul's `tokenizer.json`, or a
    /// Hugging Face GPT-2 tokenizer (its `tokenizer.json`, else the
    /// `vocab.json` + `merges.txt` pair).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the file for a missing, unreadable or
    /// unsupported tokenizer (a Hugging Face tokenizer other than GPT-2's
    /// byte-level BPE).
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| Error::Io { context: format!("reading {}", path.display()), source: e })
        };
        let named = |path: &Path, e: Error| match e {
            Error::Invalid { what, problem } if what == "tokenizer.json" => {
                Error::Invalid { what: path.display().to_string(), problem }
            }
            Error::Tokenizer(e) => Error::Invalid { what: path.display().to_string(), problem: e.to_string() },
            e => e,
        };
        if json.is_file() {
            let text = read(&json)?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::Invalid { what: json.display().to_string(), problem: e.to_string() })?;
            return if v.get("model").is_some() && v.get("format").is_none() {
                hf_tokenizer(&v).map_err(|e| named(&json, e))
            } else {
                TextTokenizer::from_json(&text).map_err(|e| named(&json, e))
            };
        }
        if vocab.is_file() && merges.is_file() {
            let bpe = Bpe::gpt2_from_encoder_json(&read(&vocab)?, &read(&merges)?);
            return bpe.map(TextTokenizer::Bpe).map_err(|e| named(&vocab, e.into()));
        }
        Err(Error::Invalid {
            what: dir.display().to_string(),
            problem: "has no tokenizer: expected tokenizer.json (addmul's or Hugging Face's) or vocab.json and \
                      merges.txt"
                .into(),
        })
    }
    // ANCHOR_END: load_dir
}

impl TextTokenizer {
    /// GPT-2's byte-level BPE from the text of a Hugging Face
    /// `tokenizer.json` (the `tokenizers` library's format).
    ///
    /// # Errors
    /// [`Error::Invalid`] for JSON that is not such a tokenizer;
    /// [`Error::Tokenizer`] for an inconsistent vocabulary and merges.
    pub fn from_hf_tokenizer_json(text: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Error::Invalid { what: "tokenizer.json".into(), problem: e.to_string() })?;
        hf_tokenizer(&v)
    }
}

/// GPT-2's byte-level BPE from a Hugging Face `tokenizer.json` (the
/// `tokenizers` library's format): `model.vocab`, `model.merges` (as
/// `"a b"` strings or `["a", "b"]` pairs) and the special `added_tokens`.
fn hf_tokenizer(v: &serde_json::Value) -> Result<TextTokenizer> {
    let bad = |problem: String| Error::Invalid { what: "tokenizer.json".into(), problem };
    let model = &v["model"];
    if model["type"] != "BPE" || v["pre_tokenizer"]["type"] != "ByteLevel" {
        return Err(bad(format!(
            "is a {} tokenizer with a {} pre-tokenizer; addmul reads GPT-2's byte-level BPE (model BPE, \
             pre_tokenizer ByteLevel)",
            model["type"], v["pre_tokenizer"]["type"]
        )));
    }
    let mut vocab = model["vocab"].as_object().cloned().ok_or_else(|| bad("has no model.vocab object".into()))?;
    let mut specials = Vec::new();
    for added in v["added_tokens"].as_array().into_iter().flatten() {
        let (Some(content), Some(id)) = (added["content"].as_str(), added["id"].as_u64()) else {
            return Err(bad(format!("added token {added} has no content or id")));
        };
        vocab.insert(content.to_string(), id.into());
        specials.push(content.to_string());
    }
    let mut lines = String::from("#version: 0.2\n");
    for (i, merge) in
        model["merges"].as_array().ok_or_else(|| bad("has no model.merges list".into()))?.iter().enumerate()
    {
        let line = match merge {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(pair) if pair.len() == 2 && pair.iter().all(|p| p.is_string()) => {
                format!("{} {}", pair[0].as_str().unwrap_or_default(), pair[1].as_str().unwrap_or_default())
            }
            other => return Err(bad(format!("merge {i} is {other}, not two tokens"))),
        };
        lines.push_str(&line);
        lines.push('\n');
    }
    let specials: Vec<&str> = specials.iter().map(String::as_str).collect();
    let encoder = serde_json::Value::Object(vocab).to_string();
    Ok(TextTokenizer::Bpe(Bpe::from_encoder_json(&encoder, &lines, &specials, Some(Pattern::Gpt2))?))
}

/// Turns a stream of token ids into text as it arrives, holding back bytes
/// that do not yet form a whole character (byte-level tokens can split one)
/// and the tail that could still become a stop string.
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    bytes: Vec<u8>,
    text: String,
    emitted: usize,
    stops: Vec<String>,
    stopped: bool,
}

impl TextStream {
    /// A stream that stops at the first of `stops` (which is not emitted).
    pub fn new(stops: Vec<String>) -> Self {
        TextStream { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), ..Self::default() }
    }

    /// `true` once a stop string has appeared.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds a token's bytes; returns the text that is now safe to show.
    pub fn push(&mut self, token_bytes: &[u8]) -> String {
        if self.stopped {
            return String::new();
        }
        self.bytes.extend_from_slice(token_bytes);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(s) => s.len(),
            // An incomplete character at the end waits; invalid bytes in the
            // middle are shown as U+FFFD.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.bytes.len(),
        };
        let chunk: Vec<u8> = self.bytes.drain(..valid).collect();
        self.text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(at) =
            self.stops.iter().filter_map(|s| self.text[self.emitted..].find(s.as_str()).map(|i| self.emitted + i)).min()
        {
            self.stopped = true;
            let out = self.text[self.emitted..at].to_string();
            self.emitted = at;
            return out;
        }
        // Hold back the longest ending that could still grow into a stop
        // string.
        let pending = &self.text[self.emitted..];
        let hold = self
            .stops
            .iter()
            .filter_map(|s| (1..s.len()).rev().find(|&k| s.is_char_boundary(k) && pending.ends_with(&s[..k])))
            .max()
            .unwrap_or(0);
        let safe = self.text.len() - hold;
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        out
    }

    /// Whatever is still held back (at the end of generation).
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.bytes)).into_owned();
        self.text.push_str(&rest);
        let out = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        out
    }
}

/// GPT-2's tokenizer from the vocabulary `tiktoken-rs` bundles (its ranks,
/// read by this project's loader), so that no file needs to be at hand.
///
/// # Errors
/// [`Error::Invalid`] if the bundled vocabulary cannot be read.
pub fn gpt2_bundled() -> Result<addmul_tokenizer::Bpe> {
    use base64::Engine as _;
    let bundled = |e: &dyn std::fmt::Display| Error::Invalid {
        what: "GPT-2's vocabulary bundled in tiktoken-rs".into(),
        problem: e.to_string(),
    };
    let tk = tiktoken_rs::r50k_base().map_err(|e| bundled(&e))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ranks = String::with_capacity(50256 * 16);
    for id in 0..50256u32 {
        let bytes = tk.decode_bytes(&[id]).map_err(|e| bundled(&e))?;
        ranks.push_str(&b64.encode(bytes));
        ranks.push(' ');
        ranks.push_str(&id.to_string());
        ranks.push('\n');
    }
    Ok(Bpe::gpt2_from_tiktoken(&ranks)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizers_round_trip_through_json() {
        let text = "To be, or not to be: that is the question.";
        for kind in [TokenizerKind::Char, TokenizerKind::Bpe] {
            let t = TextTokenizer::train(kind, text, 270).unwrap();
            let back = TextTokenizer::from_json(&t.to_json()).unwrap();
            let ids = t.as_dyn().encode(text).unwrap();
            assert_eq!(back.as_dyn().encode(text).unwrap(), ids);
            assert_eq!(back.as_dyn().decode(&ids).unwrap(), text);
        }
        assert!(TextTokenizer::from_json("{}").is_err());
        assert!(TextTokenizer::from_json("not json").is_err());
    }

    #[test]
    fn the_stream_waits_for_whole_characters_and_cuts_at_stop_strings() {
        let mut s = TextStream::new(vec!["\n\n".into()]);
        let euro = "€".as_bytes();
        assert_eq!(s.push(&euro[..1]), "");
        assert_eq!(s.push(&euro[1..]), "€");
        assert_eq!(s.push(b"ab\n"), "ab");
        assert_eq!(s.push(b"\nnext"), "");
        assert!(s.stopped());
        assert_eq!(s.finish(), "");
        let mut s = TextStream::new(vec![]);
        assert_eq!(s.push(b"plain"), "plain");
        assert_eq!(s.finish(), "");
    }
}
