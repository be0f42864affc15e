//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use compose_recipe::{load_recipe, parse_recipe, LoadOptions, Recipe, RecipeErrors};

/// A valid head every recipe test can extend with layers.
pub const HEAD: &str = r#"[image]
name = "t"

[base]
suite = "bookworm"
"#;

/// Writes `files` (path, content) under a fresh temp dir; a content of
/// `None` makes a folder.
pub fn tree(files: &[(&str, Option<&str>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let p = dir.path().join(path);
        match content {
            Some(c) => {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, c).unwrap();
            }
            None => fs::create_dir_all(&p).unwrap(),
        }
    }
    dir
}

/// Writes `text` as `<dir>/r/x.toml` and loads it with layers from `<dir>/layers`.
pub fn load_in(dir: &Path, text: &str) -> Result<Recipe, RecipeErrors> {
    let path = recipe_path(dir);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    load_recipe(&path, &LoadOptions::default())
}

pub fn recipe_path(dir: &Path) -> PathBuf {
    dir.join("r").join("x.toml")
}

pub fn parse_err(text: &str) -> RecipeErrors {
    match parse_recipe(text, Path::new("recipes/x.toml")) {
        Ok(r) => panic!("expected errors, parsed {r:#?}\n{text}"),
        Err(e) => e,
    }
}
