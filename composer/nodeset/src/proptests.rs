//! Property tests: fold and expand are inverses, and no input panics.

use proptest::prelude::*;

use super::*;

/// A number formatted with a random padding (0: none).
fn number() -> impl Strategy<Value = String> {
    (0u64..40, 0usize..4).prop_map(|(v, width)| format!("{v:0width$}"))
}

/// A name: text and numbers interleaved, up to 2 dimensions. Texts come
/// from a small pool (plus the odd random one) so that many names share a
/// template and really fold together.
fn name() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        4 => prop::sample::select(vec!["", "n", "node", "-", "."]).prop_map(String::from),
        1 => "[a-c._-]{0,3}",
    ];
    (
        text.clone(),
        prop::collection::vec((number(), text), 0..3),
        prop::sample::select(vec!["", "x", "-eth"]),
    )
        .prop_map(|(head, parts, tail)| {
            let mut name = head;
            for (num, text) in parts {
                name.push_str(&num);
                name.push_str(&text);
            }
            name.push_str(tail);
            name
        })
        .prop_filter("a name is not empty", |n| !n.is_empty())
}

/// One bracket element, valid by construction: (text, its numbers).
fn element() -> impl Strategy<Value = String> {
    (0u64..30, 0u64..12, 1u64..4, 0usize..4, any::<bool>()).prop_map(
        |(lo, len, step, width, stepped)| {
            let hi = lo + len;
            // A padded range writes both ends with the same width.
            let width = if width == 0 {
                0
            } else {
                width.max(hi.to_string().len())
            };
            match (len, stepped) {
                (0, _) => format!("{lo:0width$}"),
                (_, false) => format!("{lo:0width$}-{hi:0width$}"),
                (_, true) => format!("{lo:0width$}-{hi:0width$}/{step}"),
            }
        },
    )
}

fn bracket() -> impl Strategy<Value = String> {
    prop::collection::vec(element(), 1..4).prop_map(|e| format!("[{}]", e.join(",")))
}

fn operand() -> impl Strategy<Value = String> {
    (
        "[a-c]{1,2}",
        prop::option::of(bracket()),
        "[-.]?[a-c]?",
        prop::option::of(bracket()),
    )
        .prop_map(|(head, b1, mid, b2)| {
            format!(
                "{head}{}{mid}{}",
                b1.unwrap_or_default(),
                b2.unwrap_or_default()
            )
        })
}

fn expression() -> impl Strategy<Value = String> {
    let sep = prop::sample::select(vec![",", "!", "&", "^", " , ", " ! ", " "]);
    (operand(), prop::collection::vec((sep, operand()), 0..4)).prop_map(|(first, rest)| {
        let mut expr = first;
        for (sep, operand) in rest {
            expr.push_str(sep);
            expr.push_str(&operand);
        }
        expr
    })
}

fn small_limits() -> parse::Limits {
    parse::Limits {
        nodes: 2000,
        bytes: 64 << 10,
        work_nodes: 8000,
        work_bytes: 256 << 10,
    }
}

fn resolver(name: &str) -> Option<Vec<String>> {
    (name.len() < 3).then(|| vec![format!("{name}1"), format!("{name}2")])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn expand_of_fold_gives_the_sorted_names(names in prop::collection::vec(name(), 0..40)) {
        let mut want = names.clone();
        want.sort_by(|a, b| natural_cmp(a, b));
        want.dedup();
        let folded = fold(&names);
        let got = if want.is_empty() { Vec::new() } else { expand(&folded).map_err(|e| TestCaseError::fail(e.to_string()))? };
        prop_assert_eq!(got, want, "folded: {}", folded);
    }

    #[test]
    fn fold_of_expand_expands_to_the_same_set(expr in expression()) {
        let set = NodeSet::parse(&expr).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let folded = set.fold();
        let again = if set.is_empty() { NodeSet::default() } else {
            NodeSet::parse(&folded).map_err(|e| TestCaseError::fail(format!("{folded}: {e}")))?
        };
        prop_assert_eq!(&again, &set, "folded: {}", folded);
        // Folding is canonical: the same set always folds the same way.
        prop_assert_eq!(again.fold(), folded);
    }

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        let _ = NodeSet::parse(&s);
        let _ = NodeSet::parse_with(&s, &resolver);
    }

    /// Strings over the syntax's own alphabet reach deep into the parser;
    /// whatever parses must fold back to itself.
    #[test]
    fn syntax_soup_never_panics_and_round_trips(s in "[a-b0-9\\[\\],!&^@ /.-]{0,30}") {
        let parsed = parse::parse_expr(&s, Some(&resolver), small_limits());
        match parsed {
            Ok(names) => {
                let set = NodeSet { names };
                if !set.is_empty() {
                    prop_assert_eq!(NodeSet::parse(&set.fold()).ok(), Some(set));
                }
            }
            Err(e) => {
                prop_assert!(e.column >= 1 && e.column <= s.chars().count().max(1), "{}", e);
                let column = format!("column {}", e.column);
                prop_assert!(e.to_string().contains(&column), "{}", e);
            }
        }
    }
}
