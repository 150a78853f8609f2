//! GPT-2's printable alphabet for bytes.
//!
//! GPT-2's files (`encoder.json`, `vocab.bpe`) store tokens as text, so every
//! byte needs a printable character. Bytes that are already printable and not
//! a space (`!`..`~`, `¡`..`¬`, `®`..`ÿ`: 188 of them) stand for themselves;
//! the other 68 get the characters `U+0100`, `U+0101`, ... in increasing byte
//! order. A space (byte 32) therefore reads `Ġ` and a newline `Ċ`.
//!
//! The same order also fixes the ids of the 256 one-byte tokens in GPT-2:
//! first the 188 printable bytes in increasing order (`!` is 0), then the 68
//! others.

/// Whether GPT-2 keeps byte `b` as its own character.
const fn printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

const fn build_tables() -> ([char; 256], [u8; 256]) {
    let mut chars = ['\0'; 256];
    let mut order = [0u8; 256];
    let mut n = 0u32;
    let mut rank = 0usize;
    // Printable bytes first (their characters are themselves)...
    let mut b = 0usize;
    while b < 256 {
        if printable(b as u8) {
            chars[b] = char::from_u32(b as u32).expect("below 256 is a char");
            order[rank] = b as u8;
            rank += 1;
        }
        b += 1;
    }
    // ...then the others, mapped to U+0100 onwards.
    let mut b = 0usize;
    while b < 256 {
        if !printable(b as u8) {
            chars[b] = char::from_u32(256 + n).expect("below 512 is a char");
            n += 1;
            order[rank] = b as u8;
            rank += 1;
        }
        b += 1;
    }
    (chars, order)
}

const TABLES: ([char; 256], [u8; 256]) = build_tables();

/// The character GPT-2 writes for byte `b`.
pub fn byte_to_char(b: u8) -> char {
    TABLES.0[b as usize]
}

/// The byte that GPT-2's character `c` stands for, if it stands for one.
pub fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 256 && printable(u as u8) {
        return Some(u as u8);
    }
    if (256..256 + 68).contains(&u) {
        return Some(TABLES.1[188 + (u - 256) as usize]);
    }
    None
}

/// The 256 bytes in the order of GPT-2's one-byte token ids: `gpt2_byte_order()[i]`
/// is the byte whose token id is `i`.
pub fn gpt2_byte_order() -> [u8; 256] {
    TABLES.1
}

/// `bytes` written in GPT-2's alphabet (`" world"` is `"Ġworld"`).
pub fn to_gpt2_text(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// The bytes that a GPT-2-alphabet string stands for, or the first character
/// that is not in the alphabet.
pub fn from_gpt2_text(text: &str) -> Result<Vec<u8>, char> {
    text.chars().map(|c| char_to_byte(c).ok_or(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_gpt2_on_known_bytes() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0), '\u{100}');
        assert_eq!(gpt2_byte_order()[0], b'!');
        assert_eq!(gpt2_byte_order()[188], 0);
        assert_eq!(to_gpt2_text(b" world"), "Ġworld");
    }

    #[test]
    fn the_alphabet_is_a_bijection() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c));
            assert_eq!(char_to_byte(c), Some(b));
        }
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('\u{144}'), None);
        assert_eq!(from_gpt2_text("aĠ€"), Err('€'));
    }
}
