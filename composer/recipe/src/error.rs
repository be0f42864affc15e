//! Diagnostics: one problem in a recipe or layer file, with its position.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a recipe (or in a reusable layer it uses).
///
/// `line`/`column` are 1-based; `column` counts characters, not bytes, so it
/// matches what editors show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Where in the recipe's structure, e.g. `layer[3].kind` or `base.suite`
    /// (layer and step indices are 1-based, as a reader counts them).
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
    /// Extra context, e.g. `used from recipes/x.toml:12:1` for a problem in a
    /// reusable layer file. Added to the requested shape so that the file and
    /// line of the problem stay the layer's own.
    pub note: Option<String>,
}

impl Diagnostic {
    /// A diagnostic about the whole file (no position, no key).
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
            help: None,
            note: None,
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_position(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        if let Some(note) = &self.note {
            write!(f, "\n  note: {note}")?;
        }
        Ok(())
    }
}

/// Every problem found; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecipeErrors(pub Vec<Diagnostic>);

impl fmt::Display for RecipeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl From<Diagnostic> for RecipeErrors {
    fn from(d: Diagnostic) -> Self {
        RecipeErrors(vec![d])
    }
}

/// A file's text plus its display path, turning toml byte spans into
/// line/column diagnostics.
#[derive(Debug, Clone)]
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based (line, column) of a byte offset; offsets past the end (EOF
    /// errors) land just after the last character.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub fn diag(
        &self,
        span: Option<Range<usize>>,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let mut d = Diagnostic::new(self.path, message);
        if let Some(span) = span {
            let (line, column) = self.position(span.start);
            d = d.with_position(line, column);
        }
        d.key = key.map(str::to_owned);
        d
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate, if it is close enough to be a plausible typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.chars().count().max(3) / 3).max(1) + 1 && *d < c.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `expected one of a, b, c (did you mean "b"?)`
pub(crate) fn one_of_help(word: &str, candidates: &[&str]) -> String {
    let mut help = if candidates.is_empty() {
        "nothing is allowed here".to_owned()
    } else {
        format!("expected one of {}", candidates.join(", "))
    };
    if let Some(c) = closest(word, candidates) {
        help.push_str(&format!(" (did you mean \"{c}\"?)"));
    }
    help
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let src = Source {
            path: Path::new("x.toml"),
            text: "ab\ncdé\nf",
        };
        for (offset, want) in [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (7, (2, 4)),
            (8, (3, 1)),
            (99, (3, 2)),
        ] {
            assert_eq!(src.position(offset), want, "offset {offset}");
        }
    }

    #[test]
    fn suggestions() {
        let kinds = ["packages", "serial-console", "hostname", "files", "script"];
        for (word, want) in [
            ("pakages", Some("packages")),
            ("file", Some("files")),
            ("serial_console", Some("serial-console")),
            ("zzz", None),
            ("x", None),
        ] {
            assert_eq!(closest(word, &kinds), want, "{word}");
        }
    }
}
