//! `packages`: apt-get install/purge inside the image, local .debs included
//! (how a cluster ships its own kernel built with `make bindeb-pkg`).

use super::StepContext;
use crate::chroot::ChrootCommand;
use anyhow::{Context, Result};
use compose_recipe::InputPath;

pub fn run(
    cx: &StepContext,
    index: usize,
    install: &[String],
    remove: &[String],
    debs: &[InputPath],
) -> Result<()> {
    let mut binds = Vec::new();
    if !debs.is_empty() {
        let dir = cx.scratch(&format!("debs-{index}"))?;
        for deb in debs {
            let name = deb
                .abs
                .file_name()
                .context("a .deb path has no file name")?;
            std::fs::copy(&deb.abs, dir.join(name))
                .with_context(|| format!("copying {}", deb.abs.display()))?;
        }
        binds.push((dir, "debs".to_string()));
    }
    let script = render_script(install, remove, debs);
    ChrootCommand {
        root: cx.root.to_path_buf(),
        binds,
        env: cx.env(),
        script,
        log: cx.log_path(index),
        verbose: cx.verbose,
    }
    .run()
    .with_context(|| format!("layer {}: installing packages", cx.layer))
}

/// The apt commands for a packages step. Package names were validated by
/// the recipe parser (Debian name syntax), so they are safe to splice in.
pub fn render_script(install: &[String], remove: &[String], debs: &[InputPath]) -> String {
    let apt = "apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";
    let mut s = String::from("set -e\n");
    let mut targets: Vec<String> = install.to_vec();
    for deb in debs {
        let name = deb
            .abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        targets.push(format!("/run/compose/debs/{}", name.unwrap_or_default()));
    }
    if !targets.is_empty() {
        s.push_str("apt-get -q update\n");
        s.push_str(&format!(
            "{apt} --no-install-recommends install {}\n",
            targets.join(" ")
        ));
    }
    if !remove.is_empty() {
        s.push_str(&format!("{apt} purge {}\n", remove.join(" ")));
        s.push_str(&format!("{apt} --purge autoremove\n"));
    }
    s.push_str("apt-get clean\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn script_installs_names_and_local_debs_then_cleans() {
        let debs = [InputPath {
            rel: "debs/k.deb".into(),
            abs: PathBuf::from("/x/debs/k.deb"),
        }];
        let s = render_script(&["openssh-server".into()], &[], &debs);
        assert!(s.contains("apt-get -q update\n"));
        assert!(
            s.contains("install openssh-server /run/compose/debs/k.deb\n"),
            "{s}"
        );
        assert!(!s.contains("purge"));
        assert!(s.ends_with("apt-get clean\n"));
    }

    #[test]
    fn remove_only_needs_no_update() {
        let s = render_script(&[], &["nano".into()], &[]);
        assert!(!s.contains("update"));
        assert!(s.contains("purge nano\n"), "{s}");
        assert!(s.contains("--purge autoremove"));
    }
}
