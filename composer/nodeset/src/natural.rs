//! Natural order: "node2" < "node10".
//!
//! A name is read as a sequence of symbols: each non-digit byte is a symbol,
//! each run of ASCII digits is ONE symbol compared by numeric value. Digit
//! runs sort before non-digit bytes. That makes a total preorder in which
//! "node01" and "node1" tie; the plain byte order breaks such ties, so the
//! order is total and `Equal` means "the same string" (what a set needs).

use std::cmp::Ordering;

/// Compares two names in natural order (see the module docs).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    natural_key_cmp(a.as_bytes(), b.as_bytes()).then_with(|| a.cmp(b))
}

fn natural_key_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    loop {
        let (x, y) = match (a.get(i), b.get(j)) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(&x), Some(&y)) => (x, y),
        };
        match (x.is_ascii_digit(), y.is_ascii_digit()) {
            (true, true) => {
                let (ei, ej) = (digit_run_end(a, i), digit_run_end(b, j));
                let order = cmp_digit_values(&a[i..ei], &b[j..ej]);
                if order != Ordering::Equal {
                    return order;
                }
                (i, j) = (ei, ej);
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {
                if x != y {
                    return x.cmp(&y);
                }
                (i, j) = (i + 1, j + 1);
            }
        }
    }
}

fn digit_run_end(s: &[u8], start: usize) -> usize {
    s[start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(s.len(), |n| start + n)
}

/// Compares two digit strings by value without parsing them, so runs longer
/// than any integer type still order correctly.
fn cmp_digit_values(a: &[u8], b: &[u8]) -> Ordering {
    let a = strip_zeros(a);
    let b = strip_zeros(b);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn strip_zeros(s: &[u8]) -> &[u8] {
    let zeros = s.iter().take_while(|&&b| b == b'0').count();
    &s[zeros..]
}

/// The value of a digit string, or None if it does not fit in u64.
pub(crate) fn digits_value(s: &str) -> Option<u64> {
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// "01" is padded (its width is part of the name); "0" and "10" are not.
pub(crate) fn has_leading_zero(digits: &str) -> bool {
    digits.len() > 1 && digits.starts_with('0')
}

/// An owned name ordered naturally, so a `BTreeSet<Name>` iterates in
/// natural order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name(pub(crate) String);

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        natural_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A borrowed name (or digit string) ordered naturally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NatRef<'a>(pub(crate) &'a str);

impl Ord for NatRef<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        natural_cmp(self.0, other.0)
    }
}

impl PartialOrd for NatRef<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn natural_cmp_orders_numbers_by_value() {
        let cases = [
            ("node2", "node10", Less),
            ("node10", "node9", Greater),
            ("node01", "node1", Less), // tie on value: byte order decides
            ("node1", "node01", Greater),
            ("node1", "node1", Equal),
            ("node", "node1", Less),
            ("node1", "node-1", Less), // a digit run sorts before `-`
            ("a1b2", "a1b10", Less),
            ("rack2-node1", "rack10-node1", Less),
            (
                "n99999999999999999999999",
                "n100000000000000000000000",
                Less,
            ),
            ("1", "a", Less),
            ("", "a", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(natural_cmp(a, b), want, "{a} vs {b}");
            assert_eq!(natural_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn sorting_gives_the_natural_order() {
        let mut names = vec!["node10", "node9", "login1", "node01", "node1", "node100"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["login1", "node01", "node1", "node9", "node10", "node100"]
        );
    }

    #[test]
    fn digits_value_detects_overflow() {
        assert_eq!(digits_value("007"), Some(7));
        assert_eq!(digits_value("18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits_value("18446744073709551616"), None);
        assert_eq!(digits_value("0000000000000000000000001"), Some(1));
    }

    #[test]
    fn leading_zero_means_padded() {
        assert!(has_leading_zero("01"));
        assert!(has_leading_zero("000"));
        assert!(!has_leading_zero("0"));
        assert!(!has_leading_zero("10"));
    }
}
