//! `compose completions SHELL` and the unlisted `compose __man DIR`: shell
//! completions and man pages generated from the clap definition itself, so
//! neither can drift from the options `compose --help` shows. The Debian
//! package (ci/package) runs both at build time.

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

/// `compose __man DIR`: dispatched before clap, like the chroot helper, so
/// that neither completions nor --help list it.
pub const MAN_VERB: &str = "__man";

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

/// `compose __man DIR`: writes compose(1) and one page per visible verb
/// (compose-build(1), compose-nodes-add(1), …) into DIR, uncompressed.
pub fn run_man(args: &[OsString]) -> Result<ExitCode> {
    let [dir] = args else {
        bail!("usage: compose {MAN_VERB} DIR");
    };
    write_man_pages(Path::new(dir))?;
    Ok(ExitCode::SUCCESS)
}

fn write_man_pages(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(super::Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_cover_every_verb() {
        let dir = tempfile::tempdir().unwrap();
        write_man_pages(dir.path()).unwrap();
        let cmd = super::super::Cli::command();
        for verb in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
            let page = dir.path().join(format!("compose-{}.1", verb.get_name()));
            assert!(page.is_file(), "{}", page.display());
        }
        assert!(dir.path().join("compose.1").is_file());
        assert!(dir.path().join("compose-nodes-add.1").is_file());
    }

    #[test]
    fn completions_offer_verbs_but_not_the_man_writer() {
        let mut cmd = super::super::Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(Shell::Bash, &mut cmd, "compose", &mut script);
        let script = String::from_utf8(script).unwrap();
        assert!(script.contains("build"));
        assert!(!script.contains(MAN_VERB));
    }
}
