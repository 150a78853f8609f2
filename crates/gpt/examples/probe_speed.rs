use addmul_gpt::{TrainConfig, Trainer};
fn main() {
    let text = std::fs::read_to_string("../shared/data/tinyshakespeare.txt").unwrap();
    let chars: Vec<char> = text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let tokens: Vec<u32> = text.chars().map(|c| chars.binary_search(&c).unwrap() as u32).collect();
    let threads: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(0);
    let config = TrainConfig { threads, ..TrainConfig::cpu_small() };
    let mut trainer = Trainer::new(config, chars.len(), &tokens).unwrap();
    let (mut times, mut compute) = (Vec::new(), Vec::new());
    for i in 0..80 {
        let r = trainer.train_step().unwrap();
        if i >= 10 {
            times.push(r.seconds * 1000.0);
            compute.push(r.compute_seconds * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    compute.sort_by(f64::total_cmp);
    println!(
        "threads {} median {:.1} ms (compute {:.1} ms)",
        trainer.threads(),
        times[times.len() / 2],
        compute[compute.len() / 2]
    );
}
