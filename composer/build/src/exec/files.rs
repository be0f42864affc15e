//! `files`: copy a file or a tree from beside the recipe into the image
//! with explicit owner, group and modes.
//!
//! A folder's *contents* land in `dest` (like `rsync src/ dest/`); a single
//! file lands at `dest`, or inside it when `dest` ends with `/`. Symlinks
//! are copied as symlinks; devices, fifos and sockets are refused.

use super::edit::{image_id, Edit};
use super::StepContext;
use anyhow::{bail, Context, Result};
use compose_recipe::Step;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

struct Owner {
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    dir_mode: Option<u32>,
}

pub fn run(cx: &StepContext, step: &Step) -> Result<()> {
    let Step::Files {
        source,
        dest,
        owner,
        group,
        mode,
        dir_mode,
    } = step
    else {
        unreachable!("files::run takes files steps")
    };
    let o = Owner {
        uid: image_id(cx.root, "/etc/passwd", owner)
            .with_context(|| format!("layer {}: owner", cx.layer))?,
        gid: image_id(cx.root, "/etc/group", group)
            .with_context(|| format!("layer {}: group", cx.layer))?,
        mode: *mode,
        dir_mode: *dir_mode,
    };
    let mut e = Edit::new(cx.source_date_epoch)?;
    let meta = fs::symlink_metadata(&source.abs)
        .with_context(|| format!("layer {}: reading {}", cx.layer, source.abs.display()))?;
    if meta.is_dir() {
        if dest != "/" {
            add_dir(&mut e, dest, &meta, &o)?;
        }
        add_tree(&mut e, &source.abs, dest.trim_end_matches('/'), &o)?;
    } else {
        let target = if dest.ends_with('/') {
            let name = source.abs.file_name().context("source has no file name")?;
            format!("{dest}{}", name.to_string_lossy())
        } else {
            dest.clone()
        };
        add_entry(&mut e, &source.abs, &target, &o)?;
    }
    e.apply(cx.root)
        .with_context(|| format!("layer {}: copying {}", cx.layer, source.rel))
}

fn add_tree(e: &mut Edit, dir: &Path, dest: &str, o: &Owner) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name
            .to_str()
            .with_context(|| format!("{}: file names must be UTF-8", entry.path().display()))?;
        add_entry(e, &entry.path(), &format!("{dest}/{name}"), o)?;
    }
    Ok(())
}

fn add_entry(e: &mut Edit, src: &Path, target: &str, o: &Owner) -> Result<()> {
    let meta = fs::symlink_metadata(src).with_context(|| format!("reading {}", src.display()))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let link = fs::read_link(src)?;
        let link = link.to_str().context("symlink targets must be UTF-8")?;
        e.symlink(target, link, o.uid, o.gid)
    } else if ft.is_dir() {
        add_dir(e, target, &meta, o)?;
        add_tree(e, src, target, o)
    } else if ft.is_file() {
        let mode = o.mode.unwrap_or(meta.permissions().mode() & 0o7777);
        e.file_from(target, mode, o.uid, o.gid, src)
    } else {
        bail!(
            "{} is a device, fifo or socket: a files layer copies files, folders and symlinks only",
            src.display()
        )
    }
}

fn add_dir(e: &mut Edit, target: &str, meta: &fs::Metadata, o: &Owner) -> Result<()> {
    let mode = o.dir_mode.unwrap_or(meta.permissions().mode() & 0o7777);
    e.dir(target, mode, o.uid, o.gid)
}
