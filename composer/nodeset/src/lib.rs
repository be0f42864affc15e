//! compose-nodeset: ClusterShell-style node sets.
//!
//! `node[01-64]`, `rack[1-2]-node[01-04]`, `node[1-9/2]`, `@compute!node03`:
//! parse them into a [`NodeSet`] (sorted in natural order, deduplicated) and
//! fold sets back into the short form. Pure: no I/O, groups come from a
//! resolver the caller passes. The syntax is in README.md.
//!
//! ```
//! use compose_nodeset::NodeSet;
//! let set: NodeSet = "node[01-04],login1!node03".parse().unwrap();
//! assert_eq!(set.to_vec(), ["login1", "node01", "node02", "node04"]);
//! assert_eq!(set.fold(), "login1,node[01-02,04]");
//! ```

mod error;
mod fold;
mod natural;
mod parse;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

pub use error::{ErrorKind, NodeSetError};
pub use natural::natural_cmp;
pub use parse::{MAX_BYTES, MAX_NODES};

use natural::Name;

/// A set of node names, kept sorted in natural order ("node2" < "node10";
/// "node01" and "node1" are distinct names), deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSet {
    names: BTreeSet<Name>,
}

impl NodeSet {
    /// Parses an expression without groups (`@name` is an error saying
    /// groups need an inventory).
    pub fn parse(expr: &str) -> Result<NodeSet, NodeSetError> {
        parse::parse_expr(expr, None, parse::LIMITS).map(|names| NodeSet { names })
    }

    /// Parses with a group resolver: `@compute` -> `groups("compute")`;
    /// `None` fails with [`ErrorKind::UnknownGroup`]. Members are taken as
    /// names, not parsed as expressions.
    pub fn parse_with(
        expr: &str,
        groups: &dyn Fn(&str) -> Option<Vec<String>>,
    ) -> Result<NodeSet, NodeSetError> {
        parse::parse_expr(expr, Some(groups), parse::LIMITS).map(|names| NodeSet { names })
    }

    /// A set of the given names, taken as they are (not parsed); empty
    /// strings are dropped, as no node has an empty name. Names outside the
    /// node-name alphabet (see [`is_valid_name`]) fold to text that will not
    /// parse back.
    pub fn from_names<I, S>(names: I) -> NodeSet
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names = names
            .into_iter()
            .map(Into::into)
            .filter(|n| !n.is_empty())
            .map(Name)
            .collect();
        NodeSet { names }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(&Name(name.to_string()))
    }

    /// The names in natural order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| n.0.as_str())
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }

    pub fn union(&self, other: &NodeSet) -> NodeSet {
        let names = self.names.union(&other.names).cloned().collect();
        NodeSet { names }
    }

    pub fn difference(&self, other: &NodeSet) -> NodeSet {
        let names = self.names.difference(&other.names).cloned().collect();
        NodeSet { names }
    }

    pub fn intersection(&self, other: &NodeSet) -> NodeSet {
        let names = self.names.intersection(&other.names).cloned().collect();
        NodeSet { names }
    }

    pub fn symmetric_difference(&self, other: &NodeSet) -> NodeSet {
        let names = self
            .names
            .symmetric_difference(&other.names)
            .cloned()
            .collect();
        NodeSet { names }
    }

    pub fn is_subset(&self, other: &NodeSet) -> bool {
        self.names.is_subset(&other.names)
    }

    /// The folded form: "login1,node[01-04,09]". Also what Display prints.
    pub fn fold(&self) -> String {
        fold::fold_names(self.iter())
    }
}

impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fold())
    }
}

impl FromStr for NodeSet {
    type Err = NodeSetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeSet::parse(s)
    }
}

impl<'a> IntoIterator for &'a NodeSet {
    type Item = &'a str;
    type IntoIter = Box<dyn Iterator<Item = &'a str> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// Convenience: expands an expression (no groups) to names in natural order.
pub fn expand(expr: &str) -> Result<Vec<String>, NodeSetError> {
    NodeSet::parse(expr).map(|set| set.to_vec())
}

/// Convenience: folds names (any order, duplicates allowed).
pub fn fold<I, S>(names: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    NodeSet::from_names(names.into_iter().map(|n| n.as_ref().to_string())).fold()
}

/// Whether `name` is a node name the syntax can write: non-empty, ASCII
/// letters, digits, `-`, `_` and `.`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
