//! The file system a list of layers makes, as metadata only: what the
//! store's `apply_layer` would create, without creating anything. File
//! contents are recorded by location (layer + offset) and read on demand.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use compose_store::{LayerDigest, TarMember};

/// Where a regular file's bytes are: `size` bytes at `offset` in a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Loc {
    pub layer: LayerDigest,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Char => "char device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
        }
    }
}

/// One path of the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    pub kind: Kind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub owner: (u64, u64),
    pub mtime: u64,
    /// Regular files: byte count and where the bytes are.
    pub size: u64,
    pub data: Option<Loc>,
    /// Symlinks: the target as stored.
    pub target: Vec<u8>,
    pub dev: (u32, u32),
    /// Sorted; only what `apply_layer` restores (files and directories).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Relative path (components joined by `/`, no leading `/`) -> node.
#[derive(Debug, Clone, Default)]
pub(super) struct Tree {
    nodes: BTreeMap<Vec<u8>, Node>,
}

const OPAQUE: &[u8] = b".wh..wh..opq";
const WHITEOUT: &[u8] = b".wh.";

/// Same allow-list as the store's extractor (`xattr_allowed` in
/// layer_write.rs): the diff must show what an extracted image holds.
fn xattr_allowed(name: &[u8]) -> bool {
    name == b"security.capability" || name.starts_with(b"user.")
}

impl Tree {
    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Paths strictly below `dir` (`dir` empty: everything), sorted.
    fn below(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        if dir.is_empty() {
            return self.nodes.keys().cloned().collect();
        }
        let mut lo = dir.to_vec();
        lo.push(b'/');
        let mut hi = dir.to_vec();
        hi.push(b'/' + 1);
        self.nodes.range(lo..hi).map(|(k, _)| k.clone()).collect()
    }
}

/// Applies the members of one layer, in archive order.
pub(super) struct LayerApply<'t> {
    tree: &'t mut Tree,
    layer: LayerDigest,
    /// Paths this layer created: its whiteouts only hide lower layers.
    written: HashSet<Vec<u8>>,
    /// Every path created, replaced or removed (when the caller wants them).
    touched: Option<&'t mut BTreeSet<Vec<u8>>>,
}

impl<'t> LayerApply<'t> {
    pub fn new(
        tree: &'t mut Tree,
        layer: LayerDigest,
        touched: Option<&'t mut BTreeSet<Vec<u8>>>,
    ) -> Self {
        LayerApply {
            tree,
            layer,
            written: HashSet::new(),
            touched,
        }
    }

    /// Applies one member whose data starts at `offset`; errors say why the
    /// member is invalid.
    pub fn member(&mut self, m: &TarMember, offset: u64) -> Result<(), String> {
        let path = normalize(&m.name)?;
        if path.is_empty() {
            return Ok(()); // the root itself: its metadata is the extractor's caller's
        }
        let (parent, base) = split(&path);
        if base == OPAQUE {
            self.opaque(parent);
            return Ok(());
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT) {
            return self.whiteout(parent, hidden);
        }
        self.parents(parent)?;
        let node = self.node(m, offset)?;
        // An existing directory keeps its contents (lower layers' files).
        let merge =
            node.kind == Kind::Dir && self.tree.get(&path).is_some_and(|n| n.kind == Kind::Dir);
        if !merge {
            self.remove(&path);
        }
        self.insert(path, node);
        Ok(())
    }

    fn node(&self, m: &TarMember, offset: u64) -> Result<Node, String> {
        use tar::EntryType as T;
        let mut node = Node {
            kind: Kind::File,
            mode: m.mode & 0o7777,
            owner: (m.uid, m.gid),
            mtime: m.mtime,
            size: 0,
            data: None,
            target: Vec::new(),
            dev: (0, 0),
            xattrs: Vec::new(),
        };
        match m.kind {
            T::Regular | T::Continuous => {
                node.size = m.size;
                node.data = Some(Loc {
                    layer: self.layer,
                    offset,
                });
            }
            T::Directory => node.kind = Kind::Dir,
            T::Symlink => {
                node.kind = Kind::Symlink;
                node.mode = 0o777; // symlink modes are not restored (always 0777)
                node.target = link_target(m)?;
                return Ok(node);
            }
            T::Link => return self.hard_link(m),
            T::Char | T::Block | T::Fifo => {
                node.kind = match m.kind {
                    T::Char => Kind::Char,
                    T::Block => Kind::Block,
                    _ => Kind::Fifo,
                };
                node.dev = if m.kind == T::Fifo { (0, 0) } else { m.dev };
                return Ok(node); // the extractor restores no xattrs on nodes
            }
            other => return Err(format!("unsupported entry type {other:?}")),
        }
        node.xattrs = m
            .xattrs
            .iter()
            .filter(|(k, _)| xattr_allowed(k))
            .cloned()
            .collect();
        node.xattrs.sort();
        Ok(node)
    }

    /// A hard link shares its target's inode: same metadata and content.
    fn hard_link(&self, m: &TarMember) -> Result<Node, String> {
        let raw = link_target(m)?;
        let target = normalize(&raw).map_err(|r| format!("hard link target: {r}"))?;
        match self.tree.get(&target) {
            None => Err(format!(
                "hard link target `{}` does not exist in this layer or below",
                String::from_utf8_lossy(&raw)
            )),
            Some(n) if n.kind == Kind::Dir => Err("hard link to a directory".into()),
            Some(n) => Ok(n.clone()),
        }
    }

    /// Missing parents are created 0755 root-owned, like the extractor does.
    fn parents(&mut self, dir: &[u8]) -> Result<(), String> {
        // The tree always holds every ancestor of its paths (removals take
        // whole subtrees): an existing parent directory settles it.
        if dir.is_empty() || self.tree.get(dir).is_some_and(|n| n.kind == Kind::Dir) {
            return Ok(());
        }
        let ends = dir
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i);
        for end in ends.chain([dir.len()]) {
            let path = dir[..end].to_vec();
            match self.tree.get(&path) {
                Some(n) if n.kind == Kind::Dir => {}
                Some(_) => {
                    return Err(format!(
                        "parent {} is not a directory",
                        String::from_utf8_lossy(&path)
                    ))
                }
                None => {
                    let dir = Node {
                        kind: Kind::Dir,
                        mode: 0o755,
                        owner: (0, 0),
                        mtime: 0,
                        size: 0,
                        data: None,
                        target: Vec::new(),
                        dev: (0, 0),
                        xattrs: Vec::new(),
                    };
                    self.insert(path, dir);
                }
            }
        }
        Ok(())
    }

    /// `.wh.NAME`: removes NAME (and everything below) from lower layers.
    fn whiteout(&mut self, parent: &[u8], hidden: &[u8]) -> Result<(), String> {
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err("whiteout of an invalid name".into());
        }
        let target = join(parent, hidden);
        if !self.written.contains(&target) {
            self.remove(&target);
        }
        Ok(())
    }

    /// `.wh..wh..opq`: everything lower layers put below `dir` goes; what
    /// this layer wrote stays (unless below something it did not write).
    fn opaque(&mut self, dir: &[u8]) {
        if !dir.is_empty() && !self.tree.get(dir).is_some_and(|n| n.kind == Kind::Dir) {
            return;
        }
        // Sorted order visits a directory before its children, so a child
        // whose parent is already gone goes too.
        for path in self.tree.below(dir) {
            let parent_gone = parent_of(&path)
                .is_some_and(|p| p.len() > dir.len() && !self.tree.nodes.contains_key(p));
            if parent_gone || !self.written.contains(&path) {
                self.tree.nodes.remove(&path);
                self.touch(path);
            }
        }
    }

    /// Removes `path` and everything below it.
    fn remove(&mut self, path: &[u8]) {
        if self.tree.nodes.remove(path).is_none() {
            return; // a non-existent path has nothing below it either
        }
        self.touch(path.to_vec());
        for p in self.tree.below(path) {
            self.tree.nodes.remove(&p);
            self.touch(p);
        }
    }

    fn insert(&mut self, path: Vec<u8>, node: Node) {
        self.written.insert(path.clone());
        self.touch(path.clone());
        self.tree.nodes.insert(path, node);
    }

    fn touch(&mut self, path: Vec<u8>) {
        if let Some(t) = self.touched.as_deref_mut() {
            t.insert(path);
        }
    }
}

/// (parent, base name) of a non-empty relative path; the parent of a
/// top-level name is empty.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match parent_of(path) {
        Some(parent) => (parent, &path[parent.len() + 1..]),
        None => (&[], path),
    }
}

fn parent_of(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|b| *b == b'/').map(|i| &path[..i])
}

fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    [parent, b"/", name].concat()
}

fn link_target(m: &TarMember) -> Result<Vec<u8>, String> {
    m.link
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "link without a target".to_string())
}

/// Same rules as the extractor: one leading `./` or `/` stripped, `.`
/// components dropped, `..` and NUL rejected.
fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.contains(&0) {
        return Err("the name contains a NUL byte".into());
    }
    let rest = raw
        .strip_prefix(b"./")
        .or_else(|| raw.strip_prefix(b"/"))
        .unwrap_or(raw);
    if rest.starts_with(b"/") {
        return Err("the name is an absolute path".into());
    }
    let mut path = Vec::with_capacity(rest.len());
    for c in rest.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("the name contains a `..` component".into()),
            c => {
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(c);
            }
        }
    }
    Ok(path)
}
