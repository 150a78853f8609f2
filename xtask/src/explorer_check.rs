//! The explorer in a real browser: `addmul explore` on a free port with a
//! fresh runs folder under `target/browser`, every page opened in headless
//! Chromium, one real interaction per page (keys typed, buttons clicked),
//! and no console error, failed request or problem shown anywhere.

use std::path::Path;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::browser::{addmul_binary, start_explorer};
use crate::webdriver::Browser;

/// The text of the first element `selector` matches ("" if none).
fn text(browser: &Browser, selector: &str) -> Result<String> {
    let script = format!("const e = document.querySelector({selector:?}); return e ? e.textContent : '';");
    Ok(browser.run(&script)?.as_str().unwrap_or("").to_string())
}

/// Fails if the page has shown a problem or the console has an error.
fn clean(browser: &Browser, page: &str) -> Result<()> {
    let shown = browser.run("const b = document.getElementById('problems'); return b && b.classList.contains('shown') ? b.textContent : '';")?;
    let console = browser.console_errors()?;
    if shown != Value::String(String::new()) || !console.is_empty() {
        bail!("the explorer's {page} page: problems shown {shown}, console errors {console:?}");
    }
    Ok(())
}

/// Every chapter link on the page answers 200 (the explorer serves the
/// built book under /book/).
fn links_resolve(browser: &Browser, page: &str) -> Result<()> {
    let script = r#"
        const links = [...document.querySelectorAll('a[href^="/book/"]')].map(a => a.getAttribute('href'));
        const xhr = (href) => { const r = new XMLHttpRequest(); r.open('GET', href, false); r.send(); return r.status; };
        return links.map(href => [href, xhr(href)]).filter(([, s]) => s !== 200);
    "#;
    let broken = browser.run(script)?;
    if broken.as_array().is_some_and(|b| !b.is_empty()) {
        bail!("the explorer's {page} page links to missing chapters: {broken}");
    }
    Ok(())
}

fn open(browser: &Browser, base: &str, page: &str, ready: &str) -> Result<()> {
    browser.open(&format!("{base}{}", page.trim_start_matches('/')))?;
    browser.wait_for(ready, 60, &format!("the explorer's {page} page did not show its first answer"))
}

/// Runs every page's check; screenshots as `explore-<page>.png`.
/// The screenshot the book's introduction shows.
pub const BOOK_SCREENSHOT: &str = "book/src/images/explorer.png";

/// Runs every page's check; screenshots as `explore-<page>.png`. The
/// attention page's also becomes the book's [`BOOK_SCREENSHOT`] when that is
/// missing or `update_book` is set.
pub fn run(root: &Path, browser: &Browser, work: &Path, shots: &Path, update_book: bool) -> Result<()> {
    let binary = addmul_binary(root)?;
    let runs = work.join("explore-runs");
    let _ = std::fs::remove_dir_all(&runs);
    let book = root.join("book/build");
    let book = book.join("index.html").is_file().then_some(book);
    let (mut server, base) = start_explorer(&binary, &runs, book.as_deref())?;
    browser.resize(1280, 1100)?;
    let result = pages(browser, &base, shots, book.is_some());
    let _ = server.kill();
    let _ = server.wait();
    result?;
    let target = root.join(BOOK_SCREENSHOT);
    if update_book || !target.is_file() {
        std::fs::create_dir_all(target.parent().expect("a folder"))?;
        std::fs::copy(shots.join("explore-attention.png"), &target)?;
        eprintln!("browser: {} updated from this run", target.display());
    }
    Ok(())
}

fn pages(browser: &Browser, base: &str, shots: &Path, book: bool) -> Result<()> {
    let shot = |name: &str| browser.screenshot(&shots.join(format!("explore-{name}.png")));
    let mut checked = Vec::new();

    // The index: a card per page, and a notice that there is no model yet.
    open(
        browser,
        base,
        "/",
        "document.querySelectorAll('#cards a').length >= 6 && document.getElementById('model').textContent !== '…'",
    )?;
    if !text(browser, "#model")?.contains("No model yet") {
        bail!("the index page should say there is no model yet: {}", text(browser, "#model")?);
    }
    clean(browser, "index")?;
    shot("index")?;
    checked.push("index");

    // A neuron's sums: typing a weight changes the neuron's sum.
    open(browser, base, "/neuron", "document.getElementById('class') !== null")?;
    let before = text(browser, "#s-hidden-0")?;
    browser.clear("input.w[data-layer=hidden][data-row='0'][data-col='3']")?;
    browser.type_into("input.w[data-layer=hidden][data-row='0'][data-col='3']", "2")?;
    browser.wait_for(
        &format!("document.getElementById('s-hidden-0').textContent !== {before:?}"),
        10,
        "typing a weight did not change the neuron's sum",
    )?;
    browser.click("#train")?;
    browser.wait_for(
        "document.getElementById('t-summary').textContent.includes('validation')",
        60,
        "training the classifier showed no result",
    )?;
    clean(browser, "neuron")?;
    if book {
        links_resolve(browser, "neuron")?;
    }
    shot("neuron")?;
    checked.push("neuron");

    // Tokens: typing changes the token count.
    open(browser, base, "/tokens", "document.querySelectorAll('.count').length >= 4")?;
    let count = text(browser, ".count")?;
    browser.type_into("#text", " And then some more words.")?;
    browser.wait_for(
        &format!("document.querySelector('.count').textContent !== {count:?}"),
        10,
        "typing did not change the token count",
    )?;
    clean(browser, "tokens")?;
    shot("tokens")?;
    checked.push("tokens");

    // Train it yourself: the loss curve grows while it trains; then sample.
    open(browser, base, "/train", "document.getElementById('state').textContent !== ''")?;
    browser.type_into("#max_iters", "300")?;
    browser.click("#start")?;
    let points = "(() => { const p = document.querySelector('#chart polyline'); return p ? p.getAttribute('points').split(' ').length : 0; })()";
    browser.wait_for(&format!("{points} >= 5"), 60, "no loss curve appeared")?;
    let early = browser.run(&format!("return {points};"))?.as_u64().unwrap_or(0);
    browser.wait_for(
        "document.getElementById('job-state') && document.getElementById('job-state').textContent === 'done'",
        300,
        "training from the page did not finish",
    )?;
    let late = browser.run(&format!("return {points};"))?.as_u64().unwrap_or(0);
    if late <= early {
        bail!("the loss curve did not grow while training ({early} points, then {late})");
    }
    browser.click("#sample")?;
    browser.wait_for("document.getElementById('sampled').textContent.length > 20", 30, "sampling showed nothing")?;
    clean(browser, "train")?;
    shot("train")?;
    checked.push("train");

    // The next token: moving the temperature changes the distribution, and
    // clicking a token appends it.
    open(browser, base, "/next", "document.querySelectorAll('#bars .bar').length > 3")?;
    let first = text(browser, "#bars .prob")?;
    // Ten steps of the slider to the left: temperature 1 -> 0.5.
    browser.type_into("#temperature", &"\u{E012}".repeat(10))?;
    browser.wait_for(
        &format!("document.querySelector('#bars .prob').textContent !== {first:?}"),
        10,
        "moving the temperature did not change the distribution",
    )?;
    let prompt = browser.run("return document.getElementById('prompt').value.length;")?;
    browser.click("#bars .bar")?;
    browser.wait_for(
        &format!("document.getElementById('prompt').value.length > {prompt}"),
        10,
        "clicking a token did not append it",
    )?;
    browser.click("#kv")?;
    browser.wait_for(
        "document.getElementById('kv-out').textContent.includes('the same')",
        30,
        "the key/value cache timing did not show",
    )?;
    clean(browser, "next")?;
    shot("next")?;
    checked.push("next");

    // Attention: typing changes the heat map's size.
    open(browser, base, "/attention", "document.querySelectorAll('#map td').length > 0")?;
    let cells = browser.run("return document.querySelectorAll('#map td').length;")?;
    browser.type_into("#prompt", " the")?;
    browser.wait_for(
        &format!("document.querySelectorAll('#map td').length > {cells}"),
        10,
        "typing did not change the attention map",
    )?;
    clean(browser, "attention")?;
    shot("attention")?;
    checked.push("attention");
    if book {
        // The book, served by the explorer, links to the page: follow it.
        open(
            browser,
            base,
            "/book/ch07-self-attention.html",
            "document.querySelector('main a[href=\"/attention\"]') !== null",
        )?;
        browser.click("main a[href=\"/attention\"]")?;
        browser.wait_for(
            "location.pathname === '/attention' && document.querySelectorAll('#map td').length > 0",
            30,
            "chapter 7's \"Explore it\" link did not lead to the attention page",
        )?;
        clean(browser, "book's link to attention")?;
    }

    // Embeddings: choosing a token lists its neighbours.
    open(browser, base, "/embeddings", "document.querySelectorAll('#plot circle').length > 10")?;
    browser.clear("#token")?;
    browser.type_into("#token", "t")?;
    browser.wait_for(
        "document.querySelector('#neighbours strong') && document.querySelector('#neighbours strong').textContent === 't'",
        10,
        "choosing a token did not list its neighbours",
    )?;
    clean(browser, "embeddings")?;
    shot("embeddings")?;
    checked.push("embeddings");

    // Translation: train the translator (briefly), then typing a number
    // changes the German.
    open(browser, base, "/translate", "document.getElementById('train') !== null")?;
    browser.clear("#steps")?;
    browser.type_into("#steps", "300")?;
    browser.click("#train")?;
    browser.wait_for(
        "document.getElementById('german') !== null",
        300,
        "the translator did not train and translate",
    )?;
    let german = text(browser, "#german")?;
    browser.clear("#text")?;
    browser.type_into("#text", "seven hundred twenty-one")?;
    browser.wait_for(
        &format!("document.getElementById('german').textContent !== {german:?}"),
        10,
        "typing a number did not change the translation",
    )?;
    clean(browser, "translate")?;
    shot("translate")?;
    checked.push("translate");

    // The canary: a file that does not exist must show as a problem and in
    // the console, or the checks above could not fail.
    open(browser, base, "/", "document.querySelectorAll('#cards a').length >= 6")?;
    browser.run("const i = document.createElement('img'); i.src = '/assets/missing.png'; document.body.appendChild(i); return 0;")?;
    browser.wait_for(
        "document.getElementById('problems').classList.contains('shown')",
        10,
        "the canary (a missing file) was not shown as a problem",
    )?;
    if clean(browser, "canary").is_ok() {
        bail!("the explorer check did not catch its canary (a missing file)");
    }
    eprintln!(
        "browser: the explorer's pages ({}) loaded with no console error or failed request, each changed on a real \
         interaction; screenshots in {}",
        checked.join(", "),
        shots.display()
    );
    Ok(())
}
