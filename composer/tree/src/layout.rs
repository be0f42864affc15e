//! Every path of the publish tree (default /srv/compose), and the parsers
//! from a path back to what it names:
//!
//! ```text
//! roots/<snapshot hex>/           immutable roots (NFS exports), 0700
//! chains/<OCI chain id>/          hard-link checkpoints of layer prefixes, 0700
//! images/<img>/gen/<N>/           one file per GenFile: generation.json, pxelinux.cfg,
//!                                 vmlinuz, initrd.img
//! images/<img>/current            -> gen/<N>  (the one rename that switches)
//! tftp/                           boot loaders, images -> ../images
//! tftp/pxelinux.cfg/default       -> ../images/<img>/current/pxelinux.cfg
//! tftp/pxelinux.cfg/01-<mac>      -> ../images/<img>/current/pxelinux.cfg, or
//!                                    ../images/<img>/gen/<N>/pxelinux.cfg (pinned)
//! cluster                         -> cluster.d/<h>  (regen's files: ssh_known_hosts,
//!                                    nodes/<host>/, boot/<host>/overlay.cpio, ...)
//! state/boots.json                what compose serve saw of each node's last boot
//! cluster-state/hostkeys/<host>/  each node's persistent ssh host key, 0700
//! tmp/                            publish scratch (swept under the lock), 0700
//! .lock                           the tree's one lock (see TreeLock)
//! ```
//!
//! Paths are built from typed values (digests, generation numbers, MACs);
//! names a client sends (a TFTP path, an NFS export) come back through the
//! `parse_*` functions, which return None for anything not of the layout.

use compose_store::{Digest, SnapshotId};
use std::fmt;
use std::path::{Path, PathBuf};

/// `images/<img>/current` points at `gen/<N>`: the prefix of that target.
pub const GEN_PREFIX: &str = "gen/";

/// The directory pxelinux reads its entries from, in `tftp/`, and the name
/// of a generation's entry in its directory.
pub const PXELINUX_DIR: &str = "pxelinux.cfg";

/// The files of a generation directory (`images/<img>/gen/<N>/`). A new
/// per-generation file (an iPXE script, say) is one more variant here, with
/// its name in [`GenFile::name`] and, when a node needs it to boot, in
/// [`GenFile::BOOT`] so fsck checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenFile {
    /// `generation.json`: what the generation is (image, number, snapshot).
    Meta,
    /// `pxelinux.cfg`: the boot entry (BIOS and UEFI loaders both read it).
    Pxelinux,
    Kernel,
    Initrd,
}

impl GenFile {
    /// Every file of a generation.
    pub const ALL: [GenFile; 4] = [
        GenFile::Meta,
        GenFile::Pxelinux,
        GenFile::Kernel,
        GenFile::Initrd,
    ];
    /// The files a node fetches to boot (fsck requires them).
    pub const BOOT: [GenFile; 3] = [GenFile::Kernel, GenFile::Initrd, GenFile::Pxelinux];

    pub fn name(self) -> &'static str {
        match self {
            GenFile::Meta => "generation.json",
            GenFile::Pxelinux => PXELINUX_DIR,
            GenFile::Kernel => "vmlinuz",
            GenFile::Initrd => "initrd.img",
        }
    }
}

/// A node's per-MAC pxelinux entry name, `01-aa-bb-cc-dd-ee-ff` (01 is the
/// ARP hardware type of Ethernet, as pxelinux asks for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacEntry([u8; 6]);

impl MacEntry {
    const PREFIX: &'static str = "01-";

    pub fn new(mac: [u8; 6]) -> MacEntry {
        MacEntry(mac)
    }

    pub fn mac(&self) -> [u8; 6] {
        self.0
    }

    /// `01-aa-bb-..` -> the MAC; None for any other name.
    pub fn parse(name: &str) -> Option<MacEntry> {
        let hex = name.strip_prefix(Self::PREFIX)?;
        let mut mac = [0u8; 6];
        let mut parts = hex.split('-');
        for b in &mut mac {
            let p = parts.next()?;
            if p.len() != 2 || p.bytes().any(|c| c.is_ascii_uppercase()) {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(MacEntry(mac))
    }

    /// compose owns every `01-*` entry in `tftp/pxelinux.cfg/`, even one it
    /// cannot parse: a regen removes what is not in the inventory.
    pub fn is_owned_name(name: &str) -> bool {
        name.starts_with(Self::PREFIX)
    }
}

impl fmt::Display for MacEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::PREFIX)?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The publish tree at a path. Building a path does no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The layout relative to the tree's root (`cluster`, `tftp/..`): how
    /// a plan or a report names a path.
    pub fn relative() -> Layout {
        Layout::new("")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directories only root may enter: the roots carry the images'
    /// setuid binaries, device nodes and secrets, for the NFS server only.
    pub fn private_dirs(&self) -> [PathBuf; 3] {
        [self.roots_dir(), self.chains_dir(), self.tmp_dir()]
    }

    /// The directories a new tree is created with. `state/` too: compose
    /// serve writes its boot record there under an otherwise read-only tree.
    pub fn skeleton(&self) -> [PathBuf; 6] {
        [
            self.roots_dir(),
            self.chains_dir(),
            self.images_dir(),
            self.tmp_dir(),
            self.state_dir(),
            self.pxelinux_dir(),
        ]
    }

    pub fn roots_dir(&self) -> PathBuf {
        self.root.join("roots")
    }

    /// `roots/<hex>`: the root of a published snapshot, its NFS export.
    pub fn root_dir(&self, snapshot: &SnapshotId) -> PathBuf {
        self.roots_dir().join(snapshot.digest().hex())
    }

    /// An export path (`…/roots/<hex>`, or a directory below it: libnfs
    /// mounts the directory holding the file it reads) -> its snapshot.
    pub fn parse_export(export: &str) -> Option<SnapshotId> {
        export.match_indices("/roots/").find_map(|(at, m)| {
            let rest = &export[at + m.len()..];
            let hex = rest.get(..64)?;
            let ends = rest.len() == 64 || rest[64..].starts_with('/');
            let digest = Digest::from_hex(hex).ok().filter(|_| ends)?;
            Some(SnapshotId::from(digest))
        })
    }

    pub fn chains_dir(&self) -> PathBuf {
        self.root.join("chains")
    }

    /// `chains/<chain id>`: the checkpoint of a layer prefix.
    pub fn chain_dir(&self, chain: &Digest) -> PathBuf {
        self.chains_dir().join(chain.hex())
    }

    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    pub fn image_dir(&self, image: &str) -> PathBuf {
        self.images_dir().join(image)
    }

    /// `images/<img>/gen`: the generations of an image.
    pub fn gens_dir(&self, image: &str) -> PathBuf {
        self.image_dir(image).join("gen")
    }

    pub fn gen_dir(&self, image: &str, n: u64) -> PathBuf {
        self.gens_dir(image).join(n.to_string())
    }

    pub fn gen_file(&self, image: &str, n: u64, file: GenFile) -> PathBuf {
        self.gen_dir(image, n).join(file.name())
    }

    /// A generation's file relative to the tree (and to the TFTP root, where
    /// `images` links to the tree's): what a boot entry names.
    pub fn gen_file_rel(image: &str, n: u64, file: GenFile) -> String {
        format!("images/{image}/{GEN_PREFIX}{n}/{}", file.name())
    }

    /// `images/<img>/gen/<N>/<file>` (relative, a leading `/` allowed) ->
    /// (img, N): which generation a fetched file belongs to.
    pub fn parse_gen_path(path: &str) -> Option<(String, u64)> {
        let mut parts = path.trim_start_matches('/').split('/');
        if parts.next()? != "images" {
            return None;
        }
        let image = parts.next()?;
        if parts.next()? != "gen" {
            return None;
        }
        let n = parts.next()?.parse().ok()?;
        parts.next()?;
        Some((image.to_string(), n))
    }

    /// `images/<img>/current`, the link whose rename switches an image.
    pub fn current_link(&self, image: &str) -> PathBuf {
        self.image_dir(image).join("current")
    }

    /// What `current` points at for generation `n`: `gen/<N>`.
    pub fn current_target(n: u64) -> String {
        format!("{GEN_PREFIX}{n}")
    }

    /// A `current` link's target -> its generation.
    pub fn parse_current_target(target: &Path) -> Option<u64> {
        target.to_str()?.strip_prefix(GEN_PREFIX)?.parse().ok()
    }

    pub fn tftp_dir(&self) -> PathBuf {
        self.root.join("tftp")
    }

    /// `tftp/images`, a link to [`Layout::TFTP_IMAGES_TARGET`].
    pub fn tftp_images_link(&self) -> PathBuf {
        self.tftp_dir().join("images")
    }

    pub const TFTP_IMAGES_TARGET: &'static str = "../images";

    /// `tftp/pxelinux.cfg`: the default entry and the per-MAC ones.
    pub fn pxelinux_dir(&self) -> PathBuf {
        self.tftp_dir().join(PXELINUX_DIR)
    }

    pub fn pxelinux_default(&self) -> PathBuf {
        self.pxelinux_dir().join("default")
    }

    /// `tftp/pxelinux.cfg/01-<mac>`.
    pub fn mac_entry(&self, entry: &MacEntry) -> PathBuf {
        self.pxelinux_dir().join(entry.to_string())
    }

    /// The target of an entry in `tftp/pxelinux.cfg/` (default or per-MAC):
    /// the image's current generation, or generation `pinned`.
    pub fn entry_target(image: &str, pinned: Option<u64>) -> String {
        let generation = match pinned {
            Some(n) => format!("{GEN_PREFIX}{n}"),
            None => "current".to_string(),
        };
        format!("../images/{image}/{generation}/{PXELINUX_DIR}")
    }

    /// `cluster`, the link regen switches to a new set.
    pub fn cluster_link(&self) -> PathBuf {
        self.root.join("cluster")
    }

    pub fn cluster_sets_dir(&self) -> PathBuf {
        self.root.join("cluster.d")
    }

    /// `cluster.d/<h>`: one complete generated set.
    pub fn cluster_set(&self, set: &str) -> PathBuf {
        self.cluster_sets_dir().join(set)
    }

    /// What `cluster` points at for set `h`: `cluster.d/<h>`.
    pub fn cluster_target(set: &str) -> String {
        format!("cluster.d/{set}")
    }

    /// `cluster/ssh_known_hosts`: every node's host key, for ssh.
    pub fn known_hosts(&self) -> PathBuf {
        self.cluster_link().join("ssh_known_hosts")
    }

    /// `cluster/nodes/<host>`: a node's own files.
    pub fn node_files(&self, host: &str) -> PathBuf {
        self.cluster_link().join("nodes").join(host)
    }

    /// `cluster/boot/<host>`: exported to that node only.
    pub fn node_boot_dir(&self, host: &str) -> PathBuf {
        self.cluster_link().join("boot").join(host)
    }

    /// `cluster/boot/<host>/overlay.cpio`: the node's files, unpacked by its initramfs.
    pub fn node_overlay(&self, host: &str) -> PathBuf {
        self.node_boot_dir(host).join("overlay.cpio")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// `state/boots.json`, kept by compose serve.
    pub fn boots_json(&self) -> PathBuf {
        self.state_dir().join("boots.json")
    }

    pub fn cluster_state_dir(&self) -> PathBuf {
        self.root.join("cluster-state")
    }

    /// `cluster-state/hostkeys`: one directory of keys per host.
    pub fn hostkeys_dir(&self) -> PathBuf {
        self.cluster_state_dir().join("hostkeys")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `.lock`, see [`crate::TreeLock`].
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }
}

#[cfg(test)]
mod tests;
