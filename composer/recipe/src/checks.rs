//! Syntax checks for single values. Each returns the cleaned value or a
//! message (plus optional help) that the caller positions.

pub(crate) type Check<T> = Result<T, (String, Option<String>)>;

fn fail<T>(message: impl Into<String>, help: Option<&str>) -> Check<T> {
    Err((message.into(), help.map(str::to_owned)))
}

fn all(s: &str, ok: impl Fn(char) -> bool) -> bool {
    s.chars().all(ok)
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Image, layer and reusable-layer names: `[a-z0-9][a-z0-9._-]*`. They end
/// up in file names and cache paths, hence the narrow alphabet.
pub(crate) fn name(what: &str, s: &str) -> Check<()> {
    let mut chars = s.chars();
    match chars.next() {
        Some(c)
            if lower_alnum(c) && all(chars.as_str(), |c| lower_alnum(c) || "._-".contains(c)) =>
        {
            Ok(())
        }
        _ => fail(
            format!("invalid {what} {s:?}"),
            Some(
                "use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
            ),
        ),
    }
}

pub(crate) fn suite(s: &str) -> Check<()> {
    let mut chars = s.chars();
    match chars.next() {
        Some(c)
            if c.is_ascii_alphanumeric()
                && all(chars.as_str(), |c| {
                    c.is_ascii_alphanumeric() || "._-".contains(c)
                }) =>
        {
            Ok(())
        }
        _ => fail(
            format!("invalid suite {s:?}"),
            Some("a Debian suite or codename, e.g. \"bookworm\""),
        ),
    }
}

pub(crate) fn architecture(s: &str) -> Check<()> {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if lower_alnum(c) && all(chars.as_str(), |c| lower_alnum(c) || c == '-') => Ok(()),
        _ => fail(
            format!("invalid architecture {s:?}"),
            Some("a Debian architecture, e.g. \"amd64\" or \"arm64\""),
        ),
    }
}

pub(crate) fn component(s: &str) -> Check<()> {
    let mut chars = s.chars();
    match chars.next() {
        Some(c)
            if lower_alnum(c) && all(chars.as_str(), |c| lower_alnum(c) || "-_/".contains(c)) =>
        {
            Ok(())
        }
        _ => fail(
            format!("invalid archive component {s:?}"),
            Some("e.g. \"main\", \"contrib\", \"non-free-firmware\""),
        ),
    }
}

/// `scheme://rest` without whitespace: mmdebstrap accepts http, https, file,
/// copy, mirror+… so only the shape is checked.
pub(crate) fn mirror(s: &str) -> Check<()> {
    let ok = s.split_once("://").is_some_and(|(scheme, rest)| {
        !scheme.is_empty()
            && all(scheme, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c)
            })
            && !rest.is_empty()
            && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if ok {
        Ok(())
    } else {
        fail(
            format!("invalid mirror URL {s:?}"),
            Some("e.g. \"http://deb.debian.org/debian\""),
        )
    }
}

/// snapshot.debian.org timestamps `YYYYMMDDTHHMMSSZ`; returns the Unix time.
pub(crate) fn snapshot(s: &str) -> Check<i64> {
    let help = Some("snapshot.debian.org form YYYYMMDDTHHMMSSZ, e.g. \"20250520T000000Z\"");
    let b = s.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    if !shape {
        return fail(format!("invalid snapshot {s:?}"), help);
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("digits checked");
    let (y, mo, d, h, mi, se) = (
        num(0..4),
        num(4..6),
        num(6..8),
        num(9..11),
        num(11..13),
        num(13..15),
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if y < 1970
        || !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || se > 59
    {
        return fail(
            format!("invalid snapshot {s:?}: no such date or time"),
            help,
        );
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A Debian package name, optionally `:arch` and (when `allow_version`)
/// `=version`, as apt-get accepts them.
pub(crate) fn package(s: &str, allow_version: bool) -> Check<()> {
    let (rest, version) = match s.split_once('=') {
        Some((r, v)) => (r, Some(v)),
        None => (s, None),
    };
    let (pkg, arch) = match rest.split_once(':') {
        Some((p, a)) => (p, Some(a)),
        None => (rest, None),
    };
    let name_ok = pkg.len() >= 2
        && pkg.starts_with(lower_alnum)
        && all(pkg, |c| lower_alnum(c) || "+.-".contains(c));
    if !name_ok {
        return fail(
            format!("invalid Debian package name {s:?}"),
            Some("package names are lower-case letters, digits, '+', '-' and '.', at least two characters, starting with a letter or digit; optionally followed by :ARCH and =VERSION"),
        );
    }
    if let Some(arch) = arch {
        if architecture(arch).is_err() {
            return fail(
                format!("invalid architecture qualifier in {s:?}"),
                Some("e.g. \"libc6:amd64\""),
            );
        }
    }
    if let Some(v) = version {
        if !allow_version {
            return fail(
                format!("a version is not allowed here: {s:?}"),
                Some("`remove` takes package names only"),
            );
        }
        let ok = v.starts_with(|c: char| c.is_ascii_digit())
            && all(v, |c| c.is_ascii_alphanumeric() || ".+~:-".contains(c));
        if !ok {
            return fail(
                format!("invalid version in {s:?}"),
                Some("Debian versions start with a digit, e.g. \"bash=5.2.15-2+b2\""),
            );
        }
    }
    Ok(())
}

/// RFC 1123 host name: dot-separated labels of letters, digits and '-'.
pub(crate) fn hostname(s: &str) -> Check<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && all(l, |c| c.is_ascii_alphanumeric() || c == '-')
    };
    if s.len() <= 253 && s.split('.').all(label_ok) {
        Ok(())
    } else {
        fail(
            format!("invalid hostname {s:?}"),
            Some("RFC 1123: labels of letters, digits and '-' (not at either end), 1-63 characters each, separated by '.'"),
        )
    }
}

pub(crate) fn tty(s: &str) -> Check<()> {
    let letters = s.strip_prefix("tty").unwrap_or("");
    let digits_at = letters.find(|c: char| c.is_ascii_digit());
    let ok = s.starts_with("tty")
        && digits_at.is_some_and(|i| {
            all(&letters[..i], |c| c.is_ascii_alphabetic())
                && all(&letters[i..], |c| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        fail(
            format!("invalid serial tty {s:?}"),
            Some("e.g. \"ttyS0\", \"ttyAMA0\", \"ttyUSB1\""),
        )
    }
}

pub(crate) const BAUD_RATES: [u32; 8] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

pub(crate) fn baud(n: i64) -> Check<u32> {
    match u32::try_from(n) {
        Ok(b) if BAUD_RATES.contains(&b) => Ok(b),
        _ => fail(
            format!("unsupported baud rate {n}"),
            Some("one of 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600"),
        ),
    }
}

/// `"0644"`, `"644"`, `"4755"`: 3 or 4 octal digits.
pub(crate) fn octal_mode(s: &str) -> Check<u32> {
    if (3..=4).contains(&s.len()) && all(s, |c| ('0'..='7').contains(&c)) {
        Ok(u32::from_str_radix(s, 8).expect("octal digits checked"))
    } else {
        fail(
            format!("invalid mode {s:?}"),
            Some("an octal string of 3 or 4 digits, e.g. \"0644\""),
        )
    }
}

/// A user or group: a numeric id or a name as useradd accepts it.
pub(crate) fn owner(what: &str, s: &str) -> Check<()> {
    let numeric = !s.is_empty() && all(s, |c| c.is_ascii_digit()) && s.parse::<u32>().is_ok();
    let body = s.strip_suffix('$').unwrap_or(s);
    let named = (1..=32).contains(&s.len())
        && body.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && all(body, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c)
        });
    if numeric || named {
        Ok(())
    } else {
        fail(
            format!("invalid {what} {s:?}"),
            Some("a name like \"root\" or \"_apt\", or a numeric id"),
        )
    }
}

pub(crate) fn env_name(s: &str) -> Check<()> {
    let ok = s.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && all(s, |c| {
            c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
        });
    if ok {
        Ok(())
    } else {
        fail(
            format!("invalid environment variable name {s:?}"),
            Some("upper-case letters, digits and '_', not starting with a digit"),
        )
    }
}

/// A path relative to the recipe's (or layer's) folder: lexically it must
/// not be absolute or climb out with `..`. Symlinks are checked by the loader.
pub(crate) fn rel_path(s: &str, base: &str) -> Check<()> {
    if s.is_empty() {
        return fail("empty path", None);
    }
    if s.contains('\0') {
        return fail(format!("invalid path {s:?}: contains a NUL byte"), None);
    }
    if s.starts_with('/') {
        return fail(
            format!("absolute path {s:?} not allowed"),
            Some("paths are relative to the folder of the file that names them"),
        );
    }
    let mut depth: i64 = 0;
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return fail(
                format!("path {s:?} escapes the {base}"),
                Some("inputs must live in that folder or below it"),
            );
        }
    }
    if depth == 0 {
        return fail(
            format!("path {s:?} names the {base} itself"),
            Some("name a file or a sub-folder"),
        );
    }
    Ok(())
}

/// An absolute path inside the image; returned normalized.
pub(crate) fn dest_path(s: &str) -> Check<String> {
    if !s.starts_with('/') {
        return fail(
            format!("destination {s:?} is not absolute"),
            Some("e.g. \"/etc\""),
        );
    }
    if s.contains('\0') {
        return fail(
            format!("invalid destination {s:?}: contains a NUL byte"),
            None,
        );
    }
    let mut parts = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return fail(
                    format!("destination {s:?} contains `..`"),
                    Some("write the path without `..`"),
                )
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages() {
        for (s, ver, ok) in [
            ("openssh-server", true, true),
            ("libc6:amd64", true, true),
            ("bash=5.2.15-2+b2", true, true),
            ("libc6:i386=2.36-9", true, true),
            ("g++", true, true),
            ("a", true, false),
            ("Foo", true, false),
            ("-x", true, false),
            ("nano=1.0", false, false),
            ("bash=x1", true, false),
            ("bash:AMD", true, false),
            ("", true, false),
        ] {
            assert_eq!(package(s, ver).is_ok(), ok, "{s}");
        }
    }

    #[test]
    fn snapshots() {
        for (s, want) in [
            ("20250520T000000Z", Some(1_747_699_200)),
            ("20240101T000000Z", Some(1_704_067_200)),
            ("20240229T235959Z", Some(1_709_251_199)),
            ("20230229T000000Z", None),
            ("20250520T240000Z", None),
            ("2025-05-20", None),
            ("20250520T000000", None),
        ] {
            assert_eq!(snapshot(s).ok(), want, "{s}");
        }
    }

    #[test]
    fn small_syntaxes() {
        for (ok, res) in [
            (true, tty("ttyS0")),
            (true, tty("ttyAMA10")),
            (true, tty("tty1")),
            (false, tty("ttyS")),
            (false, tty("S0")),
            (false, tty("ttyS0x")),
            (true, hostname("node01")),
            (true, hostname("node01.cluster.local")),
            (false, hostname("-node")),
            (false, hostname("node_01")),
            (false, hostname("a..b")),
            (true, owner("owner", "root")),
            (true, owner("owner", "1000")),
            (false, owner("owner", "Root")),
            (true, env_name("CLUSTER_1")),
            (false, env_name("cluster")),
            (false, env_name("1X")),
            (true, rel_path("files/etc", "f")),
            (true, rel_path("./a/../b", "f")),
            (false, rel_path("../x", "f")),
            (false, rel_path("a/../../x", "f")),
            (false, rel_path("/etc", "f")),
            (false, rel_path(".", "f")),
            (true, mirror("http://deb.debian.org/debian")),
            (false, mirror("deb.debian.org")),
        ] {
            assert_eq!(ok, res.is_ok(), "{res:?}");
        }
        assert_eq!(octal_mode("0644").unwrap(), 0o644);
        assert_eq!(octal_mode("4755").unwrap(), 0o4755);
        assert!(octal_mode("0888").is_err());
        assert!(octal_mode("12345").is_err());
        assert_eq!(dest_path("/etc//ssh/./").unwrap(), "/etc/ssh");
        assert_eq!(dest_path("/").unwrap(), "/");
        assert!(dest_path("/etc/../x").is_err());
        assert!(dest_path("etc").is_err());
        assert_eq!(baud(115200).unwrap(), 115200);
        assert!(baud(1234).is_err());
    }
}
