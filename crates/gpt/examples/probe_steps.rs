use addmul_gpt::{TrainConfig, Trainer};
fn main() {
    let text = std::fs::read_to_string("../shared/data/tinyshakespeare.txt").unwrap();
    let chars: Vec<char> = text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let tokens: Vec<u32> = text.chars().map(|c| chars.binary_search(&c).unwrap() as u32).collect();
    let steps: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(5);
    let config = TrainConfig { threads: 1, ..TrainConfig::cpu_small() };
    let mut trainer = Trainer::new(config, chars.len(), &tokens).unwrap();
    for _ in 0..steps {
        trainer.train_step().unwrap();
    }
}
