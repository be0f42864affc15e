//! The request target as a confined relative path: pure, no I/O.
//!
//! Percent-decoding happens exactly once, here, and strictly: a `%` not
//! followed by two hex digits, bytes that are not UTF-8, a decoded NUL,
//! an encoded `/` (`%2F`) or a backslash are refused rather than repaired,
//! so no later layer can see a second, different reading of the same URL.
//! `.` and empty components are dropped; `..` is refused before the file
//! system is touched (the kernel's RESOLVE_BENEATH is the second line).

/// Why a request target is not a path we serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("bad percent-encoding")]
    BadEscape,
    #[error("path is not UTF-8")]
    NotUtf8,
    #[error("NUL in path")]
    Nul,
    #[error("encoded '/' or a backslash in path")]
    EncodedSlash,
    #[error("'..' in path")]
    DotDot,
    #[error("path does not start with '/'")]
    NotAbsolute,
}

/// A decoded request path: components, none empty, `.`, `..`, or holding
/// `/`, NUL or `\`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath(Vec<String>);

impl RelPath {
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The components joined with `/` (no leading slash); "" for the root.
    pub fn as_string(&self) -> String {
        self.0.join("/")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How long a response may be cached, decided from the path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheClass {
    /// `images/<img>/gen/<N>/...`: a generation is never rewritten.
    Immutable,
    /// Everything else in the tree (`pxelinux.cfg/...`, `images/<img>/current/...`,
    /// the boot loaders): revalidate every time, the ETag makes it cheap.
    Revalidate,
    /// A per-node file: revalidate, and no shared cache may keep it.
    Private,
}

impl CacheClass {
    pub fn header(self) -> &'static str {
        match self {
            CacheClass::Immutable => "public, max-age=31536000, immutable",
            CacheClass::Revalidate => "no-cache",
            CacheClass::Private => "private, no-cache",
        }
    }

    /// The class of a path in the public tree.
    pub fn of(path: &RelPath) -> CacheClass {
        match path.components() {
            [images, _img, gen, n, _, ..]
                if images == "images"
                    && gen == "gen"
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit()) =>
            {
                CacheClass::Immutable
            }
            _ => CacheClass::Revalidate,
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one component; `/` never appears in `raw` (we split first).
fn decode_component(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    // Each pass consumes one or three input bytes.
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex);
            let lo = bytes.get(i + 2).copied().and_then(hex);
            match (hi, lo) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    match out.iter().find(|&&b| b == 0 || b == b'/' || b == b'\\') {
        Some(0) => return Err(PathError::Nul),
        Some(_) => return Err(PathError::EncodedSlash),
        None => {}
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
}

/// Parses the path part of a request target (no query) into a [`RelPath`].
pub fn parse_path(raw: &str) -> Result<RelPath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out = Vec::new();
    for comp in rest.split('/') {
        let comp = decode_component(comp)?;
        match comp.as_str() {
            "" | "." => {}
            ".." => return Err(PathError::DotDot),
            _ => out.push(comp),
        }
    }
    Ok(RelPath(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("/pxelinux.0", "pxelinux.0"),
            ("/pxelinux.cfg//./default", "pxelinux.cfg/default"),
            ("/images/a%20b/gen/1/vmlinuz", "images/a b/gen/1/vmlinuz"),
            ("/a..b", "a..b"),
            ("/%C3%A9", "é"),
            ("/", ""),
        ];
        for (input, want) in ok {
            assert_eq!(parse_path(input).unwrap().as_string(), want, "{input}");
        }
        let bad = [
            ("/../etc/passwd", PathError::DotDot),
            ("/a/%2e%2e/b", PathError::DotDot),
            ("/a/%2E%2e", PathError::DotDot),
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%5Cb", PathError::EncodedSlash),
            ("/a\\b", PathError::EncodedSlash),
            ("/a%00b", PathError::Nul),
            ("/a%", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/%ff", PathError::NotUtf8),
            ("a", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
        ];
        for (input, want) in bad {
            assert_eq!(parse_path(input).unwrap_err(), want, "{input}");
        }
    }

    #[test]
    fn cache_classes() {
        let class = |p: &str| CacheClass::of(&parse_path(p).unwrap());
        assert_eq!(class("/images/x/gen/12/vmlinuz"), CacheClass::Immutable);
        assert_eq!(class("/images/x/gen/12/a/b"), CacheClass::Immutable);
        assert_eq!(class("/images/x/current/vmlinuz"), CacheClass::Revalidate);
        assert_eq!(class("/images/x/gen/1a/vmlinuz"), CacheClass::Revalidate);
        assert_eq!(class("/images/x/gen/12"), CacheClass::Revalidate);
        assert_eq!(class("/pxelinux.cfg/default"), CacheClass::Revalidate);
        assert_eq!(class("/pxelinux.0"), CacheClass::Revalidate);
    }

    proptest! {
        #[test]
        fn decoder_never_yields_dotdot(s in "/[a-zA-Z0-9%./\\\\]{0,40}") {
            if let Ok(p) = parse_path(&s) {
                for c in p.components() {
                    prop_assert!(c != ".." && c != "." && !c.is_empty());
                    prop_assert!(!c.contains('/') && !c.contains('\0') && !c.contains('\\'));
                }
            }
        }

        #[test]
        fn decoder_never_panics(s in "\\PC{0,60}") {
            let _ = parse_path(&s);
        }

        #[test]
        fn escapes_round_trip(name in "[a-z. ]{1,12}") {
            let enc: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
            match parse_path(&format!("/{enc}")) {
                Ok(p) if name != "." => prop_assert_eq!(p.as_string(), name),
                Ok(p) => prop_assert!(p.is_empty()),
                Err(e) => prop_assert!(name == ".." && e == PathError::DotDot),
            }
        }
    }
}
