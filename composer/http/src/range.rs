//! The `Range` request header (RFC 9110 14.2), single byte ranges only: pure.

/// What to send for a Range header and a file of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Bytes `start..end` (end exclusive, never past the size).
    Bytes { start: u64, end: u64 },
    /// 416: no byte of the range exists.
    Unsatisfiable,
    /// Not something we honour (syntax error, other unit, several ranges):
    /// RFC 9110 lets a server ignore Range and send the whole file.
    Ignore,
}

fn num(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    match (a.is_empty(), num(a), num(b)) {
        // Suffix: the last n bytes.
        (true, _, Some(n)) if n == 0 || size == 0 => RangeSpec::Unsatisfiable,
        (true, _, Some(n)) => RangeSpec::Bytes {
            start: size - n.min(size),
            end: size,
        },
        (false, Some(s), _) if s >= size => RangeSpec::Unsatisfiable,
        (false, Some(s), None) if b.is_empty() => RangeSpec::Bytes {
            start: s,
            end: size,
        },
        (false, Some(s), Some(e)) if e >= s => RangeSpec::Bytes {
            start: s,
            end: e.saturating_add(1).min(size),
        },
        _ => RangeSpec::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeSpec::*;

    #[test]
    fn table() {
        let cases = [
            ("bytes=0-99", 1000, Bytes { start: 0, end: 100 }),
            (
                "bytes=100-",
                1000,
                Bytes {
                    start: 100,
                    end: 1000,
                },
            ),
            (
                "bytes=-10",
                1000,
                Bytes {
                    start: 990,
                    end: 1000,
                },
            ),
            (
                "bytes=-5000",
                1000,
                Bytes {
                    start: 0,
                    end: 1000,
                },
            ),
            (
                "bytes=990-5000",
                1000,
                Bytes {
                    start: 990,
                    end: 1000,
                },
            ),
            ("bytes=1000-", 1000, Unsatisfiable),
            ("bytes=2000-3000", 1000, Unsatisfiable),
            ("bytes=-0", 1000, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=5-4", 1000, Ignore),
            ("bytes=0-1,5-6", 1000, Ignore),
            ("items=0-1", 1000, Ignore),
            ("bytes=a-b", 1000, Ignore),
            ("bytes=+1-2", 1000, Ignore),
            ("bytes=-", 1000, Ignore),
        ];
        for (v, size, want) in cases {
            assert_eq!(parse_range(v, size), want, "{v} of {size}");
        }
    }
}
