//! What several integration tests share: a temporary folder and a one-shot
//! HTTP server on 127.0.0.1. (Each test crate uses part of it.)
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

/// Serves one connection with `status` and `body`; returns the address of
/// a file on it.
pub fn serve_once(status: &'static str, body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 2 {
            line.clear();
        }
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
    });
    format!("http://{addr}/input.txt")
}

/// A folder of its own under the target folder's `tmp` (tests write no
/// files outside the repository), removed when
/// dropped (also when the test fails).
pub struct Temp(pub PathBuf);

impl Temp {
    pub fn new(name: &str) -> Self {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("addmul-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Temp(dir)
    }

    /// A path inside, as the `&str` an argument needs.
    pub fn arg(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("a UTF-8 temporary folder").to_string()
    }

    pub fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.0.join(name), text).unwrap();
        self.arg(name)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The validation losses a run's `log.jsonl` recorded, in order.
pub fn val_losses(run: &std::path::Path) -> Vec<f64> {
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    log.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "eval")
        .map(|v| v["val_loss"].as_f64().unwrap())
        .collect()
}
