//! `{{#value key}}`: numbers in the book's prose that come from code.
//!
//! The generators in [`crate::chapters`] put every number they compute into a
//! [`Values`] map; this preprocessor replaces `{{#value key}}` in the chapters
//! with it, and fails the build for a key nobody computed.

use std::collections::BTreeMap;
use std::fmt::Display;

use anyhow::{Result, bail};
#[cfg(feature = "book")]
use mdbook_preprocessor::book::{Book, BookItem};
#[cfg(feature = "book")]
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};

/// Named values computed for the book.
#[derive(Debug, Clone, Default)]
pub struct Values(BTreeMap<String, String>);

impl Values {
    /// Records `key` (panics on a duplicate: two generators disagreeing is a
    /// bug in the xtask).
    pub fn set(&mut self, key: &str, value: impl Display) {
        let previous = self.0.insert(key.to_string(), value.to_string());
        assert!(previous.is_none(), "book value {key} computed twice");
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// As JSON, for readers who want to see every number in one place.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.0).expect("a string map serialises")
    }

    /// Reads back [`Values::to_json`].
    pub fn from_json(text: &str) -> Result<Self> {
        Ok(Values(serde_json::from_str(text)?))
    }
}

/// A `{{#value key}}` directive found in a chapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive<'a> {
    /// Its bytes in the text, including a leading `\` if escaped.
    pub range: std::ops::Range<usize>,
    /// The key.
    pub key: &'a str,
    /// `\{{#value key}}` is an escape: it stands for the directive's text.
    pub escaped: bool,
}

/// Finds every `{{#value key}}` in `text`.
pub fn find_directives(text: &str) -> Vec<Directive<'_>> {
    const OPEN: &str = "{{#value ";
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find(OPEN).map(|i| i + from) {
        let Some(end) = text[start..].find("}}").map(|i| i + start) else { break };
        let escaped = start > 0 && text.as_bytes()[start - 1] == b'\\';
        let range = if escaped { start - 1..end + 2 } else { start..end + 2 };
        out.push(Directive { range, key: text[start + OPEN.len()..end].trim(), escaped });
        from = end + 2;
    }
    out
}

/// The keys of every unescaped `{{#value key}}` in `text`.
pub fn find_keys(text: &str) -> Vec<&str> {
    find_directives(text).into_iter().filter(|d| !d.escaped).map(|d| d.key).collect()
}

/// Replaces every `{{#value key}}` in `text`.
#[cfg_attr(not(feature = "book"), allow(dead_code))] // the test build has no mdBook to call it
pub fn substitute(text: &str, values: &Values) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for d in find_directives(text) {
        out.push_str(&text[last..d.range.start]);
        if d.escaped {
            out.push_str(&text[d.range.start + 1..d.range.end]);
        } else {
            let Some(v) = values.get(d.key) else {
                bail!("{{{{#value {}}}}} is not computed by cargo xtask book", d.key)
            };
            out.push_str(v);
        }
        last = d.range.end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// The mdBook preprocessor.
#[cfg(feature = "book")]
pub struct ValuesPreprocessor(pub Values);

#[cfg(feature = "book")]
impl Preprocessor for ValuesPreprocessor {
    fn name(&self) -> &str {
        "values"
    }

    fn run(&self, _: &PreprocessorContext, mut book: Book) -> Result<Book> {
        let mut error = None;
        book.for_each_mut(|item| {
            if let BookItem::Chapter(ch) = item
                && error.is_none()
            {
                match substitute(&ch.content, &self.0) {
                    Ok(text) => ch.content = text,
                    Err(e) => error = Some(e.context(format!("in chapter {}", ch.name))),
                }
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(book),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_rejects_unknown_keys() {
        let mut v = Values::default();
        v.set("a.b", -26.598);
        assert_eq!(substitute("x {{#value a.b}} y", &v).unwrap(), "x -26.598 y");
        assert!(substitute("{{#value nope}}", &v).unwrap_err().to_string().contains("nope"));
        assert_eq!(substitute(r"see \{{#value key}}", &v).unwrap(), "see {{#value key}}");
    }
}
