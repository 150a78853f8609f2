//! The browser harness that `cargo xtask browser` drives the book and the
//! explorer with: headless Chromium through ChromeDriver, spoken to in the
//! W3C WebDriver protocol (JSON over HTTP on 127.0.0.1).
//!
//! Only what the checks use: open a page, run a script, find an element,
//! type into it, click it, take a screenshot, and read the browser's console
//! (every `console.error`, uncaught exception and failed request lands there
//! at level SEVERE).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::{Value, json};

/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Finds a program: `$var` if set, else the first of `names` on the path.
pub fn program(var: &str, names: &[&str], install: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Ok(PathBuf::from(path));
    }
    for name in names {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
        }
    }
    bail!("no {} found ({install}, or set {var}); .ci/run installs it", names[0])
}

/// One headless Chromium, driven through its own ChromeDriver.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
}

impl Browser {
    /// Starts ChromeDriver on a free port of 127.0.0.1 and a headless
    /// Chromium session with a `width` × `height` window.
    pub fn start(width: u32, height: u32) -> Result<Self> {
        let chromium =
            program("ADDMUL_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"], "apt-get install chromium")?;
        let chromedriver = program("ADDMUL_CHROMEDRIVER", &["chromedriver"], "apt-get install chromium-driver")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut browser = Browser { driver, base: format!("http://127.0.0.1:{port}"), agent };
        let start = Instant::now();
        while browser.call("GET", "/status", None).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                bail!("ChromeDriver did not answer on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                         "--allow-file-access-from-files", format!("--window-size={width},{height}"),
                         "--disable-dev-shm-usage", "--force-device-scale-factor=1"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let session = browser.call("POST", "/session", Some(capabilities))?;
        let id = session["sessionId"].as_str().context("ChromeDriver gave no session")?.to_string();
        browser.base = format!("{}/session/{id}", browser.base);
        Ok(browser)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut response = response.with_context(|| format!("WebDriver {method} {path}"))?;
        let status = response.status();
        let text = response.body_mut().read_to_string().with_context(|| format!("WebDriver {method} {path}"))?;
        let value: Value = serde_json::from_str(&text).with_context(|| format!("WebDriver {method} {path}: {text}"))?;
        if !status.is_success() {
            bail!("WebDriver {method} {path}: {}", value["value"]["message"].as_str().unwrap_or(&value.to_string()));
        }
        Ok(value["value"].clone())
    }

    /// Opens `url` and waits for it to load.
    pub fn open(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    /// Sets the window's size.
    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        self.call("POST", "/window/rect", Some(json!({"width": width, "height": height})))?;
        Ok(())
    }

    /// Runs `script` (a function body; `return` gives the value).
    pub fn run(&self, script: &str) -> Result<Value> {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    /// Waits until `condition` (a JavaScript expression) is true, at most
    /// `seconds`; fails with `what`.
    pub fn wait_for(&self, condition: &str, seconds: u64, what: &str) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.run(&format!("return !!({condition});"))? == Value::Bool(true) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(seconds) {
                bail!("{what} (waited {seconds} s for `{condition}`)");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The element `selector` matches.
    pub fn find(&self, selector: &str) -> Result<String> {
        let found = self.call("POST", "/element", Some(json!({"using": "css selector", "value": selector})))?;
        found
            .get(ELEMENT)
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("no element {selector}: {found}"))
    }

    /// Types `text` into the element (WebDriver's special keys, such as
    /// `\u{E014}` for the right arrow, work too).
    pub fn type_into(&self, selector: &str, text: &str) -> Result<()> {
        let id = self.find(selector)?;
        self.call("POST", &format!("/element/{id}/value"), Some(json!({ "text": text })))?;
        Ok(())
    }

    /// Empties a text field.
    pub fn clear(&self, selector: &str) -> Result<()> {
        let id = self.find(selector)?;
        self.call("POST", &format!("/element/{id}/clear"), None)?;
        Ok(())
    }

    /// Clicks the element.
    pub fn click(&self, selector: &str) -> Result<()> {
        let id = self.find(selector)?;
        self.call("POST", &format!("/element/{id}/click"), None)?;
        Ok(())
    }

    /// Saves a screenshot of the window as a PNG.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let data = self.call("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD.decode(data.as_str().context("no screenshot")?)?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// The console's errors since the last call: uncaught exceptions,
    /// `console.error` and failed requests.
    pub fn console_errors(&self) -> Result<Vec<String>> {
        let log = self.call("POST", "/se/log", Some(json!({"type": "browser"})))?;
        Ok(log
            .as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or("?").to_string())
            .collect())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
