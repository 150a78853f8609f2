//! `cargo xtask browser`: the built book in a real browser.
//!
//! Headless Chromium opens every page of `book/build` (inside one harness
//! page, each in an iframe) and reports, per page: every image that did not
//! load, every formula (MathML) laid out with no width, and any TeX source
//! visible as text outside code (`\frac`, `_{`, `$$`, ...: what a formula
//! that fell out of its math element shows). A canary page with a broken
//! formula and a missing image runs beside them and must be caught, so the
//! check cannot pass by seeing nothing. Screenshots of every chapter go to
//! `target/browser/screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The harness: loads each page in turn and writes the findings as JSON
/// into `<pre id="result">`.
const HARNESS: &str = r#"<!doctype html><html><body><pre id="result">pending</pre><script>
const pages = PAGES;
const results = [];
let i = 0;
function next() {
  if (i >= pages.length) { document.getElementById("result").textContent = JSON.stringify(results); return; }
  const f = document.createElement("iframe");
  f.style.width = "1200px"; f.style.height = "900px";
  f.onload = () => {
    const d = f.contentDocument;
    const main = d.querySelector("main") || d.body;
    const images = [...main.querySelectorAll("img")]
      .filter(im => !(im.complete && im.naturalWidth > 0)).map(im => im.getAttribute("src"));
    const maths = [...main.querySelectorAll("math")];
    const flat = maths.filter(m => m.getBoundingClientRect().width <= 0).length;
    const clone = main.cloneNode(true);
    clone.querySelectorAll("pre, code, math").forEach(e => e.remove());
    const text = clone.textContent;
    const tex = [...text.matchAll(/\\(frac|operatorname|text|sqrt|left|right|cdot|sum|mathbf|mathrm|qquad|top)\b|\$\$|_\{|\^\{/g)]
      .map(m => text.slice(Math.max(0, m.index - 30), m.index + 30).replace(/\s+/g, " "));
    results.push({page: pages[i], broken_images: images, math: maths.length, flat_math: flat, tex: tex});
    f.remove(); i++; next();
  };
  f.src = pages[i];
  document.body.appendChild(f);
}
next();
</script></body></html>"#;

/// A page the check must fault: markdown's emphasis inside a TeX annotation
/// (chapter 7's old bug) and an image that does not exist.
const CANARY: &str = r#"<!doctype html><html><body><main><p><math display="block"><semantics><mi>x</mi><annotation encoding="application/x-tex">\text{w}<em>{\cdot j} = \frac{a}{b}</em>{\cdot j}</annotation></semantics></math></p><img src="missing.svg"></main></body></html>"#;

fn chromium() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ADDMUL_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    bail!("no Chromium found (apt-get install chromium, or set ADDMUL_CHROMIUM); .ci/run installs it")
}

fn headless(browser: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files"]);
    c
}

fn url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The findings for each page, as the harness reported them.
fn inspect(browser: &Path, work: &Path, pages: &[PathBuf]) -> Result<Vec<Value>> {
    let list = serde_json::to_string(&pages.iter().map(|p| url(p)).collect::<Vec<_>>())?;
    let harness = work.join("harness.html");
    std::fs::write(&harness, HARNESS.replace("PAGES", &list))?;
    let out = headless(browser)
        .args(["--virtual-time-budget=60000", "--dump-dom"])
        .arg(url(&harness))
        .output()
        .with_context(|| format!("running {}", browser.display()))?;
    let dom = String::from_utf8_lossy(&out.stdout);
    let json = dom
        .split_once(r#"<pre id="result">"#)
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(json, _)| json.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&"))
        .with_context(|| format!("the harness printed no result:\n{}", String::from_utf8_lossy(&out.stderr)))?;
    let results: Vec<Value> = serde_json::from_str(&json).with_context(|| format!("the harness's result: {json}"))?;
    if results.len() != pages.len() {
        bail!("the harness reported {} of {} pages (time ran out?)", results.len(), pages.len());
    }
    Ok(results)
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
    out
}

/// Checks every page of the built book and screenshots every chapter.
pub fn run(root: &Path) -> Result<()> {
    let build = root.join("book/build");
    if !build.join("index.html").is_file() {
        bail!("{} has no built book: run `cargo xtask book` first", build.display());
    }
    let browser = chromium()?;
    let work = root.join("target/browser");
    let shots = work.join("screenshots");
    std::fs::create_dir_all(&shots)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&build)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .filter(|p| !["print.html", "toc.html", "404.html"].iter().any(|n| p.ends_with(n)))
        .collect();
    pages.sort();
    let canary = work.join("canary.html");
    std::fs::write(&canary, CANARY)?;
    pages.push(canary.clone());
    let findings = inspect(&browser, &work, &pages)?;
    let (canary_finding, book) = findings.split_last().context("the canary")?;
    let caught = problems(canary_finding);
    if !(caught.iter().any(|p| p.contains("TeX visible")) && caught.iter().any(|p| p.contains("did not load"))) {
        bail!("the browser check did not catch its canary (a broken formula and a missing image): {caught:?}");
    }
    let found: Vec<String> = book.iter().flat_map(problems).collect();
    let formulas: u64 = book.iter().filter_map(|f| f["math"].as_u64()).sum();
    for page in pages.iter().filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ch"))) {
        let name = page.file_stem().unwrap_or_default().to_string_lossy().to_string();
        let shot = shots.join(format!("{name}.png"));
        let status = headless(&browser)
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,2400")
            .arg(url(page))
            .output()
            .with_context(|| format!("screenshotting {}", page.display()))?;
        if !shot.is_file() {
            bail!("no screenshot of {}: {}", page.display(), String::from_utf8_lossy(&status.stderr));
        }
    }
    if !found.is_empty() {
        bail!("the book in Chromium has {} problem(s):\n  {}", found.len(), found.join("\n  "));
    }
    eprintln!(
        "browser: {} pages, {formulas} formulas laid out, every image loaded, no TeX showing as text; screenshots in {}",
        book.len(),
        shots.display()
    );
    Ok(())
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
        let clean = serde_json::json!({"page": "p.html", "broken_images": [], "math": 2, "flat_math": 0, "tex": []});
        assert!(problems(&clean).is_empty());
    }
}
