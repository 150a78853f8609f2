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

#[test]
fn a_failed_checkpoint_write_keeps_the_last_checkpoint_and_names_the_file() {
    // The failure is real, not simulated: the operating system's limit on
    // file size (`ulimit -f`, with SIGXFSZ ignored so that the write returns
    // EFBIG, as a full disk returns ENOSPC) refuses the weights file of the
    // next checkpoint. It works as root too, where permissions would not.
    let dir = Temp::new("efbig");
    let run = dir.0.join("run");
    assert!(start(&dir.0, 2, 2).wait().unwrap().success());
    let weights = std::fs::metadata(run.join("step-000002/model.safetensors")).unwrap().len();
    let kept = std::fs::read(run.join("step-000002/model.safetensors")).unwrap();
    // Half the weights file, in the 512-byte blocks POSIX `ulimit -f` counts
    // (bash counts 1024: a quarter then, still far above the log's size).
    let blocks = weights / 2 / 512;
    assert!(blocks * 512 > 16 * std::fs::metadata(run.join("log.jsonl")).unwrap().len());
    let script = format!("trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_addmul"))
        .args(["train", "--resume", "--quiet", "--sample", "0", "--max-iters", "4"])
        .arg("--data")
        .arg(dir.0.join("text.txt"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // The error names the file it could not write, and the way on.
    let file = run.join(".step-000004.tmp").join("model.safetensors");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(stderr.contains("the last complete checkpoint is"), "{stderr}");
    // The last checkpoint is as it was, `latest` still names it, and the
    // partial folder is gone.
    assert_eq!(std::fs::read_to_string(run.join("latest")).unwrap(), "step-000002");
    assert_eq!(std::fs::read(run.join("step-000002/model.safetensors")).unwrap(), kept);
    assert!(!run.join(".step-000004.tmp").exists() && !run.join("step-000004").exists());
    // Without the limit, the run goes on from it.
    resume(&dir.0, 4);
    assert_eq!(std::fs::read_to_string(run.join("latest")).unwrap(), "step-000004");
}

/// A tiny xorshift generator: the kill times are random but the same on
/// every run of the test.
struct Xorshift(u64);

impl Xorshift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn killed_at_random_moments_and_resumed_each_time_training_ends_bit_for_bit_as_if_never_stopped() {
    const STEPS: u64 = 400;
    const KILLS: usize = 50;
    // The uninterrupted run, with a checkpoint after every step (so that
    // kills land in checkpoint writes too).
    let whole = Temp::new("unkilled");
    let clock = Instant::now();
    assert!(start(&whole.0, 1, STEPS).wait().unwrap().success());
    // Each life lasts at most (the time the steps still to go took
    // uninterrupted) / (the kills still to come + 1): never more than half of
    // what is left, and the bound follows the run's real progress, so every
    // kill lands before the end on a fast machine as on a slow (or busier) one.
    let micros_per_step = clock.elapsed().as_micros() as u64 / STEPS;
    let reference = whole.0.join("run").join(format!("step-{STEPS:06}"));

    let dir = Temp::new("killed");
    let run = dir.0.join("run");
    let mut rng = Xorshift(0x5eed_2026_1204);
    let mut kills = 0;
    let mut lives = 0;
    let mut reached = std::collections::BTreeSet::new();
    let mut in_writes = 0;
    while kills < KILLS {
        lives += 1;
        assert!(lives < 10 * KILLS, "the run made no progress");
        let started = run.join("latest").exists() || run.join(format!("step-{:06}", 1)).exists();
        let mut child = if started {
            // Resume (which also repairs a `latest` that a kill left behind).
            Command::new(env!("CARGO_BIN_EXE_addmul"))
                .args(["train", "--resume", "--quiet", "--sample", "0", "--max-iters", &STEPS.to_string()])
                .arg("--data")
                .arg(dir.0.join("text.txt"))
                .arg("--out")
                .arg(&run)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        } else {
            // Killed before its first checkpoint: start again from scratch.
            if run.exists() {
                std::fs::remove_dir_all(&run).unwrap();
            }
            start(&dir.0, 1, STEPS)
        };
        let done: u64 = std::fs::read_to_string(run.join("latest"))
            .ok()
            .and_then(|l| l.trim().strip_prefix("step-")?.parse().ok())
            .unwrap_or(0);
        let longest_life = micros_per_step * (STEPS - done) / (KILLS - kills + 1) as u64;
        std::thread::sleep(Duration::from_micros(rng.below(longest_life.max(1))));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        if status.success() {
            break;
        }
        let latest = std::fs::read_to_string(run.join("latest")).unwrap_or_default();
        reached.insert(latest);
        let torn = std::fs::read_dir(&run)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
        in_writes += usize::from(torn);
    }
    assert_eq!(kills, KILLS, "the run finished after {kills} kills: give it more steps");
    // The kills landed all along the run, not only before it started.
    assert!(reached.len() > KILLS / 2, "kills after only {} checkpoints: {reached:?}", reached.len());
    eprintln!("{kills} kills, {} checkpoints reached, {in_writes} in the middle of a checkpoint", reached.len());
    // Now let it finish.
    resume(&dir.0, STEPS as usize);
    let last = run.join(format!("step-{STEPS:06}"));
    for file in ["model.safetensors", "optimizer.safetensors", "trainer.json"] {
        let (a, b) = (std::fs::read(reference.join(file)).unwrap(), std::fs::read(last.join(file)).unwrap());
        assert!(
            a == b,
            "{file} differs from the uninterrupted run's after {kills} kills{}",
            if file.ends_with(".json") {
                format!(":\n{}\n---\n{}", String::from_utf8_lossy(&a), String::from_utf8_lossy(&b))
            } else {
                String::new()
            }
        );
    }
    assert_eq!(logged_steps(&run), STEPS as usize);
}
