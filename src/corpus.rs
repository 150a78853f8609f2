//! Where `addmul train` gets its text: a file you give it; otherwise
//! tinyshakespeare, downloaded once into a cache and checked against its
//! SHA-256; otherwise (offline) the text of this project's own book.

use std::io::Read;
use std::path::{Path, PathBuf};

use addmul_gpt::GptError;
use sha2::{Digest, Sha256};

/// The canonical address of tinyshakespeare (Karpathy's char-rnn repository).
pub const TINYSHAKESPEARE_URL: &str =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";

/// The SHA-256 of tinyshakespeare's 1,115,394 bytes.
pub const TINYSHAKESPEARE_SHA256: &str = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed";

/// Where a corpus came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file given on the command line.
    File(PathBuf),
    /// tinyshakespeare, already in the cache.
    Cached(PathBuf),
    /// tinyshakespeare, downloaded just now into the cache.
    Downloaded(PathBuf),
    /// The book's text, built into the binary.
    Embedded,
}

/// A training text.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The text.
    pub text: String,
    /// Where it came from.
    pub source: Source,
}

/// What can go wrong getting a corpus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorpusError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text file is not UTF-8.
    #[error("{path} is not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// The download failed.
    #[error("downloading {url}: {reason}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The downloaded bytes are not the expected file.
    #[error("{url} has SHA-256 {got}, expected {expected}; nothing was saved")]
    Checksum {
        /// The address.
        url: String,
        /// The expected digest.
        expected: String,
        /// The digest of what arrived.
        got: String,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CorpusError + 'a {
    move |source| CorpusError::Io { action, path: path.to_path_buf(), source }
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of this project's book, built into the binary.
pub fn book_text() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/book.txt"))
}

/// The cache folder: `$ADDMUL_CACHE`, else `$XDG_CACHE_HOME/addmul`, else
/// `~/.cache/addmul`, else `.addmul-cache` in the current folder.
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("ADDMUL_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("addmul")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("addmul")))
        .unwrap_or_else(|| PathBuf::from(".addmul-cache"))
}

/// Reads a UTF-8 text file.
///
/// # Errors
/// [`CorpusError::Io`] or [`CorpusError::NotUtf8`].
pub fn read_text(path: &Path) -> Result<String, CorpusError> {
    let bytes = std::fs::read(path).map_err(io("reading", path))?;
    String::from_utf8(bytes)
        .map_err(|e| CorpusError::NotUtf8 { path: path.to_path_buf(), offset: e.utf8_error().valid_up_to() })
}

/// Downloads `url` into `dest` if its SHA-256 is `sha256`: the bytes are
/// checked in memory, then written to a temporary file beside `dest`, synced
/// and renamed into place
/// ([`write_atomically`](addmul_gpt::checkpoint::write_atomically)), so that
/// `dest` is never a partial file.
///
/// # Errors
/// [`CorpusError::Download`] for a network or HTTP error,
/// [`CorpusError::Checksum`] for the wrong bytes, [`CorpusError::Io`].
pub fn fetch(url: &str, sha256: &str, dest: &Path) -> Result<(), CorpusError> {
    let failed = |reason: String| CorpusError::Download { url: url.to_string(), reason };
    let agent =
        ureq::Agent::config_builder().timeout_global(Some(std::time::Duration::from_secs(60))).build().new_agent();
    let mut response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    response.body_mut().as_reader().take(64 << 20).read_to_end(&mut bytes).map_err(|e| failed(e.to_string()))?;
    let got = sha256_hex(&bytes);
    if got != sha256 {
        return Err(CorpusError::Checksum { url: url.to_string(), expected: sha256.to_string(), got });
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    addmul_gpt::checkpoint::write_atomically(dest, &bytes).map_err(|e| match e {
        GptError::Io { action, path, source } => CorpusError::Io { action, path, source },
        other => CorpusError::Io { action: "saving", path: dest.to_path_buf(), source: std::io::Error::other(other) },
    })
}

/// Where the default corpus comes from when no file is given: an address,
/// the SHA-256 of what it serves, and the file it is cached in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The text's name, for messages.
    pub name: String,
    /// The address.
    pub url: String,
    /// The SHA-256 of the text, in lower-case hex.
    pub sha256: String,
    /// The cache file.
    pub cache: PathBuf,
}

impl Remote {
    /// tinyshakespeare, cached as `tinyshakespeare.txt` in [`cache_dir`].
    pub fn tinyshakespeare() -> Self {
        Remote {
            name: "tinyshakespeare".into(),
            url: TINYSHAKESPEARE_URL.into(),
            sha256: TINYSHAKESPEARE_SHA256.into(),
            cache: cache_dir().join("tinyshakespeare.txt"),
        }
    }
}

/// The corpus for a training run: `data` if given; else tinyshakespeare from
/// the cache, downloading it on first use; else, if that fails, the book's
/// own text. `say` receives one line about what was chosen (and why).
///
/// # Errors
/// Only for a given `data` file that cannot be read as UTF-8 text.
pub fn load(data: Option<&Path>, say: &mut dyn FnMut(&str)) -> Result<Corpus, CorpusError> {
    load_or(data, &Remote::tinyshakespeare(), say)
}

/// [`load`] with another default text than tinyshakespeare: `data` if given;
/// else `remote`'s cache file if its digest matches; else `remote` downloaded
/// into its cache; else the book's own text.
///
/// # Errors
/// Only for a given `data` file that cannot be read as UTF-8 text.
pub fn load_or(data: Option<&Path>, remote: &Remote, say: &mut dyn FnMut(&str)) -> Result<Corpus, CorpusError> {
    if let Some(path) = data {
        let text = read_text(path)?;
        say(&format!("corpus: {} ({} characters)", path.display(), text.chars().count()));
        return Ok(Corpus { text, source: Source::File(path.to_path_buf()) });
    }
    let Remote { name, url, sha256, cache } = remote;
    if let Ok(text) = read_text(cache)
        && sha256_hex(text.as_bytes()) == *sha256
    {
        say(&format!("corpus: {name} from the cache, {}", cache.display()));
        return Ok(Corpus { text, source: Source::Cached(cache.clone()) });
    }
    say(&format!("corpus: downloading {name} from {url}"));
    match fetch(url, sha256, cache).and_then(|()| read_text(cache)) {
        Ok(text) => {
            say(&format!("corpus: saved to {}", cache.display()));
            Ok(Corpus { text, source: Source::Downloaded(cache.clone()) })
        }
        Err(e) => {
            say(&format!(
                "corpus: could not get {name} ({e}); training on this project's own book instead \
                 ({} characters, built into the program). Pass --data FILE to train on a text of your choice.",
                book_text().chars().count()
            ));
            Ok(Corpus { text: book_text().to_string(), source: Source::Embedded })
        }
    }
}
