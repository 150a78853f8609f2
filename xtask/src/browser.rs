//! `cargo xtask browser`: the built book and the explorer in a real
//! browser, both through one harness ([`crate::webdriver`]).
//!
//! The book: headless Chromium opens every page of `book/build` and
//! reports, per page: every image that did not load, every formula (MathML)
//! laid out with no width, any TeX source visible as text outside code
//! (`\frac`, `_{`, `$$`, ...: what a formula that fell out of its math
//! element shows), and console errors. A canary page with a broken formula
//! and a missing image runs beside them and must be caught, so the check
//! cannot pass by seeing nothing.
//!
//! The explorer (`addmul explore`, started on a free port with a runs
//! folder of its own): every page loads with no console error, no failed
//! request and nothing in its problems box, and on each page one real
//! interaction (typed keys, clicks) changes what is shown. A canary request
//! for a missing file must show up as a problem.
//!
//! Screenshots of every chapter and every explorer page go to
//! `target/browser/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::webdriver::Browser;

/// The book page check: the findings for the page loaded, as JSON.
const CHECK: &str = r#"
const main = document.querySelector("main") || document.body;
const images = [...main.querySelectorAll("img")]
  .filter(im => !(im.complete && im.naturalWidth > 0)).map(im => im.getAttribute("src"));
const maths = [...main.querySelectorAll("math")];
const flat = maths.filter(m => m.getBoundingClientRect().width <= 0).length;
const clone = main.cloneNode(true);
clone.querySelectorAll("pre, code, math").forEach(e => e.remove());
const text = clone.textContent;
const tex = [...text.matchAll(/\\(frac|operatorname|text|sqrt|left|right|cdot|sum|mathbf|mathrm|qquad|top)\b|\$\$|_\{|\^\{/g)]
  .map(m => text.slice(Math.max(0, m.index - 30), m.index + 30).replace(/\s+/g, " "));
return {page: location.href, broken_images: images, math: maths.length, flat_math: flat, tex: tex};
"#;

/// A page the check must fault: markdown's emphasis inside a TeX annotation
/// (chapter 7's old bug) and an image that does not exist.
const CANARY: &str = r#"<!doctype html><html><body><main><p><math display="block"><semantics><mi>x</mi><annotation encoding="application/x-tex">\text{w}<em>{\cdot j} = \frac{a}{b}</em>{\cdot j}</annotation></semantics></math></p><img src="missing.svg"></main></body></html>"#;

fn url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The findings for each page, with its console errors.
fn inspect(browser: &Browser, pages: &[PathBuf], shots: &Path) -> Result<Vec<Value>> {
    let mut findings = Vec::new();
    for page in pages {
        browser.open(&url(page))?;
        // Images and formulas are laid out by the time the load event fired.
        browser.wait_for("document.readyState === 'complete'", 30, &format!("{} did not load", page.display()))?;
        let mut finding = browser.run(CHECK)?;
        finding["console"] = browser.console_errors()?.into();
        let name = page.file_stem().unwrap_or_default().to_string_lossy().to_string();
        if name.starts_with("ch") || name == "introduction" {
            browser.screenshot(&shots.join(format!("{name}.png")))?;
        }
        findings.push(finding);
    }
    Ok(findings)
}

/// What is wrong with one page's findings.
fn problems(finding: &Value) -> Vec<String> {
    let page = finding["page"].as_str().unwrap_or("?").rsplit('/').next().unwrap_or("?").to_string();
    let mut out = Vec::new();
    for image in finding["broken_images"].as_array().into_iter().flatten() {
        out.push(format!("{page}: image {} did not load", image.as_str().unwrap_or("?")));
    }
    if let Some(n) = finding["flat_math"].as_u64().filter(|&n| n > 0) {
        out.push(format!("{page}: {n} formula(s) laid out with no width"));
    }
    for text in finding["tex"].as_array().into_iter().flatten() {
        out.push(format!("{page}: TeX visible as text: …{}…", text.as_str().unwrap_or("")));
    }
    for text in finding["console"].as_array().into_iter().flatten() {
        out.push(format!("{page}: console: {}", text.as_str().unwrap_or("")));
    }
    out
}

/// Checks the book and the explorer.
pub fn run(root: &Path, book: bool, explorer: bool, update_book_screenshot: bool) -> Result<()> {
    let work = root.join("target/browser");
    let shots = work.join("screenshots");
    std::fs::create_dir_all(&shots)?;
    let browser = Browser::start(1280, 2400)?;
    if book {
        check_book(root, &browser, &work, &shots)?;
    }
    if explorer {
        crate::explorer_check::run(root, &browser, &work, &shots, update_book_screenshot)?;
    }
    Ok(())
}

/// Checks every page of the built book and screenshots every chapter.
fn check_book(root: &Path, browser: &Browser, work: &Path, shots: &Path) -> Result<()> {
    let build = root.join("book/build");
    if !build.join("index.html").is_file() {
        bail!("{} has no built book: run `cargo xtask book` first", build.display());
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&build)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .filter(|p| !["print.html", "toc.html", "404.html"].iter().any(|n| p.ends_with(n)))
        .collect();
    pages.sort();
    let canary = work.join("canary.html");
    std::fs::write(&canary, CANARY)?;
    pages.push(canary.clone());
    let findings = inspect(browser, &pages, shots)?;
    let (canary_finding, book) = findings.split_last().context("the canary")?;
    let caught = problems(canary_finding);
    if !(caught.iter().any(|p| p.contains("TeX visible")) && caught.iter().any(|p| p.contains("did not load"))) {
        bail!("the browser check did not catch its canary (a broken formula and a missing image): {caught:?}");
    }
    let found: Vec<String> = book.iter().flat_map(problems).collect();
    let formulas: u64 = book.iter().filter_map(|f| f["math"].as_u64()).sum();
    if !found.is_empty() {
        bail!("the book in Chromium has {} problem(s):\n  {}", found.len(), found.join("\n  "));
    }
    eprintln!(
        "browser: {} pages of the book, {formulas} formulas laid out, every image loaded, no TeX showing as text, \
         no console error; screenshots in {}",
        book.len(),
        shots.display()
    );
    Ok(())
}

/// The `addmul` binary, built for the check.
pub fn addmul_binary(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-q", "-p", "addmul", "--bin", "addmul"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("cargo build -p addmul failed");
    }
    Ok(root.join("target/debug/addmul"))
}

/// `addmul explore` on a free port; its address.
pub fn start_explorer(binary: &Path, runs: &Path, book: Option<&Path>) -> Result<(Child, String)> {
    use std::io::BufRead;
    let mut command = Command::new(binary);
    command.args(["explore", "--port", "0", "--runs"]).arg(runs);
    if let Some(book) = book {
        command.arg("--book").arg(book);
    }
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("no output")?).read_line(&mut line)?;
    let url = line.trim().strip_prefix("explorer: ").with_context(|| format!("the explorer printed {line:?}"))?;
    Ok((child, url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_become_named_problems() {
        let finding = serde_json::json!({
            "page": "file:///x/book/build/ch07-self-attention.html",
            "broken_images": ["generated/figures/a.svg"],
            "math": 3, "flat_math": 1,
            "tex": ["weights}{\\cdot j} = \\operatorname{softmax}"]
        });
        let p = problems(&finding);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].starts_with("ch07-self-attention.html: image generated/figures/a.svg"));
        assert!(p[2].contains("TeX visible as text"));
        let clean = serde_json::json!({"page": "p.html", "broken_images": [], "math": 2, "flat_math": 0, "tex": [], "console": []});
        assert!(problems(&clean).is_empty());
    }
}
