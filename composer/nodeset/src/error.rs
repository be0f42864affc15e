//! Parse errors: where (1-based char column), what is wrong, what to write.
//!
//! The message is rendered from the kind plus the expression itself (e.g.
//! which bracket is unbalanced), so callers branch on `kind` and print the
//! Display form: `node[01-]: column 8: range has no end: write a range like
//! node[01-64]`.

use crate::parse::{MAX_BYTES, MAX_NODES};

/// A node set expression that does not parse, or expands too far.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct NodeSetError {
    /// The whole expression as given.
    pub expr: String,
    /// 1-based column, in chars, of the offending character.
    pub column: usize,
    pub kind: ErrorKind,
}

/// What is wrong; callers branch on it (e.g. `UnknownGroup` to list groups).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Nothing but whitespace.
    Empty,
    /// `[` never closed, or `]` without `[`.
    UnbalancedBracket,
    /// `[` inside brackets.
    NestedBracket,
    /// A range with more than one `-`.
    BadRange,
    /// `[-4]`.
    RangeNoStart,
    /// `[1-]`.
    RangeNoEnd,
    /// `[]`, `[1,,2]`, `[1,]`.
    EmptyElement,
    /// `[4-1]`.
    ReversedRange,
    /// `[1-010]`: ends of different widths where one has leading zeros.
    MixedPadding,
    /// `[1-9/0]`, `[1-9/]`, `[5/2]`.
    BadStep,
    /// A number in brackets does not fit in u64.
    Overflow,
    /// The expansion passes the limits (names, bytes, total work).
    TooLarge,
    /// `@name` the resolver does not know.
    UnknownGroup(String),
    /// `@name` given to `parse`, which has no resolver.
    GroupsUnavailable,
    /// `@` not followed by a group name.
    EmptyGroupName,
    /// An operator with nothing before it: `!node1`.
    LeadingOperator,
    /// An operator with nothing after it: `node1,`, `node1,,node2`.
    MissingOperand,
    /// A character that cannot appear here.
    BadChar(char),
}

impl NodeSetError {
    /// `pos` is a byte offset into `expr` (on a char boundary).
    pub(crate) fn at(expr: &str, pos: usize, kind: ErrorKind) -> Self {
        let column = expr.get(..pos).map_or(1, |s| s.chars().count() + 1);
        NodeSetError {
            expr: expr.to_string(),
            column,
            kind,
        }
    }

    /// What is wrong, in a few words.
    pub fn problem(&self) -> String {
        let here = self.char_at_column();
        match &self.kind {
            ErrorKind::Empty => "empty node set".into(),
            ErrorKind::UnbalancedBracket if here == Some(']') => {
                "`]` without a matching `[`".into()
            }
            ErrorKind::UnbalancedBracket => "`[` is never closed".into(),
            ErrorKind::NestedBracket => "`[` inside brackets".into(),
            ErrorKind::BadRange => "range has more than one `-`".into(),
            ErrorKind::RangeNoStart => "range has no start".into(),
            ErrorKind::RangeNoEnd => "range has no end".into(),
            ErrorKind::EmptyElement => "empty element in brackets".into(),
            ErrorKind::ReversedRange => "range goes backwards".into(),
            ErrorKind::MixedPadding => {
                "range ends have different widths and leading zeros, so the padding is ambiguous"
                    .into()
            }
            ErrorKind::BadStep => "bad step".into(),
            ErrorKind::Overflow => "number too large".into(),
            ErrorKind::TooLarge => "node set too large".into(),
            ErrorKind::UnknownGroup(name) => format!("unknown group @{name}"),
            ErrorKind::GroupsUnavailable => "groups need an inventory".into(),
            ErrorKind::EmptyGroupName => "`@` without a group name".into(),
            ErrorKind::LeadingOperator => format!("`{}` has nothing before it", show(here)),
            ErrorKind::MissingOperand => format!("`{}` has nothing after it", show(here)),
            ErrorKind::BadChar(c) if c.is_whitespace() => "unexpected whitespace".into(),
            ErrorKind::BadChar(c) => format!("unexpected `{}`", c.escape_debug()),
        }
    }

    /// What to write instead.
    pub fn hint(&self) -> String {
        let hint = match &self.kind {
            ErrorKind::Empty => "write at least one node name, like node01 or node[01-04]",
            ErrorKind::UnbalancedBracket if self.char_at_column() == Some(']') => {
                "open the range first, like node[01-04]"
            }
            ErrorKind::UnbalancedBracket => "close it with `]`, like node[01-04]",
            ErrorKind::NestedBracket => {
                "brackets do not nest: close the first one, like rack[1-2]-node[01-04]"
            }
            ErrorKind::BadRange => {
                "write START-END, like node[01-64]; several ranges go between commas, like node[01-04,09-12]"
            }
            ErrorKind::RangeNoStart | ErrorKind::RangeNoEnd => "write a range like node[01-64]",
            ErrorKind::EmptyElement => {
                "write numbers or ranges between the commas, like node[1-4,9]"
            }
            ErrorKind::ReversedRange => "write the smaller number first, like node[01-64]",
            ErrorKind::MixedPadding => {
                "give both ends the same width, like node[001-100], or split it, like node[01-99],node100"
            }
            ErrorKind::BadStep => "a step of 1 or more follows a range, like node[1-9/2]",
            ErrorKind::Overflow => "numbers in brackets must be at most 18446744073709551615",
            ErrorKind::TooLarge => {
                return format!(
                    "node sets are limited to {MAX_NODES} names ({} MiB); split it into smaller sets",
                    MAX_BYTES >> 20
                )
            }
            ErrorKind::UnknownGroup(_) => "define the group in the inventory or check its spelling",
            ErrorKind::GroupsUnavailable => {
                "name the nodes instead, like node[01-04], or use a command that loads the inventory"
            }
            ErrorKind::EmptyGroupName => "write a group like @compute",
            ErrorKind::LeadingOperator | ErrorKind::MissingOperand => {
                "put a node set on both sides, like node[01-08]!node03"
            }
            ErrorKind::BadChar(_) if self.inside_brackets() => {
                "brackets hold numbers and ranges, like node[1-4,9] or node[1-9/2]"
            }
            ErrorKind::BadChar('[') => "groups take no brackets: write @compute or node[01-04]",
            ErrorKind::BadChar('@') => "a group starts an element: write node01,@compute",
            ErrorKind::BadChar(_) => {
                "names use letters, digits, `-`, `_` and `.`; operators are `,` `!` `&` `^`"
            }
        };
        hint.to_string()
    }

    fn render(&self) -> String {
        format!(
            "{}: column {}: {}: {}",
            self.excerpt(),
            self.column,
            self.problem(),
            self.hint()
        )
    }

    fn char_at_column(&self) -> Option<char> {
        self.expr.chars().nth(self.column.checked_sub(1)?)
    }

    /// Whether the column is inside a `[...]` (for the right hint).
    fn inside_brackets(&self) -> bool {
        let mut depth = false;
        for c in self.expr.chars().take(self.column.saturating_sub(1)) {
            match c {
                '[' => depth = true,
                ']' => depth = false,
                _ => {}
            }
        }
        depth
    }

    /// The expression as printed: control characters blanked (so the message
    /// stays on one line and columns still line up) and, when long, cut to
    /// a window around the column.
    fn excerpt(&self) -> String {
        const WINDOW: usize = 60;
        let count = self.expr.chars().count();
        let (skip, take) = if count <= 2 * WINDOW {
            (0, count)
        } else {
            (self.column.saturating_sub(WINDOW), 2 * WINDOW)
        };
        let mut out: String = self
            .expr
            .chars()
            .skip(skip)
            .take(take)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if skip > 0 {
            out.insert(0, '…');
        }
        if skip + take < count {
            out.push('…');
        }
        out
    }
}

fn show(c: Option<char>) -> char {
    c.unwrap_or('?')
}
