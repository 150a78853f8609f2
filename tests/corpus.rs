//! The corpus download, against an HTTP server on 127.0.0.1.

mod common;

use std::path::PathBuf;

use addmul::corpus::{CorpusError, fetch, sha256_hex};
use common::serve_once;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("addmul-corpus-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_download_is_checked_and_saved() {
    let body = b"First Citizen:\nBefore we proceed any further, hear me speak.\n".to_vec();
    let sha = sha256_hex(&body);
    let dir = temp("ok");
    let dest = dir.join("tinyshakespeare.txt");
    fetch(&serve_once("200 OK", body.clone()), &sha, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_wrong_bytes_are_refused_and_not_saved() {
    let dir = temp("bad");
    let dest = dir.join("tinyshakespeare.txt");
    let err = fetch(&serve_once("200 OK", b"tampered".to_vec()), &sha256_hex(b"original"), &dest).unwrap_err();
    assert!(matches!(err, CorpusError::Checksum { .. }), "{err}");
    assert!(!dest.exists());
    let err = fetch(&serve_once("404 Not Found", b"no".to_vec()), &sha256_hex(b"no"), &dest).unwrap_err();
    assert!(matches!(err, CorpusError::Download { .. }), "{err}");
    assert!(!dest.exists());
}

#[test]
fn the_known_digest_of_tinyshakespeare_is_well_formed() {
    assert_eq!(addmul::corpus::TINYSHAKESPEARE_SHA256.len(), 64);
    assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert!(addmul::corpus::book_text().contains("leaf"));
}
