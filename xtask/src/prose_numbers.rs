//! Numbers typed by hand: the book's prose, the README and ARCHITECTURE.md
//! may not contain a number that looks measured unless it is a
//! `{{#value key}}` (computed by a generator) or listed, with a reason, in
//! `book/allowed-numbers.toml` (a chapter number, a year, a figure quoted
//! from the article or a paper, a constant the text defines).
//!
//! What looks measured: a decimal (`1.88`, `1e-5`), a number with thousands
//! separators (`3,000`), a percentage (`50%`, `50 percent`), an integer of
//! [`LARGE`] or more, and any number followed by a unit of time, size or
//! speed-up (`15 s`, `3 min`, `2 GB`, `1.5x`). Small integers ("two hidden
//! layers", "chapter 5") are not flagged: they are counts the text defines.
//!
//! What is not prose: fenced code blocks, inline code, `{{#...}}`
//! directives, math (`$...$`, `$$` blocks: the article's worked examples),
//! link targets and addresses, HTML comments, and the blocks that
//! `cargo xtask book` generates between [`GENERATED_BEGIN`] and
//! [`GENERATED_END`] markers.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The smallest integer that looks measured on its own.
pub const LARGE: u64 = 100;

/// The allowlist, relative to the repository root.
pub const ALLOWLIST: &str = "book/allowed-numbers.toml";

/// The documents outside the book that are checked too, relative to the
/// repository root.
pub const OTHER_DOCUMENTS: [&str; 2] = ["README.md", "ARCHITECTURE.md"];

/// A line starting with this opens a block written by `cargo xtask book`.
pub const GENERATED_BEGIN: &str = "<!-- begin generated";

/// A line starting with this closes a generated block.
pub const GENERATED_END: &str = "<!-- end generated";

/// Units after a number that make it a measurement (times, sizes, speed-ups).
const UNITS: [&str; 20] = [
    "ms", "s", "min", "minute", "minutes", "second", "seconds", "hour", "hours", "h", "µs", "ns", "GB", "MB", "kB",
    "KB", "GiB", "MiB", "x", "×",
];

/// A number in prose that looks measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// 1-based line number.
    pub line: usize,
    /// The number as written (`−0.29`, `3,000`, `50%`).
    pub text: String,
}

/// One entry of the allowlist: numbers a document may contain, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Allowed {
    /// The document, relative to the repository root (`book/src/ch14-gpt.md`).
    pub file: String,
    /// The numbers, as written in the document.
    pub numbers: Vec<String>,
    /// Why they are not measurements.
    pub reason: String,
}

/// Parses the allowlist: `[[allow]]` tables with `file`, `numbers` and a
/// non-empty `reason`.
pub fn parse_allowlist(text: &str) -> Result<Vec<Allowed>> {
    let table: toml::Table = text.parse().context("not valid TOML")?;
    let Some(entries) = table.get("allow") else { return Ok(Vec::new()) };
    let entries = entries.as_array().context("`allow` must be an array of tables ([[allow]])")?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| allowed_entry(e).with_context(|| format!("[[allow]] number {}", i + 1)))
        .collect()
}

/// One `[[allow]]` table.
fn allowed_entry(entry: &toml::Value) -> Result<Allowed> {
    let text = |key: &str| -> Result<String> {
        let value =
            entry.get(key).and_then(toml::Value::as_str).with_context(|| format!("`{key}` (text) is missing"))?;
        Ok(value.trim().to_string())
    };
    let numbers = entry
        .get("numbers")
        .and_then(toml::Value::as_array)
        .context("`numbers` (a list of strings) is missing")?
        .iter()
        .map(|n| n.as_str().map(str::to_string).context("`numbers` holds something other than a string"))
        .collect::<Result<Vec<_>>>()?;
    let allowed = Allowed { file: text("file")?, numbers, reason: text("reason")? };
    if allowed.reason.is_empty() {
        bail!("{}: the reason is empty; say why these numbers are not measurements", allowed.file);
    }
    if allowed.numbers.is_empty() {
        bail!("{}: `numbers` is empty", allowed.file);
    }
    Ok(allowed)
}

/// Reads the allowlist under `root` (none if the file does not exist).
pub fn read_allowlist(root: &Path) -> Result<Vec<Allowed>> {
    let path = root.join(ALLOWLIST);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_allowlist(&text).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Every number in `markdown`'s prose that looks measured, in order.
pub fn typed_numbers(markdown: &str) -> Vec<Typed> {
    let mut out = Vec::new();
    for (index, line) in prose_lines(markdown).into_iter().enumerate() {
        for text in line_numbers(&line) {
            out.push(Typed { line: index + 1, text });
        }
    }
    out
}

/// `markdown`'s lines with everything that is not prose blanked (one entry
/// per line, so that indices stay line numbers).
fn prose_lines(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut fence, mut math, mut generated, mut comment) = (None::<&str>, false, false, false);
    for line in markdown.lines() {
        let trimmed = line.trim();
        let skip = if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
            true
        } else if let Some(marker) = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m)) {
            fence = Some(marker);
            true
        } else if generated {
            generated = !trimmed.starts_with(GENERATED_END);
            true
        } else if trimmed.starts_with(GENERATED_BEGIN) {
            generated = true;
            true
        } else if trimmed == "$$" {
            math = !math;
            true
        } else {
            math
        };
        if skip {
            out.push(String::new());
            continue;
        }
        let (text, still_in_comment) = without_comments(line, comment);
        comment = still_in_comment;
        out.push(blank_non_prose(&text));
    }
    out
}

/// `line` without HTML comments; `open` says whether a comment from an
/// earlier line is still open. Returns the text and whether a comment stays
/// open after it.
fn without_comments(line: &str, mut open: bool) -> (String, bool) {
    let mut out = String::new();
    let mut rest = line;
    loop {
        if open {
            match rest.find("-->") {
                Some(end) => {
                    rest = &rest[end + 3..];
                    open = false;
                }
                None => return (out, true),
            }
        } else {
            match rest.find("<!--") {
                Some(start) => {
                    out.push_str(&rest[..start]);
                    rest = &rest[start + 4..];
                    open = true;
                }
                None => {
                    out.push_str(rest);
                    return (out, false);
                }
            }
        }
    }
}

/// Blanks inline code, `{{#...}}` directives, inline math, link targets and
/// addresses in one line of prose.
fn blank_non_prose(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let skipped = if c == '`' {
            let ticks = rest.len() - rest.trim_start_matches('`').len();
            let marker = &rest[..ticks];
            rest[ticks..].find(marker).map(|end| ticks + end + ticks)
        } else if rest.starts_with("{{#") {
            rest.find("}}").map(|end| end + 2)
        } else if c == '$' {
            rest[1..].find('$').map(|end| end + 2)
        } else if rest.starts_with("](") {
            rest.find(')').map(|end| end + 1)
        } else if rest.starts_with("http://") || rest.starts_with("https://") {
            Some(rest.find(char::is_whitespace).unwrap_or(rest.len()))
        } else {
            None
        };
        match skipped {
            Some(n) => {
                out.push(' ');
                rest = &rest[n..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// The numbers in one line of prose that look measured.
fn line_numbers(line: &str) -> Vec<String> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || !starts_a_number(&chars, i) {
            i += 1;
            continue;
        }
        let sign = i > 0 && is_minus(chars[i - 1]) && (i < 2 || !chars[i - 2].is_alphanumeric());
        let end = number_end(&chars, i);
        let start = if sign { i - 1 } else { i };
        let text: String = chars[start..end].iter().collect();
        let after: String = chars[end..].iter().collect();
        if looks_measured(&text, &after) {
            out.push(text);
        }
        i = end;
    }
    out
}

/// Whether a minus sign (ASCII or U+2212).
fn is_minus(c: char) -> bool {
    c == '-' || c == '−'
}

/// Whether the digit at `i` starts a number rather than continuing a name
/// (`GPT-2`, `AVX-512`, `h.0`, `f32`, `x_1`).
fn starts_a_number(chars: &[char], i: usize) -> bool {
    let Some(&before) = i.checked_sub(1).and_then(|j| chars.get(j)) else { return true };
    if before.is_alphanumeric() || before == '_' || before == '.' {
        return false;
    }
    // `GPT-2`: a hyphen right after a letter joins a name.
    !(is_minus(before) && i >= 2 && chars[i - 2].is_alphabetic())
}

/// Where the number starting at `i` ends: digits, `,ddd` groups, a decimal
/// part, an exponent and a percent sign.
fn number_end(chars: &[char], i: usize) -> usize {
    let digits = |from: usize| (from..chars.len()).find(|&j| !chars[j].is_ascii_digit()).unwrap_or(chars.len());
    let mut end = digits(i);
    // Thousands: a comma and exactly three digits.
    while chars.get(end) == Some(&',') && digits(end + 1) == end + 4 {
        end += 4;
    }
    if chars.get(end) == Some(&'.') && chars.get(end + 1).is_some_and(char::is_ascii_digit) {
        end = digits(end + 1);
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let sign = usize::from(chars.get(end + 1).is_some_and(|&c| is_minus(c) || c == '+'));
        if chars.get(end + 1 + sign).is_some_and(char::is_ascii_digit) {
            end = digits(end + 1 + sign);
        }
    }
    if chars.get(end) == Some(&'%') {
        end += 1;
    }
    end
}

/// Whether the number `text`, followed by `after`, looks measured.
fn looks_measured(text: &str, after: &str) -> bool {
    let bare = text.trim_start_matches(is_minus).trim_end_matches('%');
    let decimal = bare.contains(['.', 'e', 'E']);
    let grouped = bare.contains(',');
    let percent = text.ends_with('%') || after.starts_with(" percent");
    let large = bare.parse::<u64>().is_ok_and(|n| n >= LARGE);
    let word: String = after.trim_start_matches(' ').chars().take_while(|c| !c.is_whitespace()).collect();
    let word = word.trim_end_matches(|c: char| c.is_ascii_punctuation() && c != '%');
    let mut rest = after.chars();
    let times = matches!(rest.next(), Some('x' | '×')) && !rest.next().is_some_and(char::is_alphanumeric);
    let unit = UNITS.contains(&word) || times;
    decimal || grouped || percent || large || unit
}

/// A document to check: its path relative to the repository root, and text.
#[derive(Debug, Clone)]
pub struct Document {
    /// `book/src/ch14-gpt.md`, `README.md`.
    pub file: String,
    /// Its Markdown.
    pub text: String,
}

/// Checks `documents` against `allowed`: every number that looks measured
/// must be allowed for its document, and every allowed number must still
/// occur in its document. Entries for documents not given are checked
/// only for existence, by the caller. Returns the problems, each a line.
pub fn check(documents: &[Document], allowed: &[Allowed]) -> Vec<String> {
    let mut by_file: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for entry in allowed {
        for number in &entry.numbers {
            by_file.entry(entry.file.as_str()).or_default().insert(number.as_str(), entry.reason.as_str());
        }
    }
    let mut problems = Vec::new();
    for doc in documents {
        let permitted = by_file.get(doc.file.as_str());
        let found = typed_numbers(&doc.text);
        for typed in &found {
            if !permitted.is_some_and(|p| p.contains_key(typed.text.as_str())) {
                problems.push(format!(
                    "{}:{}: `{}` looks measured but is typed by hand. Compute it in a generator \
                     (xtask/src/chapters) and write {{{{#value key}}}} instead; or, if it is not a measurement \
                     (a chapter number, a year, a figure quoted from the article or a paper, a constant the text \
                     defines), add it to {ALLOWLIST} for {} with the reason",
                    doc.file, typed.line, typed.text, doc.file
                ));
            }
        }
        for (number, reason) in permitted.into_iter().flatten() {
            if !found.iter().any(|t| t.text == *number) {
                problems.push(format!(
                    "{ALLOWLIST}: {} no longer contains `{number}` (allowed because: {reason}); remove it from the \
                     allowlist",
                    doc.file
                ));
            }
        }
    }
    problems
}

/// The documents the check covers under `root`: every chapter in `book/src`
/// and [`OTHER_DOCUMENTS`] (those that exist).
pub fn documents(root: &Path) -> Result<Vec<Document>> {
    let mut files = Vec::new();
    let src = root.join("book/src");
    for entry in std::fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files.extend(OTHER_DOCUMENTS.iter().map(|f| root.join(f)).filter(|p| p.exists()));
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let file = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            Ok(Document { file, text })
        })
        .collect()
}

/// Checks every document under `root` against its allowlist; also fails on
/// allowlist entries for documents that do not exist.
pub fn check_root(root: &Path) -> Vec<String> {
    let allowed = match read_allowlist(root) {
        Ok(a) => a,
        Err(e) => return vec![format!("{e:#}")],
    };
    let documents = match documents(root) {
        Ok(d) => d,
        Err(e) => return vec![format!("{e:#}")],
    };
    let mut problems = check(&documents, &allowed);
    for entry in &allowed {
        if !documents.iter().any(|d| d.file == entry.file) {
            problems.push(format!("{ALLOWLIST}: {} is not a chapter, README.md or ARCHITECTURE.md", entry.file));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbers(markdown: &str) -> Vec<String> {
        typed_numbers(markdown).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn finds_decimals_separators_percentages_large_numbers_and_units() {
        let md = "a loss of 1.88, 3,000 characters, 99.5% right, 50 percent, 2000 steps, 15 s, 3 min, 2 GB, 2x";
        assert_eq!(numbers(md), ["1.88", "3,000", "99.5%", "50", "2000", "15", "3", "2", "2"]);
        assert_eq!(numbers("−0.29 and -1e-5 and 1.1-1.5x"), ["−0.29", "-1e-5", "1.1", "1.5"]);
    }

    #[test]
    fn leaves_small_counts_names_and_sentences_alone() {
        let md = "two layers of 12 and 64 characters; GPT-2, AVX-512, h.0, f32, x_128; (1, 2, 3); chapter 5.";
        assert!(numbers(md).is_empty(), "{:?}", numbers(md));
    }

    #[test]
    fn skips_code_math_directives_links_comments_and_generated_blocks() {
        let md = "```text\n1.88\n```\n`3,000` and ``a `1.5` b`` {{#value ch14.bench.val_loss}} $0.5$\n$$\n1.25\n$$\n\
                  [paper](https://arxiv.org/abs/1706.03762) <!-- 2.5 --> <!-- open\n7.5\n-->\n\
                  <!-- begin generated: measured -->\n| 47.2 ms |\n<!-- end generated: measured -->\nend 4.5";
        let found = typed_numbers(md);
        assert_eq!(found, [Typed { line: 14, text: "4.5".into() }]);
    }

    #[test]
    fn fails_on_typed_numbers_and_on_stale_allowlist_entries() {
        let doc = Document { file: "book/src/ch14-gpt.md".into(), text: "was 1.88\nin 2017\n".into() };
        let allowed = parse_allowlist(
            "[[allow]]\nfile = \"book/src/ch14-gpt.md\"\nnumbers = [\"2017\", \"2020\"]\nreason = \"years\"\n",
        )
        .unwrap();
        let problems = check(&[doc], &allowed);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("book/src/ch14-gpt.md:1: `1.88` looks measured"), "{}", problems[0]);
        assert!(problems[0].contains("{{#value key}}") && problems[0].contains(ALLOWLIST), "{}", problems[0]);
        assert!(problems[1].contains("no longer contains `2020`"), "{}", problems[1]);
    }

    #[test]
    fn an_entry_needs_a_reason() {
        let err =
            parse_allowlist("[[allow]]\nfile = \"README.md\"\nnumbers = [\"1.89\"]\nreason = \" \"\n").unwrap_err();
        assert!(format!("{err:#}").contains("the reason is empty"), "{err:#}");
    }
}
