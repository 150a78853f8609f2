//! The chapter 3 demo behind `--example char_model` runs end to end.

use addmul::demos::{CharModelOptions, char_model};

#[test]
fn char_model_demo_trains_and_generates() {
    let options = CharModelOptions { epochs: Some(3), length: 30, progress_every: 1, ..Default::default() };
    let mut out = Vec::new();
    let demo = char_model(&options, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("\"humpty dumpt\" -> [8, 21, 13, 16, 20, 25, 27, 4, 21, 13, 16, 20]"), "{text}");
    assert!(text.contains("epoch    3"), "{text}");
    assert_eq!(demo.greedy.chars().count(), 30);
    assert_eq!(demo.run.history.epochs.len(), 3);
    let bad = CharModelOptions { prompt: Some("5 little ducks".into()), epochs: Some(1), ..Default::default() };
    assert!(matches!(char_model(&bad, &mut Vec::new()), Err(addmul::Error::CharLm(_))));
}
