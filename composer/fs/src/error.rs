//! The one error type of this crate: an io error with the operation that
//! failed and the path it failed on, so a message never reads just
//! "No such file or directory".

use std::path::{Path, PathBuf};

/// A filesystem operation failed: `{op} {path}: {source}`, e.g.
/// "replacing /srv/compose/images/hpc/current: No space left on device".
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct Error {
    /// What was being done, lowercase ("creating", "syncing directory").
    pub op: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl Error {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error {
            op,
            path: path.into(),
            source,
        }
    }

    /// The path the operation failed on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The io error's kind, for callers that branch on it (NotFound...).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

/// Adds `.at(op, path)` to io and nix results: the error then names both.
pub trait IoContext<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, Error>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, Error> {
        self.map_err(|e| Error::new(op, path, e))
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T, Error> {
        self.map_err(|e| Error::new(op, path, std::io::Error::from(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_op_and_path() {
        let e: Result<(), _> = std::fs::read("/nonexistent/compose-fs")
            .map(|_| ())
            .at("reading", "/nonexistent/compose-fs");
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.starts_with("reading /nonexistent/compose-fs: "),
            "{msg}"
        );
    }
}
