//! Ctrl-C during `addmul train`, sent to the real binary: the first lets the
//! step finish, saves a checkpoint, says how to resume and exits with 130;
//! a second stops at once without damaging the last checkpoint.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use addmul::gpt::checkpoint::{load_model, resolve};
use common::Temp;

/// Starts a tiny training run of `max_iters` steps into `dir/run`,
/// checkpointing every `checkpoint_interval` steps.
fn start(dir: &Path, checkpoint_interval: u64, max_iters: u64) -> Child {
    let data = dir.join("text.txt");
    std::fs::write(&data, "the quick brown fox jumps over the lazy dog. ".repeat(200)).unwrap();
    Command::new(env!("CARGO_BIN_EXE_addmul"))
        .args(["train", "--preset", "tiny", "--max-iters", &max_iters.to_string(), "--quiet", "--sample", "0"])
        .args(["--set", &format!("checkpoint_interval={checkpoint_interval}"), "--set", "eval_interval=100000"])
        .args(["--set", "warmup_iters=2"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(dir.join("run"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Resumes the run in `dir/run` up to `max_iters` steps; it must succeed.
fn resume(dir: &Path, max_iters: usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_addmul"))
        .args(["train", "--resume", "--quiet", "--sample", "0", "--max-iters", &max_iters.to_string()])
        .arg("--data")
        .arg(dir.join("text.txt"))
        .arg("--out")
        .arg(dir.join("run"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Steps in the run's log so far.
fn logged_steps(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl"))
        .map_or(0, |log| log.lines().filter(|l| l.contains(r#""type":"step""#)).count())
}

fn interrupt(child: &Child) {
    let status = Command::new("sh").arg("-c").arg(format!("kill -INT {}", child.id())).status().unwrap();
    assert!(status.success());
}

/// Waits for the child to exit (at most a minute); its exit code and stderr.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            return (status.code(), err);
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the run did not stop within a minute of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the run has logged at least `steps` steps.
fn wait_for_steps(run: &Path, steps: usize) {
    let start = Instant::now();
    while logged_steps(run) < steps {
        assert!(start.elapsed() < Duration::from_secs(120), "the run did not start training");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_finishes_the_step_saves_a_checkpoint_and_exits_with_130() {
    let dir = Temp::new("once");
    let run = dir.0.join("run");
    let child = start(&dir.0, 0, 1_000_000);
    wait_for_steps(&run, 3);
    interrupt(&child);
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("addmul train --resume --out"), "{stderr}");
    // The checkpoint holds the last step the log shows.
    let steps = logged_steps(&run);
    let checkpoint = resolve(&run).unwrap();
    assert_eq!(checkpoint.file_name().unwrap().to_string_lossy(), format!("step-{steps:06}"));
    load_model::<f32>(&checkpoint).unwrap();
    // And the run resumes from it.
    resume(&dir.0, steps + 2);
    assert_eq!(logged_steps(&run), steps + 2);
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_leaves_the_last_checkpoint_whole() {
    let dir = Temp::new("twice");
    let run = dir.0.join("run");
    // A checkpoint after every step: the second Ctrl-C may well land in one.
    let child = start(&dir.0, 1, 1_000_000);
    wait_for_steps(&run, 3);
    // Both presses from one shell, microseconds apart (the second may find
    // the process already gone, which is fine too).
    let pid = child.id();
    Command::new("sh").arg("-c").arg(format!("kill -INT {pid}; kill -INT {pid} 2>/dev/null; true")).status().unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, Some(130), "{stderr}");
    let checkpoint = resolve(&run).unwrap();
    load_model::<f32>(&checkpoint).unwrap();
}

#[test]
fn after_a_kill_and_a_resume_the_log_has_each_step_once() {
    let dir = Temp::new("kill");
    let run = dir.0.join("run");
    // A run of 10 steps with checkpoints at 4, 8 and 10; then the state a
    // kill after step 10 was logged but before its checkpoint leaves behind:
    // `latest` at step 8, the log at step 10.
    let finished = start(&dir.0, 4, 10).wait().unwrap();
    assert!(finished.success());
    std::fs::remove_dir_all(run.join("step-000010")).unwrap();
    std::fs::write(run.join("latest"), "step-000008").unwrap();
    assert_eq!(logged_steps(&run), 10);
    let saved = 8;
    resume(&dir.0, saved + 3);
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .filter(|l| l.contains(r#""type":"step""#))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, (1..=saved as u64 + 3).collect::<Vec<_>>());
}
