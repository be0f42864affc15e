//! Names -> the shortest-ish expression: "rack[1-2]-node[01-04],login1".
//!
//! Each name splits into a template (its text) and dimensions (its runs of
//! digits; a run too large for u64 stays text, since brackets could not hold
//! it). Names sharing a template are folded one dimension at a time, last
//! first: items that agree on every other dimension merge their values for
//! this one. Each merge keeps "item = product of its dimension sets", so the
//! result expands to exactly the input. It is greedy, not minimal.
//!
//! Padding: a value with leading zeros ("08") is its own width class; a value
//! without ("10") joins the class of its length when one exists, so
//! 08,09,10 fold to [08-10] and re-expand to the same strings.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::natural::{digits_value, has_leading_zero, natural_cmp, NatRef};

/// One folded product: texts interleave with dimension sets. Each set is a
/// Vec kept sorted (natural order) and deduplicated: cheaper than a BTreeSet
/// to build from the already-sorted names, and hashable.
type Item<'a> = Vec<Vec<NatRef<'a>>>;

/// Folds names (any order, duplicates allowed) into one expression.
pub(crate) fn fold_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut plain: Vec<String> = Vec::new();
    let mut by_template: HashMap<Vec<&'a str>, Vec<Item<'a>>> = HashMap::new();
    for name in names {
        let (texts, dims) = split(name);
        if dims.is_empty() {
            plain.push(name.to_string());
            continue;
        }
        let item = dims.into_iter().map(|d| vec![d]).collect();
        by_template.entry(texts).or_default().push(item);
    }
    // (first name, rendering): sorted on the first name for natural order.
    let mut out: Vec<(String, String)> = plain.into_iter().map(|n| (n.clone(), n)).collect();
    for (texts, items) in by_template {
        for item in merge_all(items) {
            out.push(render_item(&texts, &item));
        }
    }
    out.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    let parts: Vec<String> = out.into_iter().map(|(_, r)| r).collect();
    parts.join(",")
}

/// Splits "rack2-node01" into (["rack", "-node", ""], ["2", "01"]).
fn split(name: &str) -> (Vec<&str>, Vec<NatRef<'_>>) {
    let bytes = name.as_bytes();
    let (mut texts, mut dims) = (Vec::new(), Vec::new());
    let (mut text_start, mut i) = (0, 0);
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let run_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &name[run_start..i];
        if digits_value(run).is_some() {
            texts.push(&name[text_start..run_start]);
            dims.push(NatRef(run));
            text_start = i;
        }
    }
    texts.push(&name[text_start..]);
    (texts, dims)
}

/// Merges items along each dimension, last to first.
fn merge_all(mut items: Vec<Item<'_>>) -> Vec<Item<'_>> {
    let dims = items.first().map_or(0, Vec::len);
    for d in (0..dims).rev() {
        // Key: the item with dimension d emptied, i.e. "all other dimensions".
        let mut groups: HashMap<Item<'_>, Vec<NatRef<'_>>> = HashMap::new();
        for mut item in items {
            let values = std::mem::take(&mut item[d]);
            groups.entry(item).or_default().extend(values);
        }
        items = groups
            .into_iter()
            .map(|(mut item, mut values)| {
                // Usually sorted already (names arrive in natural order),
                // which the sort detects in one pass.
                values.sort();
                values.dedup();
                item[d] = values;
                item
            })
            .collect();
    }
    items
}

/// Renders one item; also returns its first name (for ordering).
fn render_item(texts: &[&str], item: &Item<'_>) -> (String, String) {
    let (mut first, mut shown) = (String::new(), String::new());
    for (i, text) in texts.iter().enumerate() {
        first.push_str(text);
        shown.push_str(text);
        if let Some(values) = item.get(i) {
            first.push_str(values.first().map_or("", |v| v.0));
            shown.push_str(&render_dim(values));
        }
    }
    (first, shown)
}

/// "7" for one value, else "[01-04,09,100-102]".
fn render_dim(values: &[NatRef<'_>]) -> String {
    if let [only] = values {
        return only.0.to_string();
    }
    let padded: BTreeSet<usize> = values
        .iter()
        .filter(|v| has_leading_zero(v.0))
        .map(|v| v.0.len())
        .collect();
    // Width class -> values in it (0: no padding). Iterating digit strings
    // in natural order yields each class sorted by value.
    let mut classes: BTreeMap<usize, Vec<(u64, &str)>> = BTreeMap::new();
    for v in values {
        let len = v.0.len();
        let class = if has_leading_zero(v.0) || padded.contains(&len) {
            len
        } else {
            0
        };
        let value = digits_value(v.0).unwrap_or(0); // split() kept only u64 runs
        classes.entry(class).or_default().push((value, v.0));
    }
    let mut elements: Vec<(&str, String)> = Vec::new();
    for class in classes.values() {
        let mut i = 0;
        while i < class.len() {
            let mut j = i;
            while j + 1 < class.len() && class[j].0.checked_add(1) == Some(class[j + 1].0) {
                j += 1;
            }
            let (lo, hi) = (class[i].1, class[j].1);
            let text = if i == j {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            };
            elements.push((lo, text));
            i = j + 1;
        }
    }
    elements.sort_by(|a, b| natural_cmp(a.0, b.0));
    let texts: Vec<String> = elements.into_iter().map(|(_, t)| t).collect();
    format!("[{}]", texts.join(","))
}
