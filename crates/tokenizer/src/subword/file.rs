//! Writing and reading the text format that subword models are saved in: a
//! header, the dummy-prefix flag, then one line per piece with a value and
//! the piece in base64. Each model picks its header and what the value is (a
//! score for the unigram model, a merge rank for BPE).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::{Error, Result};

/// Writes a subword model: `magic`, the dummy-prefix flag, then one line per
/// (value, piece): the value and the piece in base64.
pub(super) fn write_model(magic: &str, dummy_prefix: bool, lines: impl Iterator<Item = (String, String)>) -> String {
    let lines: Vec<(String, String)> = lines.collect();
    let mut s = format!("{magic}\ndummy_prefix {dummy_prefix}\npieces {}\n", lines.len());
    for (value, piece) in lines {
        s.push_str(&format!("{value} {}\n", BASE64.encode(piece)));
    }
    s
}

/// One piece's line as [`read_model`] reads it.
pub(super) struct PieceLine {
    /// The 1-based line in the file, for errors about the value.
    pub(super) line: usize,
    /// The value as written (a score or a rank).
    pub(super) value: String,
    /// The piece, decoded from base64.
    pub(super) piece: String,
}

/// Reads [`write_model`]'s format: the flag and every piece's line.
///
/// # Errors
/// [`Error::Parse`], naming `format`, for a wrong header or flag, a missing
/// or malformed line, bad base64, a piece that is not UTF-8, or a non-empty
/// line after the pieces.
pub(super) fn read_model(format: &'static str, magic: &str, text: &str) -> Result<(bool, Vec<PieceLine>)> {
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut next = |what: &str| lines.next().ok_or_else(|| Error::parse(format, 0, format!("ends before {what}")));
    let (n, header) = next("the header")?;
    if header != magic {
        return Err(Error::parse(format, n, format!("expected {magic:?}, got {header:?}")));
    }
    let (n, flag) = next("the dummy prefix flag")?;
    let dummy_prefix = match flag {
        "dummy_prefix true" => true,
        "dummy_prefix false" => false,
        _ => return Err(Error::parse(format, n, format!("expected `dummy_prefix true|false`, got {flag:?}"))),
    };
    let (n, count) = next("the piece count")?;
    let count: usize = count
        .strip_prefix("pieces ")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::parse(format, n, format!("expected `pieces <count>`, got {count:?}")))?;
    // The count comes from the file: every piece takes a line of it, so the
    // text's length bounds what can really follow.
    let mut out = Vec::with_capacity(count.min(text.len()));
    for _ in 0..count {
        let (n, line) = next("the last piece")?;
        let (value, b64) = line
            .split_once(' ')
            .ok_or_else(|| Error::parse(format, n, format!("expected `<value> <base64 piece>`, got {line:?}")))?;
        let bytes = BASE64.decode(b64).map_err(|e| Error::parse(format, n, format!("bad base64 {b64:?}: {e}")))?;
        let piece = String::from_utf8(bytes).map_err(|_| Error::parse(format, n, "piece is not UTF-8"))?;
        out.push(PieceLine { line: n, value: value.to_string(), piece });
    }
    if let Some((n, extra)) = lines.find(|(_, l)| !l.is_empty()) {
        return Err(Error::parse(format, n, format!("unexpected line after the pieces: {extra:?}")));
    }
    Ok((dummy_prefix, out))
}

/// Writes `text` to `path`, with the path in the error.
pub(super) fn write_file(path: &Path, text: String) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::Io { context: format!("writing {}", path.display()), source })
}
