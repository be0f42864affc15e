//! Cache keys: what decides whether a layer is rebuilt.
//!
//! key(layer) = sha256(FORMAT, key(parent), canonical JSON of the layer's
//! steps (`compose_recipe::canonical_json`, the one canonical form), and the digest of every input file the steps name). Chaining the
//! parent key means a change in layer 4 of 5 changes the keys of 4 and 5
//! only. Absolute paths never enter a key, so the same recipe in another
//! checkout hits the same cache.

use anyhow::{Context, Result};
use compose_recipe::{canonical_json, LayerSpec, Step};
use compose_store::{CacheKey, Digest, Hasher};
use serde::Serialize;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Bump when an executor's behaviour changes, so old cache entries miss.
pub const FORMAT: &str = "compose-layer/1";

/// The key of the base layer: everything that decides what the bootstrap
/// tool produces.
pub fn base_key<T: Serialize>(resolved_base: &T) -> Result<CacheKey> {
    let json = canonical_json(resolved_base);
    let mut h = Hasher::new();
    frame(&mut h, FORMAT.as_bytes());
    frame(&mut h, b"base");
    frame(&mut h, json.as_bytes());
    Ok(CacheKey::from(h.finish()))
}

/// The key of a layer on top of `parent`.
pub fn layer_key(parent: &CacheKey, layer: &LayerSpec) -> Result<CacheKey> {
    let mut h = Hasher::new();
    frame(&mut h, FORMAT.as_bytes());
    frame(&mut h, parent.to_string().as_bytes());
    frame(&mut h, canonical_json(&layer.steps).as_bytes());
    for step in &layer.steps {
        for input in step.input_paths() {
            let d = hash_input(&input.abs)
                .with_context(|| format!("hashing input {} of layer {}", input.rel, layer.name))?;
            frame(&mut h, input.rel.as_bytes());
            frame(&mut h, d.to_string().as_bytes());
        }
    }
    Ok(CacheKey::from(h.finish()))
}

/// Length-prefixed so that no two different sequences hash alike.
fn frame(h: &mut Hasher, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// Digest of a file or a whole tree: names, types, permission bits,
/// contents and symlink targets (not owners or times: a checkout's owner
/// and mtimes vary, and `files` layers set owners explicitly).
pub fn hash_input(path: &Path) -> Result<Digest> {
    let mut h = Hasher::new();
    hash_entry(&mut h, path, "")?;
    Ok(h.finish())
}

fn hash_entry(h: &mut Hasher, path: &Path, rel: &str) -> Result<()> {
    let meta = fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    frame(h, rel.as_bytes());
    let ft = meta.file_type();
    if ft.is_symlink() {
        frame(h, b"l");
        let target = fs::read_link(path)?;
        frame(h, target.as_os_str().as_encoded_bytes());
    } else if ft.is_dir() {
        frame(h, b"d");
        h.update(&(meta.permissions().mode() & 0o7777).to_le_bytes());
        let mut names: Vec<_> = fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let child_rel = format!("{rel}/{}", name.to_string_lossy());
            hash_entry(h, &path.join(&name), &child_rel)?;
        }
    } else if ft.is_file() {
        frame(h, b"f");
        h.update(&(meta.mode() & 0o7777).to_le_bytes());
        let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        h.update(&meta.len().to_le_bytes());
        std::io::copy(&mut f, &mut HashWriter(h))
            .with_context(|| format!("reading {}", path.display()))?;
    } else {
        anyhow::bail!(
            "{} is a special file (device, fifo or socket): inputs must be files, folders or symlinks",
            path.display()
        );
    }
    Ok(())
}

/// Lets `io::copy` stream a file into a hasher without loading it.
struct HashWriter<'a>(&'a mut Hasher);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A one-line description of a layer for the image history and progress.
pub fn describe(steps: &[Step]) -> String {
    steps
        .iter()
        .map(describe_step)
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_step(step: &Step) -> String {
    use compose_recipe::{HostnameSpec, ScriptOrigin};
    match step {
        Step::Packages {
            install,
            remove,
            debs,
        } => {
            let mut parts = Vec::new();
            if !install.is_empty() {
                parts.push(format!("install {}", install.join(" ")));
            }
            if !remove.is_empty() {
                parts.push(format!("remove {}", remove.join(" ")));
            }
            if !debs.is_empty() {
                let names: Vec<_> = debs.iter().map(|d| d.rel.as_str()).collect();
                parts.push(format!("debs {}", names.join(" ")));
            }
            format!("packages: {}", parts.join(", "))
        }
        Step::SerialConsole { tty, baud } => format!("serial-console: {tty} at {baud}"),
        Step::Hostname(HostnameSpec::Fixed(name)) => format!("hostname: {name}"),
        Step::Hostname(HostnameSpec::FromDhcp) => "hostname: from DHCP".to_string(),
        Step::Files { source, dest, .. } => format!("files: {} -> {dest}", source.rel),
        Step::Script { origin, .. } => match origin {
            ScriptOrigin::Inline => "script: inline".to_string(),
            ScriptOrigin::File(p) => format!("script: {}", p.rel),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree(dir: &Path) {
        fs::create_dir_all(dir.join("etc/sub")).unwrap();
        fs::write(dir.join("etc/a.conf"), "a=1\n").unwrap();
        fs::write(dir.join("etc/sub/b"), "b").unwrap();
        symlink("a.conf", dir.join("etc/link")).unwrap();
    }

    #[test]
    fn tree_digest_ignores_location_and_mtime() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        tree(a.path());
        std::thread::sleep(std::time::Duration::from_millis(20));
        tree(b.path());
        assert_eq!(hash_input(a.path()).unwrap(), hash_input(b.path()).unwrap());
    }

    #[test]
    fn tree_digest_sees_content_mode_name_and_link_changes() {
        let base = tempfile::tempdir().unwrap();
        tree(base.path());
        let d0 = hash_input(base.path()).unwrap();
        type Edit = fn(&Path);
        let edits: [(&str, Edit); 4] = [
            ("content", |p| {
                fs::write(p.join("etc/a.conf"), "a=2\n").unwrap()
            }),
            ("mode", |p| {
                fs::set_permissions(p.join("etc/sub/b"), fs::Permissions::from_mode(0o600)).unwrap()
            }),
            ("rename", |p| {
                fs::rename(p.join("etc/sub/b"), p.join("etc/sub/c")).unwrap()
            }),
            ("link", |p| {
                fs::remove_file(p.join("etc/link")).unwrap();
                symlink("sub/b", p.join("etc/link")).unwrap();
            }),
        ];
        for (what, edit) in edits {
            let t = tempfile::tempdir().unwrap();
            tree(t.path());
            edit(t.path());
            assert_ne!(
                d0,
                hash_input(t.path()).unwrap(),
                "{what} must change the digest"
            );
        }
    }

    #[test]
    fn base_key_depends_on_every_field() {
        #[derive(Serialize)]
        struct B<'a> {
            suite: &'a str,
            packages: Vec<&'a str>,
        }
        let k1 = base_key(&B {
            suite: "bookworm",
            packages: vec!["a"],
        })
        .unwrap();
        let k2 = base_key(&B {
            suite: "bookworm",
            packages: vec!["a", "b"],
        })
        .unwrap();
        let k3 = base_key(&B {
            suite: "trixie",
            packages: vec!["a"],
        })
        .unwrap();
        assert_ne!(k1, k2);
        assert_ne!(k1, k3);
        assert_eq!(
            k1,
            base_key(&B {
                suite: "bookworm",
                packages: vec!["a"]
            })
            .unwrap()
        );
    }

    #[test]
    fn special_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let err = hash_input(d.path()).unwrap_err();
        assert!(format!("{err:#}").contains("special file"), "{err:#}");
    }

    /// The keys of a recipe with every step kind, pinned: a serde, serde_json
    /// or toml upgrade (or a change of the canonical form) that would
    /// silently invalidate every cache, or make two layers collide, fails
    /// here first. Changing FORMAT on purpose changes these values.
    #[test]
    fn keys_of_every_step_kind_are_pinned() {
        let d = tempfile::tempdir().unwrap();
        let files = d.path().join("files/etc");
        fs::create_dir_all(&files).unwrap();
        fs::write(files.join("motd"), "pinned\n").unwrap();
        for (p, mode) in [
            (d.path().join("files"), 0o755),
            (files.clone(), 0o755),
            (files.join("motd"), 0o644),
        ] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        let recipe = d.path().join("pinned.toml");
        fs::write(
            &recipe,
            r#"
[image]
name = "pinned"

[base]
suite = "bookworm"
mirror = "http://deb.example/debian"
architecture = "amd64"
tool = "mmdebstrap"
packages = ["systemd-sysv"]
source_date_epoch = 1700000000

[[layer]]
kind = "packages"
install = ["openssh-server"]
remove = ["nano"]

[[layer]]
kind = "serial-console"
tty = "ttyS0"
baud = 115200

[[layer]]
kind = "hostname"
from_dhcp = true

[[layer]]
kind = "files"
source = "files"
dest = "/"

[[layer]]
kind = "script"
run = "echo pinned > /etc/pinned"
"#,
        )
        .unwrap();
        let recipe = compose_recipe::load_recipe(&recipe, &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = crate::plan::plan(
            &recipe,
            crate::plan::Tools {
                mmdebstrap: true,
                debootstrap: true,
            },
        )
        .unwrap();
        let keys: Vec<String> = plan.layers.iter().map(|l| l.key.to_string()).collect();
        assert_eq!(keys, PINNED, "cache keys changed: every cache would miss");
    }

    const PINNED: [&str; 6] = [
        "sha256:2366bb06423b65fb6d202dd7f7525eab0fe48550d53f22c5eae350d05431996b",
        "sha256:86621dae0479e57e861b87d9e9254bd65e6f9d40801a26d52edd3f6f253bf8d3",
        "sha256:38844ac2c39225bc8b059771e0cbaffd514033d1c7f983d4f7a18e472d6a7236",
        "sha256:423e2129536d0951089f81a69e1e3d6feb9f106861a341432fc56d40ce4bead7",
        "sha256:47b022090aa2dc5b44af1b2a96067d3db06ba66be8a34eee7b04ceeee8d25c16",
        "sha256:d21254125578f624b91aef68ee009694b9a72e3343b8ddd90a8e525e38183411",
    ];
}
