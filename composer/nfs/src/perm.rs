//! The permission model: classic Unix mode bits against the caller's AUTH_UNIX
//! credential, as the Linux kernel's generic_permission() decides them
//! (no ACLs, no capabilities other than root's override).

use crate::rpc::Cred;

pub const ACCESS3_READ: u32 = 0x0001;
pub const ACCESS3_LOOKUP: u32 = 0x0002;
pub const ACCESS3_MODIFY: u32 = 0x0004;
pub const ACCESS3_EXTEND: u32 = 0x0008;
pub const ACCESS3_DELETE: u32 = 0x0010;
pub const ACCESS3_EXECUTE: u32 = 0x0020;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;

/// rwx bits (4/2/1) the caller holds on an object with this mode and owner.
pub fn rwx(cred: &Cred, mode: u32, uid: u32, gid: u32) -> u32 {
    let is_dir = mode & S_IFMT == S_IFDIR;
    if cred.uid == 0 {
        // Root reads and writes anything; it executes a non-directory only
        // when some execute bit is set.
        let x = if is_dir || mode & 0o111 != 0 { 1 } else { 0 };
        return 6 | x;
    }
    if cred.uid == uid {
        (mode >> 6) & 7
    } else if cred.in_group(gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

/// The ACCESS3 reply bits: `requested` masked by what the mode grants.
/// Write bits are never granted (the file system is read-only).
pub fn access3(cred: &Cred, mode: u32, uid: u32, gid: u32, requested: u32) -> u32 {
    let p = rwx(cred, mode, uid, gid);
    let mut granted = 0;
    if p & 4 != 0 {
        granted |= ACCESS3_READ;
    }
    if p & 1 != 0 {
        granted |= match mode & S_IFMT {
            S_IFDIR => ACCESS3_LOOKUP,
            S_IFREG => ACCESS3_EXECUTE,
            _ => 0,
        };
    }
    granted & requested
}

/// May the caller READ this regular file? Like knfsd, execute permission is
/// enough: the client must read an executable's pages to run it (mode 0711).
pub fn may_read_file(cred: &Cred, mode: u32, uid: u32, gid: u32) -> bool {
    rwx(cred, mode, uid, gid) & 5 != 0
}

/// May the caller list this directory (READDIR, READDIRPLUS)?
pub fn may_list(cred: &Cred, mode: u32, uid: u32, gid: u32) -> bool {
    rwx(cred, mode, uid, gid) & 4 != 0
}

/// May the caller look names up in this directory (LOOKUP)?
pub fn may_search(cred: &Cred, mode: u32, uid: u32, gid: u32) -> bool {
    rwx(cred, mode, uid, gid) & 1 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u32 = 0x3f;

    fn user(uid: u32, gid: u32, gids: &[u32]) -> Cred {
        Cred {
            uid,
            gid,
            gids: gids.to_vec(),
        }
    }

    #[test]
    fn table() {
        let root = Cred::root();
        let alice = user(1000, 1000, &[]);
        let shadow_member = user(1001, 100, &[42]);
        let nobody = Cred::nobody();
        let (r, l, x) = (ACCESS3_READ, ACCESS3_LOOKUP, ACCESS3_EXECUTE);
        // (cred, mode, uid, gid, expected ACCESS reply for ALL requested)
        let cases: &[(&Cred, u32, u32, u32, u32)] = &[
            // /etc/shadow 0640 root:shadow(42)
            (&root, S_IFREG | 0o640, 0, 42, r),
            (&alice, S_IFREG | 0o640, 0, 42, 0),
            (&shadow_member, S_IFREG | 0o640, 0, 42, r),
            (&nobody, S_IFREG | 0o640, 0, 42, 0),
            // /sbin/init 0755 root:root: everyone executes
            (&root, S_IFREG | 0o755, 0, 0, r | x),
            (&alice, S_IFREG | 0o755, 0, 0, r | x),
            (&nobody, S_IFREG | 0o755, 0, 0, r | x),
            // setuid /usr/bin/passwd 04755
            (&alice, S_IFREG | 0o4755, 0, 0, r | x),
            (&root, S_IFREG | 0o4755, 0, 0, r | x),
            // setuid, group-only execute 04754 root:messagebus(106)
            (&alice, S_IFREG | 0o4754, 0, 106, r),
            (&user(107, 106, &[]), S_IFREG | 0o4754, 0, 106, r | x),
            // no x bit at all: not even root executes
            (&root, S_IFREG | 0o644, 0, 0, r),
            (&root, S_IFREG, 5, 5, r),
            // root executes when any x bit is set
            (&root, S_IFREG | 0o001, 5, 5, r | x),
            // owner bits win over group/other even when narrower
            (&alice, S_IFREG | 0o077, 1000, 1000, 0),
            // directories: x means LOOKUP, never EXECUTE
            (&alice, S_IFDIR | 0o755, 0, 0, r | l),
            (&alice, S_IFDIR | 0o711, 0, 0, l),
            (&alice, S_IFDIR | 0o700, 0, 0, 0),
            (&root, S_IFDIR, 0, 0, r | l),
            // sticky /tmp 01777
            (&nobody, S_IFDIR | 0o1777, 0, 0, r | l),
            // group via supplementary gids
            (&user(5, 5, &[9, 10]), S_IFDIR | 0o750, 0, 10, r | l),
            // a char device 0660 root:disk(6): only READ matters
            (&root, 0o020000 | 0o660, 0, 6, r),
            (&alice, 0o020000 | 0o660, 0, 6, 0),
        ];
        for (i, (cred, mode, uid, gid, want)) in cases.iter().enumerate() {
            assert_eq!(
                access3(cred, *mode, *uid, *gid, ALL),
                *want,
                "case {i}: {cred:?} mode {mode:o}"
            );
        }
    }

    #[test]
    fn requested_mask_and_no_writes() {
        let root = Cred::root();
        assert_eq!(
            access3(&root, S_IFREG | 0o777, 0, 0, ACCESS3_READ),
            ACCESS3_READ
        );
        let w = ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
        assert_eq!(access3(&root, S_IFDIR | 0o777, 0, 0, w), 0);
    }

    #[test]
    fn read_and_list_checks() {
        let alice = user(1000, 1000, &[]);
        assert!(!may_read_file(&alice, S_IFREG | 0o640, 0, 42));
        assert!(
            may_read_file(&alice, S_IFREG | 0o711, 0, 0),
            "exec implies read"
        );
        assert!(may_read_file(&Cred::root(), S_IFREG, 0, 0));
        assert!(!may_list(&alice, S_IFDIR | 0o711, 0, 0));
        assert!(may_search(&alice, S_IFDIR | 0o711, 0, 0));
        assert!(!may_search(&alice, S_IFDIR | 0o700, 0, 0));
    }
}
