//! Layer executors: one small module per step kind.
//!
//! Steps that need the image's own tools (apt, shell scripts) run through
//! the chroot session; the others (serial console, hostname, files) are
//! plain file edits applied through the store's safe extractor.

mod base;
pub mod edit;
mod files;
mod packages;
mod script;
mod system;

pub use base::{run_base, BootstrapParser, BootstrapStatus};

use anyhow::Result;
use compose_recipe::Step;
use std::path::{Path, PathBuf};

/// What every step of a layer needs to know.
pub struct StepContext<'a> {
    /// The image root being built.
    pub root: &'a Path,
    /// Scratch space outside the root (logs, bind-mount sources).
    pub work: &'a Path,
    pub image: &'a str,
    pub layer: &'a str,
    pub source_date_epoch: i64,
    /// Stream command output instead of only logging it.
    pub verbose: bool,
}

impl StepContext<'_> {
    /// A fresh scratch directory for one step.
    pub fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    pub fn log_path(&self, index: usize) -> PathBuf {
        self.work
            .join(format!("{}-{index}.log", sanitize(self.layer)))
    }

    /// The environment every command in the image sees.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "SOURCE_DATE_EPOCH".into(),
                self.source_date_epoch.to_string(),
            ),
            ("COMPOSE_IMAGE".into(), self.image.to_string()),
            ("COMPOSE_LAYER".into(), self.layer.to_string()),
        ]
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs one step of a layer in `cx.root`.
pub fn run_step(cx: &StepContext, index: usize, step: &Step) -> Result<()> {
    match step {
        Step::Packages {
            install,
            remove,
            debs,
        } => packages::run(cx, index, install, remove, debs),
        Step::SerialConsole { tty, baud } => system::serial_console(cx, tty, *baud),
        Step::Hostname(spec) => system::hostname(cx, spec),
        Step::Files { .. } => files::run(cx, step),
        Step::Script {
            text, inputs, env, ..
        } => script::run(cx, index, text, inputs, env),
    }
}
