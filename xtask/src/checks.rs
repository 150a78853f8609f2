//! Checks that keep the book honest: every `{{#include}}` names a file and
//! anchor that exist (mdBook would silently include nothing), every image
//! exists (generated figures are made afresh by every build, so a figure the
//! build no longer draws is missing), every chapter has at least
//! [`MIN_FIGURES`] figures, every `{{#value}}` is computed, and no prose (the
//! README, ARCHITECTURE.md) types a number that looks measured
//! ([`crate::prose_numbers`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::values::{Values, find_keys};

/// One `{{#include path:anchor}}` or `{{#rustdoc_include ...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    /// The chapter that contains it.
    pub chapter: PathBuf,
    /// The included file, resolved against the chapter's folder.
    pub file: PathBuf,
    /// The anchor, if the include names one (not a line range).
    pub anchor: Option<String>,
}

/// Every include in `markdown` (from file `chapter`).
pub fn includes(chapter: &Path, markdown: &str) -> Vec<Include> {
    let dir = chapter.parent().unwrap_or(Path::new(""));
    let mut out = Vec::new();
    for directive in ["{{#include ", "{{#rustdoc_include "] {
        let mut from = 0;
        while let Some(start) = markdown[from..].find(directive).map(|i| i + from) {
            let Some(end) = markdown[start..].find("}}").map(|i| i + start) else { break };
            // `\{{#include` is mdBook's escape: not an include.
            let escaped = start > 0 && markdown.as_bytes()[start - 1] == b'\\';
            let spec = markdown[start + directive.len()..end].trim();
            from = end + 2;
            if escaped {
                continue;
            }
            let (path, rest) = spec.split_once(':').unwrap_or((spec, ""));
            let first = rest.split(':').next().unwrap_or("");
            let anchor = (!first.is_empty() && first.parse::<usize>().is_err()).then(|| first.to_string());
            out.push(Include { chapter: chapter.to_path_buf(), file: dir.join(path), anchor });
        }
    }
    out
}

/// The glossary's problems: every entry is a line `- **Term**: ...` with a
/// link to the chapter that introduces the term, which must exist and use
/// the term (case aside; `{{#...}}` directives do not count); entries are in
/// alphabetical order.
fn check_glossary(src: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(src.join("glossary.md")) else {
        return vec!["glossary.md is missing".to_string()];
    };
    let mut problems = Vec::new();
    let mut previous = String::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| l.starts_with("- **")) {
        let at = format!("glossary.md:{}", n + 1);
        let Some((term, rest)) = line["- **".len()..].split_once("**") else {
            problems.push(format!("{at}: an entry is `- **Term**: ...`"));
            continue;
        };
        let key = term.to_lowercase();
        if key < previous {
            problems.push(format!("{at}: `{term}` is out of alphabetical order"));
        }
        previous = key.clone();
        let Some(target) = rest.rsplit_once("](").and_then(|(_, t)| t.split_once(')')).map(|(t, _)| t) else {
            problems.push(format!("{at}: `{term}` links to no chapter"));
            continue;
        };
        let Ok(chapter) = std::fs::read_to_string(src.join(target)) else {
            problems.push(format!("{at}: `{term}` links to {target}, which does not exist"));
            continue;
        };
        // The chapter's own words: without `{{#include}}`/`{{#value}}` directives.
        let mut words = String::new();
        let mut rest = chapter.as_str();
        while let Some(start) = rest.find("{{#") {
            words.push_str(&rest[..start]);
            rest = rest[start..].find("}}").map_or("", |end| &rest[start + end + 2..]);
        }
        words.push_str(rest);
        if !words.to_lowercase().contains(&key) {
            problems.push(format!("{at}: `{term}` does not occur in {target}, the chapter it links to"));
        }
    }
    if problems.is_empty() && previous.is_empty() {
        problems.push("glossary.md has no entries".to_string());
    }
    problems
}

/// Figures every chapter (`chNN-*.md`) must have.
pub const MIN_FIGURES: usize = 2;

/// Markdown image targets `![alt](target)` in `markdown`.
fn images(markdown: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = markdown[from..].find("![").map(|i| i + from) {
        from = start + 2;
        let Some(close) = markdown[from..].find("](").map(|i| i + from) else { break };
        let Some(end) = markdown[close..].find(')').map(|i| i + close) else { break };
        out.push(&markdown[close + 2..end]);
        from = end;
    }
    out
}

fn chapters(src: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The fewest exercises a chapter ends with.
pub const MIN_EXERCISES: usize = 2;

/// A chapter's exercises: at least [`MIN_EXERCISES`], each with its answer,
/// and the tests that check them (`tests/exercises.rs`, functions named
/// after the chapter: `fn ch08_...`).
fn exercises(root: &Path, name: &str, markdown: &str) -> Vec<String> {
    let chapter = &name[..4.min(name.len())];
    let Some((_, section)) = markdown.split_once("## Exercises") else {
        return vec![format!("{name}: no \"## Exercises\" section")];
    };
    let section = section.split("\n## ").next().unwrap_or("");
    let answers = section.matches("<summary>Answer</summary>").count();
    let mut out = Vec::new();
    if answers < MIN_EXERCISES {
        out.push(format!("{name}: {answers} exercise(s) with an answer; every chapter has at least {MIN_EXERCISES}"));
    }
    let tests = std::fs::read_to_string(root.join("tests/exercises.rs")).unwrap_or_default();
    if !tests.contains(&format!("fn {chapter}_")) {
        out.push(format!("{name}: no test in tests/exercises.rs checks its answers (fn {chapter}_...)"));
    }
    if !section.contains(&format!("--test exercises {chapter}")) {
        out.push(format!(
            "{name}: its exercises do not say how to run their tests (cargo test --test exercises {chapter})"
        ));
    }
    out
}

/// The explorer pages a chapter's "Explore it" section links to
/// (`](/page)`): each must be a page `addmul explore` serves, and a chapter
/// with such a section must link to at least one.
fn explore_links(name: &str, markdown: &str, is_chapter: bool) -> Vec<String> {
    let mut out = Vec::new();
    let links: Vec<&str> = markdown
        .match_indices("](/")
        .filter_map(|(i, _)| markdown[i + 2..].split_once(')').map(|(link, _)| link))
        .collect();
    for link in &links {
        if !addmul::explore::PAGES.contains(link) {
            out.push(format!("{name}: links to {link}, which is not a page of `addmul explore`"));
        }
    }
    if is_chapter && markdown.contains("## Explore it") && links.is_empty() {
        out.push(format!("{name}: its \"Explore it\" section links to no explorer page"));
    }
    out
}

/// Checks the book's sources under `root/book/src`, and the numbers in the
/// prose of the chapters, `root/README.md` and `root/ARCHITECTURE.md`
/// against `root/book/allowed-numbers.toml`. With `values`, also checks that
/// every `{{#value}}` key is computed and every generated file exists;
/// without, includes of `generated/` files are skipped (they exist only after
/// generation).
pub fn check_book(root: &Path, values: Option<&Values>) -> Result<()> {
    let src = &root.join("book/src");
    let mut problems = crate::prose_numbers::check_root(root);
    if src.join("SUMMARY.md").is_file() {
        problems.extend(check_glossary(src));
    }
    let mut used = std::collections::BTreeSet::new();
    for chapter in chapters(src)? {
        let text = std::fs::read_to_string(&chapter)?;
        let name = chapter.strip_prefix(src).unwrap_or(&chapter).display().to_string();
        for inc in includes(&chapter, &text) {
            let generated = inc.file.components().any(|c| c.as_os_str() == "generated");
            if generated && values.is_none() {
                continue;
            }
            let Ok(body) = std::fs::read_to_string(&inc.file) else {
                problems.push(format!("{name}: included file {} does not exist", inc.file.display()));
                continue;
            };
            if let Some(anchor) = &inc.anchor {
                let has = |marker: &str| {
                    body.lines().any(|l| {
                        l.split_once(marker)
                            .is_some_and(|(_, rest)| rest.trim().trim_end_matches("-->").trim() == anchor)
                    })
                };
                if !has("ANCHOR:") || !has("ANCHOR_END:") {
                    problems.push(format!("{name}: anchor `{anchor}` not found in {}", inc.file.display()));
                }
            }
        }
        let is_chapter = name.strip_prefix("ch").is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        let figures = images(&text).len();
        if is_chapter && figures < MIN_FIGURES {
            problems.push(format!(
                "{name}: {figures} figure(s); every chapter shows at least {MIN_FIGURES}, drawn by its generator"
            ));
        }
        problems.extend(explore_links(&name, &text, is_chapter));
        if is_chapter {
            problems.extend(exercises(root, &name, &text));
        }
        for image in images(&text) {
            if image.starts_with("http") {
                problems.push(format!("{name}: image {image} is remote; the book must build and read offline"));
                continue;
            }
            let generated = image.contains("generated/");
            if (values.is_some() || !generated) && !chapter.parent().unwrap_or(src).join(image).exists() {
                problems.push(format!("{name}: image {image} does not exist"));
            }
        }
        if let Some(values) = values {
            for key in find_keys(&text) {
                used.insert(key.to_string());
                if values.get(key).is_none() {
                    problems.push(format!("{name}: {{{{#value {key}}}}} is not computed by cargo xtask book"));
                }
            }
        }
    }
    if let Some(values) = values {
        let unused: Vec<&str> = values.keys().filter(|k| !used.contains(*k)).collect();
        if !unused.is_empty() {
            // Not an error: a generator may record a whole family of values
            // and a chapter cite some of them. Listed so that dead ones show.
            eprintln!("note: {} computed value(s) not cited: {}", unused.len(), unused.join(", "));
        }
    }
    if !problems.is_empty() {
        bail!("the book has {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explore_links_must_name_pages_the_explorer_serves() {
        assert!(explore_links("ch07.md", "## Explore it\n[/attention](/attention)", true).is_empty());
        let wrong = explore_links("ch07.md", "## Explore it\n[/atention](/atention)", true);
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(wrong[0].contains("/atention"));
        assert_eq!(explore_links("ch07.md", "## Explore it\nnothing", true).len(), 1);
    }

    #[test]
    fn finds_anchored_and_ranged_includes() {
        let md =
            "a {{#include ../../crates/nn/src/linear.rs:linear_layer}} b {{#include x.rs:3:9}} \\{{#include no.rs}}";
        let inc = includes(Path::new("book/src/ch01.md"), md);
        assert_eq!(inc.len(), 2);
        assert_eq!(inc[0].file, Path::new("book/src/../../crates/nn/src/linear.rs"));
        assert_eq!(inc[0].anchor.as_deref(), Some("linear_layer"));
        assert_eq!(inc[1].anchor, None);
    }

    #[test]
    fn a_missing_anchor_fails_the_check() {
        let root = crate::project_root().join("target/tmp").join(format!("xtask-check-{}", std::process::id()));
        let dir = root.join("book/src");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("code.rs"), "// ANCHOR: here\nfn f() {}\n// ANCHOR_END: here\n").unwrap();
        std::fs::write(dir.join("ok.md"), "{{#include code.rs:here}}").unwrap();
        check_book(&root, None).unwrap();
        std::fs::write(dir.join("bad.md"), "{{#include code.rs:hrea}}").unwrap();
        let err = check_book(&root, None).unwrap_err().to_string();
        assert!(err.contains("anchor `hrea` not found"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A chapter's exercises that pass the check, and the tests they name.
    fn exercises_for(root: &Path, chapter: &str) -> String {
        std::fs::create_dir_all(root.join("tests")).unwrap();
        let tests = root.join("tests/exercises.rs");
        let before = std::fs::read_to_string(&tests).unwrap_or_default();
        std::fs::write(&tests, format!("{before}fn {chapter}_answer() {{}}\n")).unwrap();
        let answer = "   <details><summary>Answer</summary>\n\n   Yes.\n\n   </details>\n";
        format!("\n## Exercises\n\n`cargo test --test exercises {chapter}`\n\n1. Q?\n\n{answer}\n2. Q?\n\n{answer}")
    }

    #[test]
    fn every_chapter_has_two_exercises_with_answers_and_tests() {
        let root =
            crate::project_root().join("target/tmp").join(format!("xtask-check-exercises-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        assert!(exercises(&root, "ch03-x.md", "no section")[0].contains("no \"## Exercises\""));
        let good = exercises_for(&root, "ch03");
        assert!(exercises(&root, "ch03-x.md", &good).is_empty(), "{:?}", exercises(&root, "ch03-x.md", &good));
        let one = good.rsplit_once("2. Q?").unwrap().0;
        assert!(exercises(&root, "ch03-x.md", one)[0].contains("1 exercise(s)"));
        let untested = good.replace("ch03", "ch04");
        assert!(exercises(&root, "ch04-x.md", &untested)[0].contains("no test in tests/exercises.rs"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_typed_number_fails_the_check() {
        let root = crate::project_root().join("target/tmp").join(format!("xtask-check-numbers-{}", std::process::id()));
        let dir = root.join("book/src");
        std::fs::create_dir_all(&dir).unwrap();
        let ex = exercises_for(&root, "ch01");
        std::fs::write(dir.join("ch01.md"), format!("Founded in 1999.\n\n![a](a.svg) ![b](b.svg)\n{ex}")).unwrap();
        std::fs::write(dir.join("a.svg"), "<svg/>").unwrap();
        std::fs::write(dir.join("b.svg"), "<svg/>").unwrap();
        let err = check_book(&root, None).unwrap_err().to_string();
        assert!(err.contains("book/src/ch01.md:1: `1999` looks measured"), "{err}");
        let allow = "[[allow]]\nfile = \"book/src/ch01.md\"\nnumbers = [\"1999\"]\nreason = \"a year\"\n";
        std::fs::write(root.join("book/allowed-numbers.toml"), allow).unwrap();
        check_book(&root, None).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_chapter_with_fewer_than_two_figures_fails_the_check() {
        let root = crate::project_root().join("target/tmp").join(format!("xtask-check-figures-{}", std::process::id()));
        let dir = root.join("book/src");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.svg"), "<svg/>").unwrap();
        let ex = exercises_for(&root, "ch02");
        std::fs::write(dir.join("ch02-two.md"), format!("![a](a.svg)\n{ex}")).unwrap();
        // Not a chapter: no figures needed.
        std::fs::write(dir.join("introduction.md"), "Hello.\n").unwrap();
        let err = check_book(&root, None).unwrap_err().to_string();
        assert!(err.contains("ch02-two.md: 1 figure(s)") && !err.contains("introduction"), "{err}");
        std::fs::write(dir.join("ch02-two.md"), format!("![a](a.svg)\n![b](missing.svg)\n{ex}")).unwrap();
        let err = check_book(&root, None).unwrap_err().to_string();
        assert!(err.contains("image missing.svg does not exist") && !err.contains("figure(s)"), "{err}");
        std::fs::write(dir.join("ch02-two.md"), format!("![a](a.svg)\n![b](a.svg)\n{ex}")).unwrap();
        check_book(&root, None).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn glossary_entries_must_link_to_a_chapter_that_uses_them_in_order() {
        let root =
            crate::project_root().join("target/tmp").join(format!("xtask-check-glossary-{}", std::process::id()));
        let src = root.join("book/src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("ch01-x.md"), "A neuron adds. {{#value ch01.loss}}\n").unwrap();
        let good = "- **Neuron**: adds. ([Chapter 1](ch01-x.md))\n";
        std::fs::write(src.join("glossary.md"), good).unwrap();
        assert!(check_glossary(&src).is_empty(), "{:?}", check_glossary(&src));
        let bad = "- **Neuron**: adds. ([Chapter 1](ch01-x.md))\n- **Loss**: in a directive only. ([1](ch01-x.md))\n\
                   - **Weight**: ([9](ch09-missing.md))\n";
        std::fs::write(src.join("glossary.md"), bad).unwrap();
        let problems = check_glossary(&src).join("\n");
        assert!(problems.contains("`Loss` is out of alphabetical order"), "{problems}");
        assert!(problems.contains("`Loss` does not occur in ch01-x.md"), "{problems}");
        assert!(problems.contains("`Weight` links to ch09-missing.md, which does not exist"), "{problems}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The real book: every include of the crates' code resolves (generated
    /// files are checked by `cargo xtask book` itself), and no prose types a
    /// measured-looking number that the allowlist does not give a reason for.
    #[test]
    fn the_book_passes_its_checks() {
        check_book(&crate::project_root(), None).unwrap();
    }
}
