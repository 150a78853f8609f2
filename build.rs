//! Embeds the book's own text, the corpus `addmul train` falls back to when
//! it has no file and cannot download one.

use std::path::Path;

fn main() {
    let src = Path::new("book/src");
    println!("cargo:rerun-if-changed=book/src");
    let mut chapters: Vec<_> = std::fs::read_dir(src)
        .map(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "md")).collect()
        })
        .unwrap_or_default();
    chapters.sort();
    let mut text = String::new();
    for path in chapters {
        if path.file_name().is_some_and(|n| n == "SUMMARY.md") {
            continue;
        }
        if let Ok(chapter) = std::fs::read_to_string(&path) {
            // Keep the prose; drop mdBook's directives: whole lines
            // (includes) and the numbers a line cites (`{{#value key}}`,
            // computed only when the book is built).
            for line in chapter.lines().filter(|l| !l.trim_start().starts_with("{{#")) {
                text.push_str(&without_directives(line));
                text.push('\n');
            }
            text.push('\n');
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("book.txt");
    std::fs::write(out, text).expect("OUT_DIR is writable");
}

/// `line` without its `{{#...}}` directives.
fn without_directives(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("{{#") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => rest = &rest[start + end + 2..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}
