//! `compose completions SHELL` and the hidden `compose __man DIR`: shell
//! completions and man pages generated from the clap definition itself, so
//! neither can drift from the options `compose --help` shows. The Debian
//! package (ci/package) runs both at build time.

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;
use std::process::ExitCode;

/// Print a shell completion script for compose.
///
/// The Debian package installs these already; from a checkout:
///     compose completions bash > /etc/bash_completion.d/compose
///     compose completions zsh > /usr/local/share/zsh/site-functions/_compose
///     compose completions fish > ~/.config/fish/completions/compose.fish
#[derive(clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "compose", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// Write compose(1) and one page per verb (compose-build(1), …) into DIR.
#[derive(clap::Args)]
pub struct ManArgs {
    /// Output directory (created if missing); pages are written uncompressed.
    dir: PathBuf,
}

pub fn run_man(args: ManArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    // Hidden verbs (this one, the chroot helper) get no page.
    clap_mangen::generate_to(super::Cli::command(), &args.dir)
        .with_context(|| format!("writing man pages into {}", args.dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_visible_verb_and_no_hidden_one() {
        let dir = tempfile::tempdir().unwrap();
        run_man(ManArgs {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let cmd = super::super::Cli::command();
        for verb in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let page = dir.path().join(format!("compose-{}.1", verb.get_name()));
            assert!(page.is_file(), "{}", page.display());
        }
        assert!(dir.path().join("compose.1").is_file());
        assert!(!dir.path().join("compose-__man.1").exists());
    }
}
