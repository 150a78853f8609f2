//! The number words: a table of known cases in both languages, the
//! conventions the module documents, and the test/train split.

use std::collections::HashSet;

use addmul_core::rng;
use addmul_transformer::TransformerError;
use addmul_transformer::tasks::numbers::{
    LIMIT, Split, english, english_tokens, english_vocabulary, german, german_tokens, german_vocabulary, pair,
    parse_english_tokens,
};

/// Known cases, checked by hand against the Duden's rules.
const KNOWN: &[(u32, &str, &str)] = &[
    (0, "zero", "null"),
    (1, "one", "eins"),
    (2, "two", "zwei"),
    (6, "six", "sechs"),
    (7, "seven", "sieben"),
    (10, "ten", "zehn"),
    (11, "eleven", "elf"),
    (12, "twelve", "zwölf"),
    (16, "sixteen", "sechzehn"),
    (17, "seventeen", "siebzehn"),
    (20, "twenty", "zwanzig"),
    (21, "twenty-one", "einundzwanzig"),
    (30, "thirty", "dreißig"),
    (31, "thirty-one", "einunddreißig"),
    (45, "forty-five", "fünfundvierzig"),
    (60, "sixty", "sechzig"),
    (66, "sixty-six", "sechsundsechzig"),
    (70, "seventy", "siebzig"),
    (77, "seventy-seven", "siebenundsiebzig"),
    (99, "ninety-nine", "neunundneunzig"),
    (100, "one hundred", "einhundert"),
    (101, "one hundred one", "einhunderteins"),
    (110, "one hundred ten", "einhundertzehn"),
    (111, "one hundred eleven", "einhundertelf"),
    (121, "one hundred twenty-one", "einhunderteinundzwanzig"),
    (200, "two hundred", "zweihundert"),
    (999, "nine hundred ninety-nine", "neunhundertneunundneunzig"),
    (1000, "one thousand", "eintausend"),
    (1001, "one thousand one", "eintausendeins"),
    (1100, "one thousand one hundred", "eintausendeinhundert"),
    (2021, "two thousand twenty-one", "zweitausendeinundzwanzig"),
    (11_000, "eleven thousand", "elftausend"),
    (16_016, "sixteen thousand sixteen", "sechzehntausendsechzehn"),
    (21_000, "twenty-one thousand", "einundzwanzigtausend"),
    (21_354, "twenty-one thousand three hundred fifty-four", "einundzwanzigtausenddreihundertvierundfünfzig"),
    (100_000, "one hundred thousand", "einhunderttausend"),
    (100_001, "one hundred thousand one", "einhunderttausendeins"),
    (101_000, "one hundred one thousand", "einhunderteintausend"),
    (101_101, "one hundred one thousand one hundred one", "einhunderteintausendeinhunderteins"),
    (
        777_777,
        "seven hundred seventy-seven thousand seven hundred seventy-seven",
        "siebenhundertsiebenundsiebzigtausendsiebenhundertsiebenundsiebzig",
    ),
    (
        999_999,
        "nine hundred ninety-nine thousand nine hundred ninety-nine",
        "neunhundertneunundneunzigtausendneunhundertneunundneunzig",
    ),
];

#[test]
fn known_cases_in_english_and_german() {
    for &(n, en, de) in KNOWN {
        assert_eq!(english(n).unwrap(), en, "{n}");
        assert_eq!(german(n).unwrap(), de, "{n}");
    }
}

#[test]
fn german_puts_units_before_tens() {
    assert_eq!(english_tokens(21).unwrap(), ["twenty", "-", "one"]);
    assert_eq!(german_tokens(21).unwrap(), ["ein", "und", "zwanzig"]);
    assert_eq!(german_tokens(1).unwrap(), ["eins"]);
    assert_eq!(german_tokens(1001).unwrap(), ["ein", "tausend", "eins"]);
}

#[test]
fn a_million_is_out_of_range() {
    for f in [english, german] {
        let err = f(LIMIT).unwrap_err();
        assert!(matches!(err, TransformerError::Numeric(addmul_core::Error::OutOfRange { .. })), "{err}");
    }
}

/// Reading the English back gives the number, for every number; other
/// word sequences read as none.
#[test]
fn english_reads_back_as_its_number_and_nothing_else_does() {
    for n in 0..LIMIT {
        assert_eq!(parse_english_tokens(&english_tokens(n).unwrap()), Some(n), "{n}");
    }
    for bad in [&["two", "zero"][..], &["twenty", "one"], &["hundred"], &["fourty"], &["one", "one"], &[], &["-"]] {
        assert_eq!(parse_english_tokens(bad), None, "{bad:?}");
    }
}

/// Every number is written with the vocabularies' tokens, within the
/// lengths the tasks allow, and different numbers are written differently.
#[test]
fn every_number_fits_the_vocabularies_and_is_unambiguous() {
    let (en, de) = (english_vocabulary().unwrap(), german_vocabulary().unwrap());
    let (mut longest_en, mut longest_de) = (0, 0);
    let mut words = HashSet::new();
    for n in (0..LIMIT).filter(|n| n % 7 == 0 || *n < 2000) {
        let p = pair(n, &en, &de).unwrap();
        longest_en = longest_en.max(p.source.len());
        longest_de = longest_de.max(p.target.len());
        assert!(words.insert(german(n).unwrap()), "{n} is written like another number");
    }
    assert_eq!((longest_en, longest_de), (11, 11));
    assert_eq!((en.len(), de.len()), (34, 35));
}

#[test]
fn training_never_draws_a_test_number() {
    let split = Split::new(5000, &mut rng(1)).unwrap();
    assert_eq!(split.test().len(), 5000);
    assert_eq!(split.test().iter().collect::<HashSet<_>>().len(), 5000);
    let mut r = rng(2);
    let mut short = 0;
    for _ in 0..20_000 {
        let n = split.sample_train(&mut r);
        assert!(!split.is_held_out(n) && n < LIMIT);
        short += usize::from(n < 100);
    }
    // Digit counts are uniform: about a third of the draws have 1 or 2.
    assert!((6000..7400).contains(&short), "{short}");
    assert!(Split::new(600_000, &mut r).is_err());
}
