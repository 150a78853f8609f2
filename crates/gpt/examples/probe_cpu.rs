use addmul_gpt::{TrainConfig, Trainer};
fn cpu() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<f64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0.0)).collect();
    (f[11] + f[12]) / 100.0
}
fn main() {
    let text = std::fs::read_to_string("../shared/data/tinyshakespeare.txt").unwrap();
    let chars: Vec<char> = text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let tokens: Vec<u32> = text.chars().map(|c| chars.binary_search(&c).unwrap() as u32).collect();
    let config = TrainConfig { threads: 1, ..TrainConfig::cpu_small() };
    let mut trainer = Trainer::new(config, chars.len(), &tokens).unwrap();
    for _ in 0..5 {
        trainer.train_step().unwrap();
    }
    let c0 = cpu();
    let n = 60;
    for _ in 0..n {
        trainer.train_step().unwrap();
    }
    println!("cpu ms per step (1 thread): {:.1}", (cpu() - c0) * 1000.0 / n as f64);
}
