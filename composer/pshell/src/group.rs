//! Folding: nodes with byte-identical output are shown once, like `clush -b`
//! or `dshbak -c`. stdout and stderr are grouped separately (as clush does):
//! interleaving them would depend on timing, so equal runs could differ.

use crate::NodeResult;
use std::collections::HashMap;

/// Which captured stream to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Node names, in the order of `results`.
    pub names: Vec<String>,
    pub output: Vec<u8>,
}

/// Every node lands in exactly one group, including nodes with empty output
/// or that failed (the caller decides what to hide); groups are ordered by
/// their first node.
pub fn group_by_output(results: &[NodeResult], stream: Stream) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    for r in results {
        let output = match stream {
            Stream::Stdout => &r.stdout,
            Stream::Stderr => &r.stderr,
        };
        let i = *index.entry(output.as_slice()).or_insert_with(|| {
            groups.push(Group {
                names: Vec::new(),
                output: output.clone(),
            });
            groups.len() - 1
        });
        groups[i].names.push(r.name.clone());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Outcome;
    use std::time::Duration;

    fn node(name: &str, stdout: &str, stderr: &str) -> NodeResult {
        NodeResult {
            name: name.into(),
            outcome: Outcome::Exited(0),
            stdout: stdout.into(),
            stderr: stderr.into(),
            elapsed: Duration::ZERO,
        }
    }

    fn names(groups: &[Group]) -> Vec<(Vec<&str>, &str)> {
        groups
            .iter()
            .map(|g| {
                let names = g.names.iter().map(String::as_str).collect();
                (names, std::str::from_utf8(&g.output).unwrap())
            })
            .collect()
    }

    #[test]
    fn identical_output_folds_in_first_node_order() {
        let results = [
            node("n01", "a\n", ""),
            node("n02", "b\n", "warn\n"),
            node("n03", "a\n", ""),
            node("n04", "", ""),
            node("n05", "b\n", "warn\n"),
        ];
        assert_eq!(
            names(&group_by_output(&results, Stream::Stdout)),
            [
                (vec!["n01", "n03"], "a\n"),
                (vec!["n02", "n05"], "b\n"),
                (vec!["n04"], ""),
            ]
        );
        assert_eq!(
            names(&group_by_output(&results, Stream::Stderr)),
            [
                (vec!["n01", "n03", "n04"], ""),
                (vec!["n02", "n05"], "warn\n")
            ]
        );
    }

    #[test]
    fn output_differing_only_in_trailing_newline_does_not_fold() {
        let results = [node("n01", "a", ""), node("n02", "a\n", "")];
        assert_eq!(group_by_output(&results, Stream::Stdout).len(), 2);
    }

    #[test]
    fn no_results_no_groups() {
        assert!(group_by_output(&[], Stream::Stdout).is_empty());
    }
}
