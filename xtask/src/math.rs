//! Keeps KaTeX's rendered math intact through Markdown.
//!
//! The `katex` preprocessor turns `$$ ... $$` into MathML whose
//! `<annotation encoding="application/x-tex">` repeats the TeX source. mdBook
//! then renders the chapter as Markdown, which reads that source as Markdown
//! too: `_{\cdot j} ... _{\cdot j}` became `<em>...</em>` and `\!` became
//! `!`. An HTML element inside MathML makes a browser leave the math, so the
//! rest of the formula showed as raw TeX (chapter 7's first formula did).
//! This preprocessor runs after `katex` and writes every character Markdown
//! would act on, inside each `<math>` element's text, as an HTML character
//! reference: the browser reads the same characters, Markdown sees none.

#[cfg(feature = "book")]
use mdbook_preprocessor::book::{Book, BookItem};
#[cfg(feature = "book")]
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};

/// `html` with the text inside every `<math>...</math>` element (not its
/// tags) freed of Markdown's special characters: `\`, `_`, `*`, `` ` ``,
/// `[`, `]`, `~` become character references.
#[cfg_attr(not(feature = "book"), allow(dead_code))] // the test build has no mdBook to call it
pub fn protect(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + html.len() / 8);
    let mut rest = html;
    while let Some(start) = rest.find("<math") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("</math>") else {
            rest = &rest[start..];
            break;
        };
        let end = start + len + "</math>".len();
        let mut in_tag = false;
        for c in rest[start..end].chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ => {}
            }
            match c {
                '\\' | '_' | '*' | '`' | '[' | ']' | '~' if !in_tag => out.push_str(&format!("&#{};", c as u32)),
                _ => out.push(c),
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The mdBook preprocessor (after `katex`).
#[cfg(feature = "book")]
pub struct MathGuard;

#[cfg(feature = "book")]
impl Preprocessor for MathGuard {
    fn name(&self) -> &str {
        "math-guard"
    }

    fn run(&self, _: &PreprocessorContext, mut book: Book) -> anyhow::Result<Book> {
        book.for_each_mut(|item| {
            if let BookItem::Chapter(ch) = item {
                ch.content = protect(&ch.content);
            }
        });
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::protect;

    #[test]
    fn markdown_characters_in_math_become_references_and_tags_stay() {
        let html = r#"a_b <math display="block"><mi>x</mi><annotation encoding="application/x-tex">\text{w}_{\cdot j} = \!x_{j}</annotation></math> c_d"#;
        let out = protect(html);
        assert_eq!(
            out,
            r#"a_b <math display="block"><mi>x</mi><annotation encoding="application/x-tex">&#92;text{w}&#95;{&#92;cdot j} = &#92;!x&#95;{j}</annotation></math> c_d"#
        );
        // Outside math nothing changes; an unclosed <math> is left alone.
        assert_eq!(protect("x_y <math>a_b"), "x_y <math>a_b");
    }
}
