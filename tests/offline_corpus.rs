//! The book's text, which `addmul train` falls back to offline, is prose:
//! no mdBook directive is left in it to be learned and sampled.

#[test]
fn the_offline_corpus_holds_no_template_directives() {
    let text = addmul::corpus::book_text();
    assert!(!text.contains("{{#"), "a directive is left in the book's text");
    assert!(text.contains("leaf") && text.len() > 50_000, "the prose is there");
}
