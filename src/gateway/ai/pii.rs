//! Built-in PII detectors: e-mail addresses, phone numbers, payment card numbers (Luhn-checked),
//! IBANs (ISO 13616 mod-97 checksum) and US Social Security numbers (SSA area/group/serial rules).
//!
//! Each detector is a regular expression that finds candidates followed by a validation that
//! removes false positives (a 16-digit order number that fails Luhn is not a card). Regexes are
//! compiled once per process. Candidates that overlap make one finding covering all of them (so
//! redacting it leaves no part of any), named by the earlier one in the text, then the longer
//! one, then the stricter kind (card, IBAN, SSN before phone): a card number is never reported as
//! a phone number too.

use crate::config::PiiDetector;
use regex::Regex;
use std::sync::LazyLock;

/// One finding: a detector and a byte range of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiMatch {
    /// What was found.
    pub kind: PiiDetector,
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

/// The name of a detector as users write it in manifests (`CreditCard`).
pub fn detector_name(kind: PiiDetector) -> &'static str {
    match kind {
        PiiDetector::Email => "Email",
        PiiDetector::Phone => "Phone",
        PiiDetector::CreditCard => "CreditCard",
        PiiDetector::Iban => "IBAN",
        PiiDetector::UsSsn => "USSSN",
    }
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\b[a-z0-9](?:[a-z0-9._%+\-]{0,63})@(?:[a-z0-9](?:[a-z0-9\-]{0,62}[a-z0-9])?\.)+[a-z]{2,24}\b",
    )
    .unwrap()
});
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    // Optional +country, then groups of digits separated by space, dot or dash, optionally with
    // parentheses around the area code. Validated on the digit count afterwards.
    Regex::new(r"(?:\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}|(?:\(\d{2,4}\)[\s.\-]?)?\d{2,4})(?:[\s.\-]?\d{2,4}){1,5}").unwrap()
});
static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d(?:[ \-]?\d){12,18}\b").unwrap());
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b[a-z]{2}\d{2}(?: ?[a-z0-9]){11,30}\b").unwrap());
static SSN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b(\d{3})([- ])(\d{2})([- ])(\d{4})\b").unwrap());

/// Luhn check over the digits of `s` (other characters ignored); false for no digits.
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.is_empty() {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// ISO 13616 IBAN check: 15–34 alphanumerics (spaces ignored), two letters, two check digits,
/// and the rearranged number mod 97 equals 1.
pub fn iban_valid(s: &str) -> bool {
    let compact: Vec<char> =
        s.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    if !(15..=34).contains(&compact.len())
        || !compact[..2].iter().all(char::is_ascii_uppercase)
        || !compact[2..4].iter().all(char::is_ascii_digit)
        || !compact.iter().all(char::is_ascii_alphanumeric)
    {
        return false;
    }
    let mut rem: u32 = 0;
    for c in compact[4..].iter().chain(&compact[..4]) {
        let v = c.to_digit(36).unwrap_or(0);
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// SSA rules for a Social Security number: area not 000, 666 or 900–999; group not 00; serial
/// not 0000.
pub fn ssn_valid(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn digit_count(s: &str) -> usize {
    s.bytes().filter(u8::is_ascii_digit).count()
}

fn adjacent_digit(text: &str, start: usize, end: usize) -> bool {
    text[..start].chars().next_back().is_some_and(|c| c.is_ascii_digit())
        || text[end..].chars().next().is_some_and(|c| c.is_ascii_digit())
}

fn priority(kind: PiiDetector) -> u8 {
    match kind {
        PiiDetector::CreditCard => 0,
        PiiDetector::Iban => 1,
        PiiDetector::UsSsn => 2,
        PiiDetector::Email => 3,
        PiiDetector::Phone => 4,
    }
}

/// All findings of the given detectors in `text`, in text order, none overlapping another (see
/// the module doc for candidates that overlap).
pub fn find(text: &str, kinds: &[PiiDetector]) -> Vec<PiiMatch> {
    let mut all = Vec::new();
    for &kind in kinds {
        match kind {
            PiiDetector::Email => {
                all.extend(EMAIL.find_iter(text).map(|m| PiiMatch { kind, start: m.start(), end: m.end() }));
            }
            PiiDetector::CreditCard => {
                for m in CARD.find_iter(text) {
                    let n = digit_count(m.as_str());
                    if (13..=19).contains(&n) && luhn_valid(m.as_str()) {
                        all.push(PiiMatch { kind, start: m.start(), end: m.end() });
                    }
                }
            }
            PiiDetector::Iban => {
                for m in IBAN.find_iter(text) {
                    // The regex may run into a following word; shrink to the longest valid prefix.
                    let s = m.as_str();
                    let mut end = s.len();
                    while end >= 15 {
                        let cand = s[..end].trim_end();
                        if iban_valid(cand) {
                            all.push(PiiMatch { kind, start: m.start(), end: m.start() + cand.len() });
                            break;
                        }
                        match s[..end].rfind(' ') {
                            Some(i) => end = i,
                            None => break,
                        }
                    }
                }
            }
            PiiDetector::UsSsn => {
                for c in SSN.captures_iter(text) {
                    if c[2] != c[4] {
                        continue;
                    }
                    let p = |i: usize| c[i].parse::<u32>().unwrap_or(0);
                    if ssn_valid(p(1), p(3), p(5)) {
                        let m = c.get(0).expect("whole match");
                        all.push(PiiMatch { kind, start: m.start(), end: m.end() });
                    }
                }
            }
            PiiDetector::Phone => {
                for m in PHONE.find_iter(text) {
                    let s = m.as_str();
                    let n = digit_count(s);
                    let international = s.starts_with('+');
                    let separated = s.contains([' ', '-', '.', '(']);
                    // E.164 allows at most 15 digits. Without a + prefix only the North American
                    // form (10 or 11 digits, separated) counts: bare digit runs and dates would
                    // give too many false positives otherwise.
                    if (if international {
                        (8..=15).contains(&n)
                    } else {
                        (10..=11).contains(&n) && separated
                    }) && !adjacent_digit(text, m.start(), m.end())
                    {
                        all.push(PiiMatch { kind: PiiDetector::Phone, start: m.start(), end: m.end() });
                    }
                }
            }
        }
    }
    all.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(priority(a.kind).cmp(&priority(b.kind)))
    });
    // One finding per overlapping run of candidates, covering them all; a stricter kind names
    // what a phone match overlaps.
    let mut out: Vec<PiiMatch> = Vec::with_capacity(all.len());
    for m in all {
        if let Some(last) = out.last_mut()
            && m.start < last.end
        {
            if last.kind == PiiDetector::Phone && m.kind != PiiDetector::Phone {
                last.kind = m.kind;
            }
            last.end = last.end.max(m.end);
            continue;
        }
        out.push(m);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use PiiDetector::*;

    fn found<'a>(text: &'a str, kinds: &[PiiDetector]) -> Vec<(PiiDetector, &'a str)> {
        find(text, kinds).into_iter().map(|m| (m.kind, &text[m.start..m.end])).collect()
    }

    const ALL: &[PiiDetector] = &[Email, Phone, CreditCard, Iban, UsSsn];

    #[test]
    fn emails() {
        assert_eq!(
            found("write to Jane.Doe+x@mail.example.co.uk today", &[Email]),
            vec![(Email, "Jane.Doe+x@mail.example.co.uk")]
        );
        assert!(found("not an email: a@b, @example.com, user@localhost", &[Email]).is_empty());
    }

    #[test]
    fn cards_need_a_valid_luhn_and_13_to_19_digits() {
        assert_eq!(
            found("card 4111 1111 1111 1111 exp", &[CreditCard]),
            vec![(CreditCard, "4111 1111 1111 1111")]
        );
        assert_eq!(
            found("card 4111-1111-1111-1111.", &[CreditCard]),
            vec![(CreditCard, "4111-1111-1111-1111")]
        );
        assert_eq!(found("amex 378282246310005", &[CreditCard]), vec![(CreditCard, "378282246310005")]);
        assert!(found("order 4111 1111 1111 1112", &[CreditCard]).is_empty(), "Luhn fails");
        assert!(found("short 4111111111", &[CreditCard]).is_empty());
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid(""));
    }

    #[test]
    fn ibans_need_the_mod_97_checksum() {
        assert_eq!(
            found("pay to GB82 WEST 1234 5698 7654 32 please", &[Iban]),
            vec![(Iban, "GB82 WEST 1234 5698 7654 32")]
        );
        assert_eq!(found("DE89370400440532013000", &[Iban]), vec![(Iban, "DE89370400440532013000")]);
        assert!(found("GB83 WEST 1234 5698 7654 32", &[Iban]).is_empty(), "bad check digits");
        assert!(iban_valid("fr14 2004 1010 0505 0001 3m02 606"));
        assert!(!iban_valid("XX00"));
    }

    #[test]
    fn ssns_follow_ssa_rules() {
        assert_eq!(found("ssn 123-45-6789.", &[UsSsn]), vec![(UsSsn, "123-45-6789")]);
        assert_eq!(found("ssn 123 45 6789", &[UsSsn]), vec![(UsSsn, "123 45 6789")]);
        for bad in ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123-45 6789"]
        {
            assert!(found(bad, &[UsSsn]).is_empty(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        assert_eq!(found("call +1 (415) 555-2671 now", &[Phone]), vec![(Phone, "+1 (415) 555-2671")]);
        assert_eq!(found("call 415-555-2671", &[Phone]), vec![(Phone, "415-555-2671")]);
        assert_eq!(found("ring +33 6 12 34 56 78", &[Phone]), vec![(Phone, "+33 6 12 34 56 78")]);
        assert_eq!(found("ring +4915123456789", &[Phone]), vec![(Phone, "+4915123456789")]);
        assert!(found("year 2024, version 1.2.3, id 1234567890123", &[Phone]).is_empty());
        assert!(found("from 2024-01-15 2024-02-16 to", &[Phone]).is_empty());
    }

    #[test]
    fn overlaps_prefer_the_stricter_kind() {
        let text = "card 4111 1111 1111 1111 ssn 123-45-6789 mail a@example.com tel +1 415 555 2671";
        assert_eq!(
            found(text, ALL),
            vec![
                (CreditCard, "4111 1111 1111 1111"),
                (UsSsn, "123-45-6789"),
                (Email, "a@example.com"),
                (Phone, "+1 415 555 2671")
            ]
        );
        // Only the detectors asked for run.
        assert_eq!(found(text, &[Email]), vec![(Email, "a@example.com")]);
    }

    #[test]
    fn no_panic_on_arbitrary_text() {
        let alphabet: Vec<char> = "0123456789 -+().@abcXYZ\u{212A}\u{17F}é€\n".chars().collect();
        let mut seed: u64 = 42;
        for _ in 0..2000 {
            let mut t = String::new();
            for _ in 0..40 {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                t.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            for m in find(&t, ALL) {
                assert!(m.start < m.end && t.is_char_boundary(m.start) && t.is_char_boundary(m.end));
            }
        }
    }

    #[test]
    fn names_as_in_manifests() {
        assert_eq!(detector_name(CreditCard), "CreditCard");
        assert_eq!(detector_name(UsSsn), "USSSN");
    }
}
