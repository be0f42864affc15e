//! Publishing snapshots as bootable generations, atomically.
//!
//! The publish tree's paths are compose-tree's [`Layout`] (the whole tree
//! is drawn there); its lock is compose-tree's [`TreeLock`]. This crate
//! writes roots, checkpoints, generations, `current`, the boot loaders and
//! the TFTP default entry. roots/, chains/ and tmp/ are 0700: the roots
//! carry the images' setuid binaries, device nodes and secrets, for the
//! (root) NFS server only.
//!
//! Everything of a generation is written and synced before `current` is
//! renamed; nothing a booted node uses (its root, kernel, initrd) is ever
//! rewritten, so publishing N+1 cannot disturb a node running N, and a crash
//! at any moment leaves the old or the new generation in force.

pub mod boot;
pub mod gc;
pub mod materialize;

use anyhow::{bail, Context, Result};
use compose_fs::IoContext;
use compose_store::{ImageRoot, SnapshotId, SnapshotInfo, Store};
pub use compose_tree::{GenFile, Layout, TreeLock};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

/// The boot loaders copied into the TFTP root, from Debian's pxelinux,
/// syslinux-common and syslinux-efi packages: pxelinux.0 for BIOS clients,
/// syslinux.efi for UEFI x64 ones. Both read the same `pxelinux.cfg/`
/// entries, so one entry per generation serves either firmware.
pub const BOOTLOADER: [(&str, &str); 4] = [
    ("/usr/lib/PXELINUX/pxelinux.0", "pxelinux.0"),
    ("/usr/lib/syslinux/modules/bios/ldlinux.c32", "ldlinux.c32"),
    ("/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi", "syslinux.efi"),
    ("/usr/lib/syslinux/modules/efi64/ldlinux.e64", "ldlinux.e64"),
];

/// The TFTP path of the UEFI x64 loader (see [`BOOTLOADER`]).
pub const EFI_X64_LOADER: &str = "syslinux.efi";

/// One published generation of an image (`images/<image>/gen/<N>/generation.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Generation {
    pub image: String,
    pub number: u64,
    pub snapshot: SnapshotId,
    pub kernel_version: String,
    pub published: String,
    pub cmdline: String,
    pub root: PathBuf,
    /// Derived from the `current` link when listing; never stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub current: bool,
}

/// The publish tree.
pub struct Tree {
    path: PathBuf,
    layout: Layout,
}

impl Tree {
    /// Opens the tree, creating its layout if needed.
    pub fn open(path: impl Into<PathBuf>) -> Result<Tree> {
        let path: PathBuf = path.into();
        let layout = Layout::new(&path);
        for dir in layout.skeleton() {
            fs::create_dir_all(&dir).at("creating directory", &dir)?;
        }
        restrict(&layout)?;
        let link = layout.tftp_images_link();
        if fs::symlink_metadata(&link).is_err() {
            compose_fs::replace_symlink(Layout::TFTP_IMAGES_TARGET, &link)?;
        }
        Ok(Tree { path, layout })
    }

    /// Opens an existing tree (read-only commands never create one).
    pub fn open_existing(path: impl Into<PathBuf>) -> Result<Tree> {
        let path: PathBuf = path.into();
        let layout = Layout::new(&path);
        if !layout.images_dir().is_dir() {
            bail!(
                "no publish tree at {}: publish a snapshot first (`compose publish IMAGE`) or pass --root",
                path.display()
            );
        }
        // Best effort: a read-only command may run as a user who cannot.
        let _ = restrict(&layout);
        Ok(Tree { path, layout })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where everything is in the tree.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The tree's lock, for changes; sweeps scratch left by a killed process.
    pub fn lock(&self) -> Result<TreeLock> {
        let lock = TreeLock::acquire(&self.layout)?;
        let tmp = self.layout.tmp_dir();
        for entry in fs::read_dir(&tmp).at("listing", &tmp)?.flatten() {
            let p = entry.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
        Ok(lock)
    }

    /// The directory of generation `n` of `image`.
    pub fn gen_dir(&self, image: &str, n: u64) -> PathBuf {
        self.layout.gen_dir(image, n)
    }

    /// Images with at least one generation, sorted.
    pub fn images(&self) -> Result<Vec<String>> {
        let images = self.layout.images_dir();
        let mut out: Vec<String> = fs::read_dir(&images)
            .at("listing", &images)?
            .flatten()
            .filter(|e| {
                self.layout
                    .gens_dir(&e.file_name().to_string_lossy())
                    .is_dir()
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The number `current` points at, if any.
    pub fn current(&self, image: &str) -> Result<Option<u64>> {
        match fs::read_link(self.layout.current_link(image)) {
            Ok(target) => {
                let n = Layout::parse_current_target(&target)
                    .with_context(|| format!("{image}: current points at {}", target.display()))?;
                Ok(Some(n))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {image}'s current generation")),
        }
    }

    /// All complete generations of `image`, oldest first.
    pub fn generations(&self, image: &str) -> Result<Vec<Generation>> {
        let dir = self.layout.gens_dir(image);
        let current = self.current(image)?;
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.parse::<u64>().is_err() {
                continue; // a temp dir of an unfinished publish
            }
            let mut g = self.read_generation(&entry.path())?;
            g.current = Some(g.number) == current;
            out.push(g);
        }
        out.sort_by_key(|g| g.number);
        Ok(out)
    }

    fn read_generation(&self, dir: &Path) -> Result<Generation> {
        let path = dir.join(GenFile::Meta.name());
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// Generation `n` of `image`, with a clear error listing what exists.
    pub fn generation(&self, image: &str, n: u64) -> Result<Generation> {
        let all = self.generations(image)?;
        if let Some(g) = all.iter().find(|g| g.number == n) {
            return Ok(g.clone());
        }
        let have: Vec<String> = all.iter().map(|g| g.number.to_string()).collect();
        if have.is_empty() {
            bail!("image {image} has no published generations")
        }
        bail!(
            "image {image} has no generation {n}; it has {}",
            have.join(", ")
        )
    }
}

/// Makes the tree's private directories ([`Layout::private_dirs`]) 0700. Roots hold the images' setuid binaries,
/// device nodes and secrets: no local user of the server may reach them.
/// Only root uses these directories (the NFS server opens roots by absolute
/// path); TFTP serves tftp/ and images/, which stay readable. A tree made
/// by an older compose (0755) is tightened here.
fn restrict(layout: &Layout) -> Result<()> {
    for dir in layout.private_dirs() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting the mode of {}", dir.display()))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// NFS server address for the command line (default: the DHCP server).
    pub server: Option<String>,
    /// Extra kernel arguments.
    pub cmdline: Vec<String>,
    /// Write the generation but leave `current` alone (a canary: only
    /// nodes pinned to it boot it).
    pub no_switch: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub generation: Generation,
    /// The snapshot was already the current generation: nothing changed.
    pub unchanged: bool,
    pub materialized: materialize::Materialized,
    pub seconds: f64,
}

/// Publishes `snap` as the next generation of its image and switches to it.
pub fn publish(
    store: &Store,
    tree: &Tree,
    snap: &SnapshotInfo,
    opts: &PublishOptions,
) -> Result<PublishReport> {
    publish_with(store, tree, snap, opts, &mut |_| {})
}

/// [`publish`], telling `progress` how the root's extraction goes (only
/// a snapshot with no root yet extracts anything).
pub fn publish_with(
    store: &Store,
    tree: &Tree,
    snap: &SnapshotInfo,
    opts: &PublishOptions,
    progress: &mut dyn FnMut(materialize::Extracting),
) -> Result<PublishReport> {
    let started = Instant::now();
    boot::refuse_test_shell(&opts.cmdline, "--cmdline")?;
    let _lock = tree.lock()?;
    install_bootloader(tree)?;
    let image = &snap.image;
    let gens = tree.generations(image)?;
    if opts.no_switch && !gens.iter().any(|g| g.current) {
        bail!(
            "{image} has no current generation for the other nodes to stay on: publish it without --nodes first"
        );
    }
    if let Some(cur) = gens.iter().find(|g| g.current && g.snapshot == snap.id) {
        return Ok(PublishReport {
            generation: cur.clone(),
            unchanged: true,
            materialized: materialize::Materialized {
                root: cur.root.clone(),
                reused: true,
                ..Default::default()
            },
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let mat = materialize::ensure_root_with(store, &tree.layout, &snap.id, progress)?;
    // Everything read out of the root resolves inside it: the image's
    // symlinks never reach the build host's files.
    let image_root = ImageRoot::open(&mat.root)?;
    let kernel = boot::find_kernel(&image_root)
        .with_context(|| format!("publishing {image}@{}", snap.id))?;
    let settings = boot::read_boot_settings(&image_root)
        .with_context(|| format!("publishing {image}@{}", snap.id))?;
    let number = gens.iter().map(|g| g.number).max().unwrap_or(0) + 1;
    let gen = write_generation(
        tree,
        image,
        number,
        snap,
        &image_root,
        &kernel,
        &settings,
        opts,
    )?;
    // The TFTP default entry goes through `current`, so it is made before
    // the switch (dangling until then): a crash can never leave a current
    // generation without a default entry.
    let default = tree.layout.pxelinux_default();
    if fs::symlink_metadata(&default).is_err() {
        compose_fs::replace_symlink(&Layout::entry_target(image, None), &default)?;
    }
    if opts.no_switch {
        return Ok(PublishReport {
            generation: gen,
            unchanged: false,
            materialized: mat,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    compose_fs::fault::point("publish:before-switch");
    compose_fs::replace_symlink(
        &Layout::current_target(number),
        &tree.layout.current_link(image),
    )?;
    compose_fs::fault::point("publish:after-switch");
    Ok(PublishReport {
        generation: Generation {
            current: true,
            ..gen
        },
        unchanged: false,
        materialized: mat,
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[allow(clippy::too_many_arguments)]
fn write_generation(
    tree: &Tree,
    image: &str,
    number: u64,
    snap: &SnapshotInfo,
    root: &ImageRoot,
    kernel: &boot::KernelPair,
    settings: &boot::BootSettings,
    opts: &PublishOptions,
) -> Result<Generation> {
    let gen_dir = tree.layout.gens_dir(image);
    fs::create_dir_all(&gen_dir).at("creating directory", &gen_dir)?;
    let tmp = gen_dir.join(format!(".tmp-{number}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).at("removing", &tmp)?;
    }
    fs::create_dir(&tmp).at("creating", &tmp)?;
    // Hard links: the TFTP files are the root's own, never a copy to drift.
    // (Resolved inside the root: `/boot/vmlinuz-V -> /boot/k/vmlinuz` is
    // the image's file, and nothing of the host can be linked.)
    root.link_file(&kernel.kernel, &tmp.join(GenFile::Kernel.name()))?;
    root.link_file(&kernel.initrd, &tmp.join(GenFile::Initrd.name()))?;
    let export = root
        .path()
        .to_str()
        .context("the publish root path must be UTF-8")?;
    let marker = format!(
        "compose.snapshot={} compose.generation={image}/{number}",
        snap.id
    );
    let mut extra = settings.cmdline.clone();
    extra.extend(opts.cmdline.iter().cloned());
    let cmdline = boot::render_cmdline(opts.server.as_deref(), export, &marker, &extra);
    let pxe = boot::render_pxelinux(&boot::Entry {
        label: &format!("{image}-{number}"),
        kernel: &Layout::gen_file_rel(image, number, GenFile::Kernel),
        initrd: &Layout::gen_file_rel(image, number, GenFile::Initrd),
        cmdline: &cmdline,
        serial: settings.pxelinux_serial.as_deref(),
    });
    let cfg = tmp.join(GenFile::Pxelinux.name());
    fs::write(&cfg, pxe).at("writing", &cfg)?;
    let gen = Generation {
        image: image.to_string(),
        number,
        snapshot: snap.id,
        kernel_version: kernel.version.clone(),
        published: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        cmdline,
        root: root.path().to_path_buf(),
        current: false,
    };
    let json = tmp.join(GenFile::Meta.name());
    fs::write(&json, serde_json::to_string_pretty(&gen)? + "\n").at("writing", &json)?;
    for f in [cfg, json] {
        fs::File::open(&f)
            .and_then(|f| f.sync_all())
            .at("syncing", &f)?;
    }
    compose_fs::sync_dir(&tmp)?;
    compose_fs::fault::point("publish:before-gen-rename");
    let dst = gen_dir.join(number.to_string());
    fs::rename(&tmp, &dst).at("renaming into place", &dst)?;
    compose_fs::sync_dir(&gen_dir)?;
    Ok(gen)
}

/// Copies the host's boot loaders ([`BOOTLOADER`]) into the TFTP root when
/// missing or different. All are read before any is written, so a host
/// lacking one gets the install hint and an untouched tree.
fn install_bootloader(tree: &Tree) -> Result<()> {
    let mut loaders = Vec::with_capacity(BOOTLOADER.len());
    for (src, name) in BOOTLOADER {
        let bytes = fs::read(src).with_context(|| {
            format!("reading {src}: install the boot loaders with `apt-get install pxelinux syslinux-common syslinux-efi`")
        })?;
        loaders.push((name, bytes));
    }
    for (name, bytes) in loaders {
        let dst = tree.layout.tftp_dir().join(name);
        if fs::read(&dst).ok().as_deref() != Some(&bytes[..]) {
            compose_fs::replace_file(&dst, &bytes, 0o644)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub image: String,
    pub from: Option<u64>,
    pub to: u64,
    pub snapshot: SnapshotId,
}

/// Points `current` at generation `to` (default: the one before current).
/// Constant time: one symlink rename, whatever the image's size.
pub fn rollback(tree: &Tree, image: &str, to: Option<u64>) -> Result<RollbackReport> {
    let _lock = tree.lock()?;
    let from = tree.current(image)?;
    let target = match to {
        Some(n) => tree.generation(image, n)?,
        None => {
            let gens = tree.generations(image)?;
            let cur = from.context(format!(
                "image {image} has no current generation to roll back from"
            ))?;
            gens.into_iter()
                .rfind(|g| g.number < cur)
                .with_context(|| {
                    format!("image {image}: generation {cur} is the oldest; name one with --to")
                })?
        }
    };
    compose_fs::fault::point("rollback:before-switch");
    compose_fs::replace_symlink(
        &Layout::current_target(target.number),
        &tree.layout.current_link(image),
    )?;
    Ok(RollbackReport {
        image: image.to_string(),
        from,
        to: target.number,
        snapshot: target.snapshot,
    })
}

/// Resolves `IMAGE@genN` through the tree, anything else through the store.
pub fn resolve_ref(store: &Store, tree: Option<&Tree>, reference: &str) -> Result<SnapshotId> {
    if let Some((image, n)) = reference.split_once("@gen") {
        if let Ok(n) = n.parse::<u64>() {
            let tree = tree.with_context(|| {
                format!("{reference}: no publish tree to look generations up in")
            })?;
            return Ok(tree.generation(image, n)?.snapshot);
        }
    }
    Ok(store.resolve(reference)?.id)
}
