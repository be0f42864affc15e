//! Expression -> set of names.
//!
//! ```text
//! expr     := operand (sep operand)*
//! sep      := ws* op ws*  |  ws+          (bare whitespace means union)
//! op       := ',' union | '!' difference | '&' intersection | '^' symmetric difference
//! operand  := '@' group  |  (text | '[' element (',' element)* ']')+
//! element  := N | N '-' M | N '-' M '/' STEP
//! ```
//!
//! Operators apply left to right with no precedence, as in ClusterShell.
//! Input is untrusted (command lines, files): every expansion is sized with
//! checked arithmetic BEFORE it is built, against a cap on names and bytes
//! per set and on the total work of one expression, so no input allocates
//! without bound or panics. The working set is a BTreeSet so each operator
//! costs O(operand × log set): "n1,n2,...,n500000" stays linear-ish.

use std::collections::BTreeSet;

use crate::error::{ErrorKind, NodeSetError};
use crate::natural::{digits_value, has_leading_zero, natural_cmp, Name};

/// Most names one set may hold (a result, or a single operand).
pub const MAX_NODES: usize = 1_000_000;
/// Most bytes of names one operand may expand to.
pub const MAX_BYTES: usize = 64 << 20;

/// The caps one parse runs under (smaller in tests, to stay fast).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Names in one operand or one result.
    pub nodes: usize,
    /// Bytes of names in one operand.
    pub bytes: usize,
    /// Names (and bytes) generated over one whole expression, operands and
    /// group members together: bounds the time a hostile expression takes.
    pub work_nodes: usize,
    pub work_bytes: usize,
}

pub(crate) const LIMITS: Limits = Limits {
    nodes: MAX_NODES,
    bytes: MAX_BYTES,
    work_nodes: 8 * MAX_NODES,
    work_bytes: 4 * MAX_BYTES,
};

pub(crate) type Resolver<'a> = &'a dyn Fn(&str) -> Option<Vec<String>>;

#[derive(Clone, Copy)]
enum Op {
    Union,
    Difference,
    Intersection,
    Xor,
}

fn op_of(b: u8) -> Option<Op> {
    match b {
        b',' => Some(Op::Union),
        b'!' => Some(Op::Difference),
        b'&' => Some(Op::Intersection),
        b'^' => Some(Op::Xor),
        _ => None,
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Parses and evaluates `expr`; `groups` is None when no inventory is at hand.
pub(crate) fn parse_expr(
    expr: &str,
    groups: Option<Resolver<'_>>,
    limits: Limits,
) -> Result<BTreeSet<Name>, NodeSetError> {
    Parser {
        expr,
        bytes: expr.as_bytes(),
        pos: 0,
        groups,
        limits,
        work_nodes: 0,
        work_bytes: 0,
    }
    .expression()
}

struct Parser<'a> {
    expr: &'a str,
    bytes: &'a [u8],
    /// Byte offset; only ever advanced over ASCII, so always a char boundary.
    pos: usize,
    groups: Option<Resolver<'a>>,
    limits: Limits,
    work_nodes: usize,
    work_bytes: usize,
}

/// The numbers of a bracket being parsed, and their size so far.
#[derive(Default)]
struct Nums {
    list: Vec<String>,
    bytes: u64,
}

/// One piece of a pattern operand.
enum Segment<'a> {
    Text(&'a str),
    /// The distinct numbers of one bracket, already formatted.
    Numbers(Vec<String>),
}

impl<'a> Parser<'a> {
    fn err(&self, pos: usize, kind: ErrorKind) -> NodeSetError {
        NodeSetError::at(self.expr, pos, kind)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The error for the (possibly non-ASCII) character at `pos`.
    fn bad_char(&self, pos: usize) -> NodeSetError {
        let c = self.expr[pos..].chars().next().unwrap_or('?');
        self.err(pos, ErrorKind::BadChar(c))
    }

    /// Skips whitespace, saying whether there was any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn expression(mut self) -> Result<BTreeSet<Name>, NodeSetError> {
        self.skip_ws();
        match self.peek() {
            None => return Err(self.err(0, ErrorKind::Empty)),
            Some(b) if op_of(b).is_some() => {
                return Err(self.err(self.pos, ErrorKind::LeadingOperator))
            }
            Some(_) => {}
        }
        let mut acc = self.operand()?;
        loop {
            let spaced = self.skip_ws();
            let Some(b) = self.peek() else { break };
            let op_pos = self.pos;
            let op = match op_of(b) {
                Some(op) => {
                    self.pos += 1;
                    self.skip_ws();
                    match self.peek() {
                        Some(b) if op_of(b).is_none() => {}
                        _ => return Err(self.err(op_pos, ErrorKind::MissingOperand)),
                    }
                    op
                }
                None if spaced => Op::Union,
                None if b == b']' => return Err(self.err(op_pos, ErrorKind::UnbalancedBracket)),
                None => return Err(self.bad_char(op_pos)),
            };
            let operand = self.operand()?;
            acc = apply(acc, op, operand);
            if acc.len() > self.limits.nodes {
                return Err(self.err(op_pos, ErrorKind::TooLarge));
            }
        }
        Ok(acc)
    }

    /// Charges `nodes` names of `bytes` total to the expression's budget.
    fn charge(&mut self, pos: usize, nodes: usize, bytes: usize) -> Result<(), NodeSetError> {
        self.work_nodes = self.work_nodes.saturating_add(nodes);
        self.work_bytes = self.work_bytes.saturating_add(bytes);
        let l = self.limits;
        if nodes > l.nodes
            || bytes > l.bytes
            || self.work_nodes > l.work_nodes
            || self.work_bytes > l.work_bytes
        {
            return Err(self.err(pos, ErrorKind::TooLarge));
        }
        Ok(())
    }

    fn operand(&mut self) -> Result<BTreeSet<Name>, NodeSetError> {
        if self.peek() == Some(b'@') {
            self.group()
        } else {
            self.pattern()
        }
    }

    fn group(&mut self) -> Result<BTreeSet<Name>, NodeSetError> {
        let at = self.pos;
        self.pos += 1;
        let start = self.pos;
        while self.peek().is_some_and(is_name_byte) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err(at, ErrorKind::EmptyGroupName));
        }
        let name = &self.expr[start..self.pos];
        let Some(resolve) = self.groups else {
            return Err(self.err(at, ErrorKind::GroupsUnavailable));
        };
        let Some(members) = resolve(name) else {
            return Err(self.err(at, ErrorKind::UnknownGroup(name.to_string())));
        };
        let bytes = members.iter().map(String::len).sum();
        self.charge(at, members.len(), bytes)?;
        // An empty string is never a node; members are taken as names, not
        // parsed, since the inventory has already validated them.
        Ok(members
            .into_iter()
            .filter(|m| !m.is_empty())
            .map(Name)
            .collect())
    }

    fn pattern(&mut self) -> Result<BTreeSet<Name>, NodeSetError> {
        let start = self.pos;
        let mut segments = Vec::new();
        loop {
            let text_start = self.pos;
            while self.peek().is_some_and(is_name_byte) {
                self.pos += 1;
            }
            if self.pos > text_start {
                segments.push(Segment::Text(&self.expr[text_start..self.pos]));
            }
            if self.peek() != Some(b'[') {
                break;
            }
            segments.push(Segment::Numbers(self.bracket()?));
        }
        if segments.is_empty() {
            return Err(match self.peek() {
                Some(b']') => self.err(self.pos, ErrorKind::UnbalancedBracket),
                _ => self.bad_char(self.pos),
            });
        }
        self.expand(start, &segments)
    }

    /// Builds the cartesian product of the segments, after sizing it.
    fn expand(
        &mut self,
        start: usize,
        segments: &[Segment<'_>],
    ) -> Result<BTreeSet<Name>, NodeSetError> {
        let mut count = 1usize;
        let mut name_len = 0usize;
        for seg in segments {
            match seg {
                Segment::Text(t) => name_len = name_len.saturating_add(t.len()),
                Segment::Numbers(nums) => {
                    count = count.saturating_mul(nums.len());
                    let widest = nums.iter().map(String::len).max().unwrap_or(0);
                    name_len = name_len.saturating_add(widest);
                }
            }
        }
        self.charge(start, count, count.saturating_mul(name_len))?;
        let mut names = vec![String::new()];
        for seg in segments {
            match seg {
                Segment::Text(t) => names.iter_mut().for_each(|n| n.push_str(t)),
                Segment::Numbers(nums) => {
                    names = names
                        .iter()
                        .flat_map(|n| nums.iter().map(move |num| format!("{n}{num}")))
                        .collect();
                }
            }
        }
        Ok(names.into_iter().map(Name).collect())
    }

    /// Parses `[...]` at `self.pos`; returns its distinct numbers, formatted.
    fn bracket(&mut self) -> Result<Vec<String>, NodeSetError> {
        let open = self.pos;
        self.pos += 1;
        let mut nums = Nums::default();
        loop {
            self.element(open, &mut nums)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.inside_error(open)),
            }
        }
        let mut nums = nums.list;
        nums.sort_by(|a, b| natural_cmp(a, b));
        nums.dedup();
        Ok(nums)
    }

    /// The error for an unexpected byte inside brackets (or their end).
    fn inside_error(&self, open: usize) -> NodeSetError {
        match self.peek() {
            None => self.err(open, ErrorKind::UnbalancedBracket),
            Some(b'[') => self.err(self.pos, ErrorKind::NestedBracket),
            Some(b',' | b']') => self.err(self.pos, ErrorKind::EmptyElement),
            Some(b'-') => self.err(self.pos, ErrorKind::RangeNoStart),
            Some(_) => self.bad_char(self.pos),
        }
    }

    /// Reads a run of digits: (text, value).
    fn number(&mut self) -> Result<Option<(&'a str, u64)>, NodeSetError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start {
            return Ok(None);
        }
        let text = &self.expr[start..self.pos];
        match digits_value(text) {
            Some(v) => Ok(Some((text, v))),
            None => Err(self.err(start, ErrorKind::Overflow)),
        }
    }

    /// Parses one element (N, N-M or N-M/S) and appends its numbers.
    fn element(&mut self, open: usize, nums: &mut Nums) -> Result<(), NodeSetError> {
        let lo_pos = self.pos;
        let Some((lo_text, lo)) = self.number()? else {
            return Err(self.inside_error(open));
        };
        if self.peek() != Some(b'-') {
            if self.peek() == Some(b'/') {
                return Err(self.err(self.pos, ErrorKind::BadStep));
            }
            return self.push(open, nums, 1, lo_text.len() as u64, || {
                std::iter::once(lo_text.to_string())
            });
        }
        let dash = self.pos;
        self.pos += 1;
        let Some((hi_text, hi)) = self.number()? else {
            return Err(match self.peek() {
                Some(b'-') => self.err(self.pos, ErrorKind::BadRange),
                Some(b',' | b']' | b'/') | None => self.err(dash, ErrorKind::RangeNoEnd),
                Some(_) => self.inside_error(open),
            });
        };
        if self.peek() == Some(b'-') {
            return Err(self.err(self.pos, ErrorKind::BadRange));
        }
        let step = self.step()?;
        let padded = has_leading_zero(lo_text) || has_leading_zero(hi_text);
        if padded && lo_text.len() != hi_text.len() {
            return Err(self.err(lo_pos, ErrorKind::MixedPadding));
        }
        if lo > hi {
            return Err(self.err(lo_pos, ErrorKind::ReversedRange));
        }
        let width = if padded { lo_text.len() } else { 0 };
        // Saturating: [0-18446744073709551615] has one more name than u64 holds.
        let count = ((hi - lo) / step).saturating_add(1);
        self.push(open, nums, count, hi_text.len() as u64, || {
            (0..count).map(move |i| format!("{:0width$}", lo + i * step))
        })
    }

    /// Parses an optional `/STEP` after a range.
    fn step(&mut self) -> Result<u64, NodeSetError> {
        if self.peek() != Some(b'/') {
            return Ok(1);
        }
        let slash = self.pos;
        self.pos += 1;
        match self.number()? {
            Some((_, step)) if step > 0 => Ok(step),
            _ => Err(self.err(slash, ErrorKind::BadStep)),
        }
    }

    /// Appends `count` numbers of at most `width` digits, after checking
    /// the bracket as a whole stays within the caps (so "[1-9999,1-9999,...]"
    /// or a range of 100 000-digit numbers is refused before it is built).
    fn push<I: Iterator<Item = String>>(
        &self,
        open: usize,
        nums: &mut Nums,
        count: u64,
        width: u64,
        values: impl FnOnce() -> I,
    ) -> Result<(), NodeSetError> {
        let total = (nums.list.len() as u64).saturating_add(count);
        let bytes = nums.bytes.saturating_add(count.saturating_mul(width));
        if total > self.limits.nodes as u64 || bytes > self.limits.bytes as u64 {
            return Err(self.err(open, ErrorKind::TooLarge));
        }
        nums.bytes = bytes;
        nums.list.extend(values());
        Ok(())
    }
}

/// Applies one operator. A small `b` is applied element by element
/// (O(|b| log |a|), so "n1,n2,...,n500000" stays fast); a large one by a
/// linear merge of the two sorted sets.
fn apply(mut a: BTreeSet<Name>, op: Op, mut b: BTreeSet<Name>) -> BTreeSet<Name> {
    let small = b.len() < a.len() / 16;
    match op {
        Op::Union if small => {
            a.extend(b);
            a
        }
        Op::Union => {
            a.append(&mut b);
            a
        }
        Op::Difference if small => {
            for n in &b {
                a.remove(n);
            }
            a
        }
        Op::Difference => merge_filter(a, &b, false),
        // The result is within b: looking each of b up in a is the cheap way
        // when b is small, the merge otherwise.
        Op::Intersection if small => b.into_iter().filter(|n| a.contains(n)).collect(),
        Op::Intersection => merge_filter(a, &b, true),
        Op::Xor if small => {
            for n in b {
                if !a.remove(&n) {
                    a.insert(n);
                }
            }
            a
        }
        Op::Xor => {
            let only_b: Vec<Name> = b.difference(&a).cloned().collect();
            let mut out = merge_filter(a, &b, false);
            out.extend(only_b);
            out
        }
    }
}

/// The names of `a` that are (`keep_common`) or are not in `b`, in one pass
/// over both sorted sets.
fn merge_filter(a: BTreeSet<Name>, b: &BTreeSet<Name>, keep_common: bool) -> BTreeSet<Name> {
    let mut others = b.iter().peekable();
    a.into_iter()
        .filter(|n| {
            while others.next_if(|o| *o < n).is_some() {}
            (others.peek() == Some(&n)) == keep_common
        })
        .collect()
}
