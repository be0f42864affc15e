//! `script`: a shell script run inside the image. Its text, inputs and
//! environment are all part of the layer's cache key.

use super::StepContext;
use crate::chroot::ChrootCommand;
use anyhow::{Context, Result};
use compose_recipe::InputPath;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn run(
    cx: &StepContext,
    index: usize,
    text: &str,
    inputs: &[InputPath],
    env: &BTreeMap<String, String>,
) -> Result<()> {
    let script_dir = cx.scratch(&format!("script-{index}"))?;
    let script = script_dir.join("run");
    fs::write(&script, text)?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    let mut binds = vec![(script_dir, "script".to_string())];
    let mut all_env = cx.env();
    if !inputs.is_empty() {
        let dir = cx.scratch(&format!("inputs-{index}"))?;
        for input in inputs {
            copy_input(&input.abs, &dir.join(&input.rel))
                .with_context(|| format!("copying input {}", input.rel))?;
        }
        binds.push((dir, "inputs".to_string()));
        all_env.push(("COMPOSE_INPUTS".into(), "/run/compose/inputs".into()));
    }
    all_env.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    // A script with its own interpreter line runs under it; others under sh -e.
    let command = if text.starts_with("#!") {
        "exec /run/compose/script/run"
    } else {
        "exec /bin/sh -e /run/compose/script/run"
    };
    ChrootCommand {
        root: cx.root.to_path_buf(),
        binds,
        env: all_env,
        script: command.to_string(),
        log: cx.log_path(index),
        verbose: cx.verbose,
    }
    .run()
    .with_context(|| format!("layer {}: script failed", cx.layer))
}

/// Copies a file or tree (symlinks as symlinks) to the bind-mount source.
fn copy_input(src: &Path, dst: &Path) -> Result<()> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    let meta = fs::symlink_metadata(src)?;
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if meta.is_dir() {
        fs::create_dir_all(dst)?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            copy_input(&entry.path(), &dst.join(entry.file_name()))?;
        }
    } else {
        fs::copy(src, dst)?;
    }
    Ok(())
}
