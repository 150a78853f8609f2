//! Does training from the explorer's Train page run as fast as `addmul
//! train`? Both train `cpu-small` on the book's text for the same steps,
//! alternating (CLI, explorer, CLI, explorer, ...); the explorer's run is
//! watched the whole time through its event stream, as the page does. The
//! figure is each run's median step time from its `log.jsonl`.
//!
//! `cargo run --release --example explore_train_speed -- [steps] [rounds]`
//! (default 150 steps, 2 rounds; the `addmul` binary is built first with
//! `cargo build --release`).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn median_step_ms(run: &Path) -> f64 {
    let log = std::fs::read_to_string(run.join("log.jsonl")).expect("a log");
    let mut seconds: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "step")
        .filter_map(|v| v["seconds"].as_f64())
        .collect();
    seconds.sort_by(f64::total_cmp);
    1e3 * seconds[seconds.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: u64 = args.get(1).map_or(150, |s| s.parse().expect("steps"));
    let rounds: usize = args.get(2).map_or(2, |s| s.parse().expect("rounds"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let binary = root.join("target/release/addmul");
    assert!(binary.is_file(), "build it first: cargo build --release");
    let work = root.join("target/tmp/explore-train-speed");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let text = work.join("book.txt");
    std::fs::write(&text, addmul::corpus::book_text()).unwrap();
    let (mut cli, mut explorer) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // `addmul train`, as a user runs it.
        let out = work.join(format!("cli-{round}"));
        let status = Command::new(&binary)
            .args(["train", "--preset", "cpu-small", "--sample", "0", "--quiet"])
            .args(["--max-iters", &steps.to_string(), "--set", &format!("eval_interval={}", (steps / 20).max(1))])
            .arg("--data")
            .arg(&text)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        cli.push(median_step_ms(&out));

        // The explorer, with the page's event stream open throughout.
        let runs = work.join(format!("explore-{round}"));
        let mut child = Command::new(&binary)
            .args(["explore", "--port", "0", "--runs"])
            .arg(&runs)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().trim_start_matches("explorer: ").to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let body = serde_json::json!({"preset": "cpu-small", "text": "book", "max_iters": steps}).to_string();
        let started = agent
            .post(format!("{url}api/train"))
            .header("content-type", "application/json")
            .send(body)
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(started.contains("running"), "{started}");
        let mut events = String::new();
        agent
            .get(format!("{url}api/train/events"))
            .call()
            .unwrap()
            .into_body()
            .into_reader()
            .read_to_string(&mut events)
            .unwrap();
        assert!(events.contains(r#""state":"done""#), "the explorer's run did not finish: {events}");
        explorer.push(median_step_ms(&runs.join("explore-cpu-small")));
        let _ = child.kill();
        let _ = child.wait();
        println!("round {round}: addmul train {:.2} ms/step, explorer {:.2} ms/step", cli[round], explorer[round]);
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (med(&mut cli), med(&mut explorer));
    println!(
        "median of {rounds} rounds: addmul train {a:.2} ms/step, explorer {b:.2} ms/step ({:+.1}%)",
        100.0 * (b / a - 1.0)
    );
}
