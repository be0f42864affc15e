//! Table-driven tests of the syntax, the folding and every error kind.

use super::*;

fn names(expr: &str) -> Vec<String> {
    expand(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn groups(name: &str) -> Option<Vec<String>> {
    match name {
        "compute" => Some((1..=4).map(|i| format!("node{i:02}")).collect()),
        "gpu" => Some(vec!["node03".into(), "node04".into(), "gpu1".into()]),
        "empty" => Some(vec![]),
        _ => None,
    }
}

#[test]
fn expands_every_syntax_feature() {
    let cases: &[(&str, &[&str])] = &[
        ("node1", &["node1"]),
        ("login.example.org", &["login.example.org"]),
        ("node[1-3]", &["node1", "node2", "node3"]),
        ("node[01-03]", &["node01", "node02", "node03"]),
        ("node[008-010]", &["node008", "node009", "node010"]),
        ("node[9-11]", &["node9", "node10", "node11"]),
        (
            "node[1-2,5,7-8]",
            &["node1", "node2", "node5", "node7", "node8"],
        ),
        ("node[1-9/3]", &["node1", "node4", "node7"]),
        ("node[01-10/4]", &["node01", "node05", "node09"]),
        ("node[1,01]", &["node01", "node1"]),
        ("node[3,1,2,1]", &["node1", "node2", "node3"]),
        ("[1-2]", &["1", "2"]),
        ("n[1-2]x", &["n1x", "n2x"]),
        (
            "rack[1-2]-node[1-2]",
            &["rack1-node1", "rack1-node2", "rack2-node1", "rack2-node2"],
        ),
        ("a[1-2][3-4]", &["a13", "a14", "a23", "a24"]),
        ("node[0-0]", &["node0"]),
        ("node[18446744073709551615]", &["node18446744073709551615"]),
        // operators, left to right, no precedence
        ("node[1-3],login1", &["login1", "node1", "node2", "node3"]),
        ("node[1-4]!node[2-3]", &["node1", "node4"]),
        ("node[1-4]&node[3-9]", &["node3", "node4"]),
        ("node[1-4]^node[3-6]", &["node1", "node2", "node5", "node6"]),
        ("node[1-3]!node2,node2", &["node1", "node2", "node3"]),
        ("node2,node[1-3]!node2", &["node1", "node3"]),
        ("node1&node2,node3", &["node3"]),
        // whitespace: around operators, and bare whitespace is union
        ("  node1 , node2 ", &["node1", "node2"]),
        ("node[1-3] ! node2", &["node1", "node3"]),
        ("node1 node2\tnode3", &["node1", "node2", "node3"]),
        ("node1 node2!node1", &["node2"]),
    ];
    for (expr, want) in cases {
        assert_eq!(names(expr), *want, "{expr}");
    }
}

#[test]
fn natural_order_and_dedup() {
    assert_eq!(
        names("node10,node9,node1,node01,node1"),
        ["node01", "node1", "node9", "node10"]
    );
}

#[test]
fn groups_resolve_through_the_resolver() {
    let set = NodeSet::parse_with("@compute!node03", &groups).unwrap();
    assert_eq!(set.to_vec(), ["node01", "node02", "node04"]);
    let set = NodeSet::parse_with("@compute&@gpu,login1", &groups).unwrap();
    assert_eq!(set.to_vec(), ["login1", "node03", "node04"]);
    let set = NodeSet::parse_with("@empty,node1", &groups).unwrap();
    assert_eq!(set.to_vec(), ["node1"]);
    assert_eq!(set.fold(), "node1");
}

#[test]
fn set_operations_and_accessors() {
    let a = NodeSet::parse("node[1-4]").unwrap();
    let b = NodeSet::parse("node[3-6]").unwrap();
    assert_eq!(a.union(&b).fold(), "node[1-6]");
    assert_eq!(a.difference(&b).fold(), "node[1-2]");
    assert_eq!(a.intersection(&b).fold(), "node[3-4]");
    assert_eq!(a.symmetric_difference(&b).fold(), "node[1-2,5-6]");
    assert!(a.intersection(&b).is_subset(&a));
    assert_eq!(a.len(), 4);
    assert!(!a.is_empty() && NodeSet::default().is_empty());
    assert!(a.contains("node2") && !a.contains("node02"));
    assert_eq!(
        a.iter().collect::<Vec<_>>(),
        ["node1", "node2", "node3", "node4"]
    );
    assert_eq!((&a).into_iter().count(), 4);
    assert_eq!(a.to_string(), "node[1-4]");
    let parsed: NodeSet = "node[1-4]".parse().unwrap();
    assert_eq!(parsed, a);
    let from = NodeSet::from_names(["node4", "node1", "", "node3", "node2", "node1"]);
    assert_eq!(from, a);
}

#[test]
fn folds_single_and_multiple_dimensions() {
    let cases: &[(&[&str], &str)] = &[
        (&[], ""),
        (&["login1"], "login1"),
        (
            &["node01", "node02", "node03", "node04", "node09", "login1"],
            "login1,node[01-04,09]",
        ),
        (&["node8", "node9", "node10"], "node[8-10]"),
        (&["node08", "node09", "node10", "node11"], "node[08-11]"),
        (&["node1", "node01", "node2"], "node[01,1-2]"),
        (&["node9", "node10", "node010"], "node[9-10,010]"),
        (&["a", "b", "node1"], "a,b,node1"),
        (
            &[
                "rack1-node01",
                "rack1-node02",
                "rack2-node01",
                "rack2-node02",
            ],
            "rack[1-2]-node[01-02]",
        ),
        (
            &["rack1-node1", "rack1-node2", "rack2-node1"],
            "rack1-node[1-2],rack2-node1",
        ),
        (&["x86_64-node1", "x86_64-node2"], "x86_64-node[1-2]"),
        (
            &[
                "n1.c1.example",
                "n2.c1.example",
                "n1.c2.example",
                "n2.c2.example",
            ],
            "n[1-2].c[1-2].example",
        ),
        (
            &["n99999999999999999999999", "n1", "n2"],
            "n[1-2],n99999999999999999999999",
        ),
        (&["node2", "node10"], "node[2,10]"),
        (&["node2", "node1", "node2"], "node[1-2]"),
    ];
    for (input, want) in cases {
        assert_eq!(fold(input.iter()), *want, "{input:?}");
        let round: Vec<String> = NodeSet::from_names(input.iter().copied()).to_vec();
        if !want.is_empty() {
            assert_eq!(names(want), round, "{want} re-expands");
        }
    }
}

#[test]
fn display_is_the_folded_form() {
    let set = NodeSet::parse("node[01-64]!node[10-19],login[1-2]").unwrap();
    assert_eq!(set.to_string(), "login[1-2],node[01-09,20-64]");
    assert_eq!(NodeSet::parse(&set.to_string()).unwrap(), set);
}

#[test]
fn valid_names() {
    assert!(is_valid_name("node-01.example_org"));
    assert!(!is_valid_name(""));
    assert!(!is_valid_name("node 1"));
    assert!(!is_valid_name("node[1]"));
}

/// (expression, kind, column, words the message must contain)
#[test]
fn every_error_kind_names_the_column_and_the_fix() {
    use ErrorKind::*;
    let cases: &[(&str, ErrorKind, usize, &str)] = &[
        ("", Empty, 1, "write at least one node name"),
        ("   ", Empty, 1, "write at least one node name"),
        ("node[01-04", UnbalancedBracket, 5, "`[` is never closed"),
        (
            "node01]",
            UnbalancedBracket,
            7,
            "`]` without a matching `[`",
        ),
        ("node[1]]", UnbalancedBracket, 8, "open the range first"),
        ("]", UnbalancedBracket, 1, "open the range first"),
        ("node[1-[2]]", NestedBracket, 8, "brackets do not nest"),
        ("node[1-2-3]", BadRange, 9, "more than one `-`"),
        ("node[1--3]", BadRange, 8, "write START-END"),
        ("node[-3]", RangeNoStart, 6, "range has no start"),
        (
            "node[01-]",
            RangeNoEnd,
            8,
            "range has no end: write a range like node[01-64]",
        ),
        ("node[1-/2]", RangeNoEnd, 7, "range has no end"),
        ("node[]", EmptyElement, 6, "empty element in brackets"),
        ("node[1,,2]", EmptyElement, 8, "between the commas"),
        ("node[1,]", EmptyElement, 8, "empty element"),
        (
            "node[4-1]",
            ReversedRange,
            6,
            "write the smaller number first",
        ),
        ("node[1-010]", MixedPadding, 6, "same width"),
        ("node[01-100]", MixedPadding, 6, "node[001-100]"),
        ("node[1-9/0]", BadStep, 9, "like node[1-9/2]"),
        ("node[1-9/]", BadStep, 9, "bad step"),
        ("node[5/2]", BadStep, 7, "follows a range"),
        (
            "node[18446744073709551616]",
            Overflow,
            6,
            "at most 18446744073709551615",
        ),
        (
            "node[1-99999999999999999999]",
            Overflow,
            8,
            "number too large",
        ),
        ("node[1-2000000]", TooLarge, 5, "limited to 1000000 names"),
        (
            "a[1-1000]b[1-1001]",
            TooLarge,
            1,
            "split it into smaller sets",
        ),
        (
            "node[1-18446744073709551615]",
            TooLarge,
            5,
            "node set too large",
        ),
        (
            "node[0-18446744073709551615]",
            TooLarge,
            5,
            "node set too large",
        ),
        ("@compute", GroupsUnavailable, 1, "groups need an inventory"),
        (
            "node1,@compute",
            GroupsUnavailable,
            7,
            "name the nodes instead",
        ),
        ("@", EmptyGroupName, 1, "write a group like @compute"),
        ("node1,@!x", EmptyGroupName, 7, "`@` without a group name"),
        ("!node1", LeadingOperator, 1, "`!` has nothing before it"),
        (
            " ,node1",
            LeadingOperator,
            2,
            "put a node set on both sides",
        ),
        ("node1,", MissingOperand, 6, "`,` has nothing after it"),
        (
            "node1,,node2",
            MissingOperand,
            6,
            "`,` has nothing after it",
        ),
        ("node1 & ", MissingOperand, 7, "`&` has nothing after it"),
        (
            "node1^!node2",
            MissingOperand,
            6,
            "`^` has nothing after it",
        ),
        ("node 1;", BadChar(';'), 7, "unexpected `;`"),
        ("node1@x", BadChar('@'), 6, "a group starts an element"),
        ("nöde1", BadChar('ö'), 2, "names use letters, digits"),
        (
            "node[a-b]",
            BadChar('a'),
            6,
            "brackets hold numbers and ranges",
        ),
        ("node[1 -2]", BadChar(' '), 7, "unexpected whitespace"),
        ("node[1-2x]", BadChar('x'), 9, "brackets hold numbers"),
        ("node\u{1}1", BadChar('\u{1}'), 5, "unexpected `\\u{1}`"),
    ];
    for (expr, kind, column, words) in cases {
        let err = NodeSet::parse(expr).expect_err(expr);
        assert_eq!(&err.kind, kind, "{expr}: {err}");
        assert_eq!(err.column, *column, "{expr}: {err}");
        assert_eq!(err.expr, *expr);
        let msg = err.to_string();
        assert!(msg.contains(&format!("column {column}: ")), "{msg}");
        assert!(msg.contains(words), "{expr}: {msg:?} lacks {words:?}");
    }
}

#[test]
fn the_brief_example_message() {
    let err = NodeSet::parse("node[01-]").unwrap_err();
    assert_eq!(
        err.to_string(),
        "node[01-]: column 8: range has no end: write a range like node[01-64]"
    );
}

#[test]
fn unknown_group_names_the_group() {
    let err = NodeSet::parse_with("node1,@nope", &groups).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownGroup("nope".into()));
    assert_eq!(err.column, 7);
    assert!(err.to_string().contains("unknown group @nope"), "{err}");
}

#[test]
fn group_with_brackets_is_refused() {
    let err = NodeSet::parse_with("@compute[1-2]", &groups).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadChar('['));
    assert_eq!(err.column, 9);
    assert!(err.to_string().contains("groups take no brackets"), "{err}");
}

/// Parses under caps 1000 times smaller than the real ones, so the tests of
/// the caps' logic stay fast; the real caps are tested where they trip
/// before anything is built.
fn parse_small(expr: &str, resolver: Option<parse::Resolver<'_>>) -> Result<NodeSet, NodeSetError> {
    let limits = parse::Limits {
        nodes: 1000,
        bytes: 64 << 10,
        work_nodes: 8000,
        work_bytes: 256 << 10,
    };
    parse::parse_expr(expr, resolver, limits).map(|names| NodeSet { names })
}

#[test]
fn oversized_groups_and_results_are_refused() {
    let big = |_: &str| Some((0..1001).map(|i| format!("n{i}")).collect());
    let err = parse_small("node1,@huge", Some(&big)).unwrap_err();
    assert_eq!((err.kind, err.column), (ErrorKind::TooLarge, 7));
    assert!(parse_small("a[1-1000]", None).is_ok());
    // Two operands under the cap whose union is over it: refused at the `,`.
    let err = parse_small("a[1-600],b[1-600]", None).unwrap_err();
    assert_eq!((err.kind, err.column), (ErrorKind::TooLarge, 9));
    // A bracket repeating ranges is capped as a whole.
    let err = parse_small("a[1-999,1-999]", None).unwrap_err();
    assert_eq!((err.kind, err.column), (ErrorKind::TooLarge, 2));
}

#[test]
fn repeated_work_is_bounded() {
    // Each operand is under the cap; the whole expression is not: the 9th
    // operand (column 73) passes 8000 names generated.
    let expr = ["a[1-999]"; 10].join("!");
    let err = parse_small(&expr, None).unwrap_err();
    assert_eq!((err.kind, err.column), (ErrorKind::TooLarge, 73));
}

#[test]
fn large_operands_merge_correctly() {
    // Operands of comparable size take the merge path of every operator.
    let cases: &[(&str, &str)] = &[
        ("n[1-100],n[50-200]", "n[1-200]"),
        ("n[1-100]!n[50-200]", "n[1-49]"),
        ("n[1-100]&n[50-200]", "n[50-100]"),
        ("n[1-100]^n[50-200]", "n[1-49,101-200]"),
        ("n[1-100]^n[1-100]", ""),
        // and the element-by-element path
        ("n[1-100],n5", "n[1-100]"),
        ("n[1-100]!n5", "n[1-4,6-100]"),
        ("n[1-100]&n5", "n5"),
        ("n[1-100]^n5,n101", "n[1-4,6-101]"),
    ];
    for (expr, want) in cases {
        assert_eq!(NodeSet::parse(expr).unwrap().fold(), *want, "{expr}");
    }
}

#[test]
fn too_many_bytes_are_refused_before_allocating() {
    // 10 000-digit padded numbers: few names, huge bytes.
    let wide = format!(
        "n[{}-{}]",
        "0".repeat(10_000),
        "9".repeat(10_000).replacen('9', "0", 1)
    );
    let err = NodeSet::parse(&wide).unwrap_err();
    // Too large a number for u64 comes first.
    assert_eq!(err.kind, ErrorKind::Overflow);
    let wide = format!("n[{}1-{}9999]", "0".repeat(9_999), "0".repeat(9_996));
    let err = NodeSet::parse(&wide).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
    let long = format!("{}[1-10000]", "a".repeat(10_000));
    let err = NodeSet::parse(&long).unwrap_err();
    assert_eq!(err.kind, ErrorKind::TooLarge);
    assert!(err.to_string().starts_with("aaaa"), "excerpt shown");
    assert!(
        err.to_string().len() < 400,
        "long expressions are cut: {err}"
    );
}

#[test]
fn many_small_unions_are_fast_enough_to_finish() {
    let expr: Vec<String> = (0..50_000).map(|i| format!("n{i}")).collect();
    let set = NodeSet::parse(&expr.join(",")).unwrap();
    assert_eq!(set.len(), 50_000);
    assert_eq!(set.fold(), "n[0-49999]");
}
