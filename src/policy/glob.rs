//! Glob matching, the one pattern language of Cairn (model matches, tool and skill grants, route
//! matches, webhook hosts).
//!
//! Syntax: `*` matches any run of characters, including the empty run; `?` matches exactly one
//! character (one Unicode scalar value, not one byte); every other character, `[`, `]` and `\`
//! included, matches itself. Matching is case-sensitive and always covers the whole name.
//!
//! Cost: no allocation, no recursion and no backtracking. The pattern is split at `*` into
//! segments; the first segment must match at the start of the name, the last at its end, and each
//! segment in between is found at its leftmost place after the previous one (for globs this greedy
//! choice is always right, so nothing is ever retried). Segments without `?` are found with the
//! standard library's linear-time substring search, so a pattern without `?` between two stars
//! costs O(|pattern| + |name|). A `?` inside a middle segment makes that segment's search
//! O(|name| × |segment|) in the worst case — still polynomial, bounded by the pattern length, and
//! nowhere near the exponential blow-up of a backtracking matcher.

/// Whether `name` matches the glob `pattern` as a whole (see the [module docs](self)).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let Some(first_star) = pattern.find('*') else {
        return match_prefix(pattern, name) == Some(name.len());
    };
    let last_star = pattern.rfind('*').unwrap_or(first_star);
    let head = &pattern[..first_star];
    let tail = &pattern[last_star + 1..];
    let Some(head_end) = match_prefix(head, name) else {
        return false;
    };
    let rest = &name[head_end..];
    let Some(tail_start) = match_suffix(tail, rest) else {
        return false;
    };
    let mut hay = &rest[..tail_start];
    for segment in pattern[first_star..=last_star].split('*') {
        if segment.is_empty() {
            continue;
        }
        match find(segment, hay) {
            Some(end) => hay = &hay[end..],
            None => return false,
        }
    }
    true
}

/// Whether `s` contains a wildcard (`*` or `?`), i.e. matches more than the one name equal to it.
pub fn is_glob(s: &str) -> bool {
    s.bytes().any(|b| b == b'*' || b == b'?')
}

/// If `segment` (no `*`) matches at the start of `text`, the number of bytes it covers.
fn match_prefix(segment: &str, text: &str) -> Option<usize> {
    if !segment.contains('?') {
        return text.starts_with(segment).then_some(segment.len());
    }
    let mut chars = text.char_indices();
    for p in segment.chars() {
        let (_, c) = chars.next()?;
        if p != '?' && p != c {
            return None;
        }
    }
    Some(chars.next().map_or(text.len(), |(i, _)| i))
}

/// If `segment` (no `*`) matches at the end of `text`, the byte offset where the match starts.
fn match_suffix(segment: &str, text: &str) -> Option<usize> {
    if !segment.contains('?') {
        return text.ends_with(segment).then(|| text.len() - segment.len());
    }
    let mut start = text.len();
    let mut chars = text.char_indices().rev();
    for p in segment.chars().rev() {
        let (i, c) = chars.next()?;
        if p != '?' && p != c {
            return None;
        }
        start = i;
    }
    Some(start)
}

/// The end (byte offset) of the leftmost match of `segment` (no `*`, not empty) in `hay`.
fn find(segment: &str, hay: &str) -> Option<usize> {
    if !segment.contains('?') {
        return hay.find(segment).map(|i| i + segment.len());
    }
    hay.char_indices().find_map(|(i, _)| match_prefix(segment, &hay[i..]).map(|n| i + n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn yes(p: &str, n: &str) {
        assert!(glob_match(p, n), "{p:?} should match {n:?}");
    }

    #[track_caller]
    fn no(p: &str, n: &str) {
        assert!(!glob_match(p, n), "{p:?} should not match {n:?}");
    }

    #[test]
    fn literal_patterns_match_only_the_same_name() {
        yes("gpt-4o", "gpt-4o");
        no("gpt-4o", "gpt-4o-mini");
        no("gpt-4o", "gpt-4");
        no("gpt-4o", "");
        yes("", "");
        no("", "a");
    }

    #[test]
    fn matching_is_case_sensitive() {
        no("GPT-4o", "gpt-4o");
        no("gpt-*", "GPT-4o");
        yes("GPT-*", "GPT-4o");
    }

    #[test]
    fn star_matches_any_run_including_empty() {
        yes("*", "");
        yes("*", "anything at all");
        yes("**", "");
        yes("gpt-4o*", "gpt-4o");
        yes("gpt-4o*", "gpt-4o-mini");
        no("gpt-4o*", "gpt-4");
        yes("*-mini", "gpt-4o-mini");
        no("*-mini", "gpt-4o-mini-2024");
        yes("a*b*c", "abc");
        yes("a*b*c", "axxbyyc");
        no("a*b*c", "axxbyy");
        no("a*b*c", "acb");
        yes("*a*", "a");
        yes("a**b", "ab");
    }

    #[test]
    fn star_pattern_head_and_tail_must_not_overlap() {
        // "ab*ba" needs at least "ab" + "ba": "aba" is too short even though it starts with "ab"
        // and ends with "ba".
        no("ab*ba", "aba");
        yes("ab*ba", "abba");
        no("a*a", "a");
        yes("a*a", "aa");
    }

    #[test]
    fn middle_segments_are_found_in_order() {
        yes("*search*code*", "github_search_for_code_now");
        no("*code*search*", "github_search_for_code_now");
        yes("x*ab*ab*y", "xababy");
        no("x*ab*ab*y", "xaby");
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        yes("gpt-?o", "gpt-4o");
        no("gpt-?o", "gpt-o");
        no("gpt-?o", "gpt-44o");
        yes("???", "abc");
        no("???", "ab");
        no("???", "abcd");
        yes("?*", "a");
        no("?*", "");
        yes("*?", "a");
        yes("*?x?*", "x-x-");
        no("*?x?*", "x");
    }

    #[test]
    fn question_mark_matches_one_unicode_character_not_one_byte() {
        yes("caf?", "café");
        yes("?", "é");
        yes("?", "🦀");
        no("??", "🦀");
        yes("*?", "ü");
        yes("?*", "ü");
        yes("a*?b*c", "a🦀bc");
        yes("*é?*", "xxéyy");
        yes("*é*", "xxéyy");
    }

    #[test]
    fn brackets_and_backslashes_are_literal() {
        yes("a[b]c", "a[b]c");
        no("a[b]c", "abc");
        yes(r"a\*", r"a\xyz");
        no(r"a\*", "a*");
        yes("a.c", "a.c");
        no("a.c", "abc");
    }

    #[test]
    fn question_marks_in_middle_segments() {
        yes("*a?c*", "zzabczz");
        yes("*a?c*", "aac");
        no("*a?c*", "ac");
        yes("x*a?a*y", "xaaaay");
        no("x*a?a*y", "xaay");
    }

    #[test]
    fn pathological_patterns_finish_quickly() {
        // A backtracking matcher takes exponential time here; ours is linear.
        let name = "a".repeat(10_000);
        let pattern = format!("{}b", "a*".repeat(50));
        let t = std::time::Instant::now();
        assert!(!glob_match(&pattern, &name));
        assert!(glob_match(&format!("{}a", "a*".repeat(50)), &name));
        assert!(t.elapsed() < std::time::Duration::from_secs(1), "took {:?}", t.elapsed());
    }

    /// Reference matcher: the textbook dynamic programme over characters.
    fn reference(pattern: &str, name: &str) -> bool {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        // m[i][j]: p[..i] matches n[..j]
        let mut m = vec![vec![false; n.len() + 1]; p.len() + 1];
        m[0][0] = true;
        for i in 1..=p.len() {
            for j in 0..=n.len() {
                m[i][j] = match p[i - 1] {
                    '*' => m[i - 1][j] || (j > 0 && m[i][j - 1]),
                    '?' => j > 0 && m[i - 1][j - 1],
                    c => j > 0 && m[i - 1][j - 1] && n[j - 1] == c,
                };
            }
        }
        m[p.len()][n.len()]
    }

    /// Every string of length up to `max` over `alphabet`.
    fn all_strings(alphabet: &[char], max: usize) -> Vec<String> {
        let mut out = vec![String::new()];
        let mut last = vec![String::new()];
        for _ in 0..max {
            last = last.iter().flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}"))).collect();
            out.extend(last.iter().cloned());
        }
        out
    }

    #[test]
    fn agrees_with_a_reference_matcher_on_every_small_case() {
        let patterns = all_strings(&['a', 'é', '*', '?'], 5);
        let names = all_strings(&['a', 'b', 'é'], 5);
        let mut matched = 0;
        for p in &patterns {
            for n in &names {
                let expected = reference(p, n);
                assert_eq!(glob_match(p, n), expected, "pattern {p:?} name {n:?}");
                matched += usize::from(expected);
            }
        }
        // The cases are not trivially all-false or all-true.
        assert!(matched > 10_000 && matched < patterns.len() * names.len() / 2, "{matched}");
    }

    #[test]
    fn long_question_mark_segments_stay_fast() {
        let name = "a".repeat(20_000);
        let pattern = format!("*{}?b*", "a".repeat(200));
        let t = std::time::Instant::now();
        assert!(!glob_match(&pattern, &name));
        assert!(glob_match(&format!("*{}?a*", "a".repeat(200)), &name));
        assert!(t.elapsed() < std::time::Duration::from_secs(2), "took {:?}", t.elapsed());
    }

    #[test]
    fn is_glob_detects_wildcards() {
        assert!(is_glob("gpt-*"));
        assert!(is_glob("gpt-?o"));
        assert!(!is_glob("gpt-4o"));
        assert!(!is_glob("a[b]"));
    }
}
