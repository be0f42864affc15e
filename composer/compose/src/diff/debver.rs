//! Debian version ordering, as `dpkg --compare-versions` does it
//! (lib/dpkg/version.c): `[epoch:]upstream[-revision]`, epochs numerically,
//! the rest by `verrevcmp`, where `~` sorts before everything, even the end
//! of the string, letters before other characters, and digit runs compare
//! as numbers.

use std::cmp::Ordering;

/// Orders two Debian version strings.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| verrevcmp(ra.as_bytes(), rb.as_bytes()))
}

/// (epoch, upstream, revision). The epoch ends at the first `:`, the
/// revision starts after the last `-`; a missing revision is empty, which
/// dpkg treats like "0". An unparsable epoch counts as 0 (dpkg would
/// reject the version; installed ones are valid).
fn split(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) => (e.parse().unwrap_or(0), rest),
        None => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// The weight of one character in a non-digit run; 0 for the end.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let digit = |s: &[u8], i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Non-digit prefixes, character by character.
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        // Digit runs as numbers: skip leading zeros, then longer wins, then
        // the first differing digit.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal as Eq, Greater as Gt, Less as Lt};

    /// (a, b, a compared to b).
    const TABLE: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", Eq),
        ("1.0", "1.1", Lt),
        ("1.10", "1.9", Gt),
        ("1.0", "1.0-0", Eq),
        ("1.0-1", "1.0", Gt),
        ("1.0~rc1", "1.0", Lt),
        ("1.0~rc1", "1.0~rc2", Lt),
        ("1.0~~", "1.0~", Lt),
        ("1.0~", "1.0", Lt),
        ("1.0", "1.0+b1", Lt),
        ("1.0a", "1.0", Gt),
        ("1.0a", "1.0+", Lt), // letters before non-letters
        ("1:1.0", "2.0", Gt),
        ("0:1.0", "1.0", Eq),
        ("2:0", "1:9", Gt),
        ("1.0-1", "1.0-1.1", Lt),
        ("1.0-10", "1.0-9", Gt),
        ("1.01", "1.1", Eq),
        ("001", "1", Eq),
        ("1.2.3-4ubuntu1", "1.2.3-4", Gt),
        ("2.36-9+deb12u4", "2.36-9+deb12u10", Lt),
        ("1.0-2~bpo12+1", "1.0-2", Lt),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12", Lt),
        ("1.2-3-4", "1.2-3-5", Lt), // the revision is after the last hyphen
        ("a", "b", Lt),
        ("", "0", Eq),
        ("1.0.", "1.0", Gt),
    ];

    #[test]
    fn version_table() {
        for &(a, b, want) in TABLE {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    /// Cross-checks the table with the real dpkg (on every Debian host).
    #[test]
    fn version_table_agrees_with_dpkg() {
        let ok = |a: &str, op: &str, b: &str| {
            std::process::Command::new("dpkg")
                .args(["--compare-versions", a, op, b])
                .status()
                .expect("running dpkg: install it with `apt-get install dpkg`")
                .success()
        };
        // dpkg warns about versions that do not start with a digit.
        let valid = |v: &str| v.starts_with(|c: char| c.is_ascii_digit());
        for &(a, b, want) in TABLE.iter().filter(|(a, b, _)| valid(a) && valid(b)) {
            let op = match want {
                Lt => "lt",
                Eq => "eq",
                Gt => "gt",
            };
            assert!(ok(a, op, b), "dpkg disagrees: {a} {op} {b}");
        }
    }
}
