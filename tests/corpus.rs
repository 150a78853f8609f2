//! The corpus download, against an HTTP server on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use addmul::corpus::{CorpusError, fetch, sha256_hex};

/// Serves `body` with `status` to one connection; returns its address.
fn serve_once(status: &'static str, body: Vec<u8>) -> String {
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
