//! Property tests: no input makes the parser panic, and every diagnostic
//! names its file.

mod common;

use std::path::Path;

use compose_recipe::parse_recipe;
use proptest::prelude::*;

const VALID: &str = r#"[image]
name = "hpc-node"
description = "compute node"

[base]
suite = "bookworm"
variant = "minbase"
snapshot = "20250520T000000Z"
packages = ["linux-image-amd64", "zstd"]

[[layer]]
kind = "packages"
install = ["openssh-server"]
debs = ["debs/a.deb"]

[[layer]]
kind = "serial-console"
baud = 115200

[[layer]]
kind = "files"
source = "files/etc"
dest = "/etc"
mode = "0644"

[[layer]]
kind = "script"
run = "echo hi"
env = { A = "b" }

[[layer]]
use = "netboot"
with = { overlay = "tmpfs" }
"#;

fn check(text: &str) {
    if let Err(errs) = parse_recipe(text, Path::new("p/x.toml")) {
        assert!(!errs.0.is_empty());
        for d in &errs.0 {
            assert_eq!(d.file, Path::new("p/x.toml"));
            assert!(!d.to_string().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(s in ".{0,300}") {
        check(&s);
    }

    #[test]
    fn arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&String::from_utf8_lossy(&b));
    }

    /// Splice random text into a valid recipe, or cut pieces out of it.
    #[test]
    fn mutated_recipe(at in 0usize..VALID.len(), cut in 0usize..40, insert in "[\\[\\]=\"{},.a-z0-9 \n$]{0,12}") {
        let mut at = at;
        while !VALID.is_char_boundary(at) { at -= 1; }
        let mut end = (at + cut).min(VALID.len());
        while !VALID.is_char_boundary(end) { end -= 1; }
        let text = format!("{}{}{}", &VALID[..at], insert, &VALID[end..]);
        check(&text);
    }
}

#[test]
fn valid_base_recipe_parses() {
    parse_recipe(VALID, Path::new("p/x.toml")).unwrap();
}
