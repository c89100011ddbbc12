//! Writing files under a `Root` so that a crash leaves either the old or the new content.
//!
//! A write goes to a temporary file in the same folder, is fsynced, renamed over the target,
//! and the folder is fsynced. No component of the target path may be a symlink: a symlinked
//! `/etc/sysctl.d/90-netprofile.conf` could point anywhere, so it is refused, not followed.
//! Also writes sysctl values, which are not regular files (no temp file, no rename).

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::{Error, Result};
use crate::system::root::Root;
use crate::system::root::beneath;

/// The temporary name a write goes through: `.NAME.netprofile-PID` next to the target.
#[must_use]
pub fn temp_name(name: &str) -> String {
    format!(".{name}.netprofile-{}", std::process::id())
}

/// Whether `name` is a temporary file of `temp_name`'s shape (any pid).
#[must_use]
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".netprofile-").is_some_and(|(head, pid)| {
            head.len() > 1 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

/// Refuses a path if it, or any folder between the root and it, is a symlink.
pub fn refuse_symlinks(root: &Root, rel: &str) -> Result<()> {
    let path = root.path(rel);
    let (dir, name) = beneath::split(rel).map_err(|e| Error::write(&path, e))?;
    match beneath::open_dir(root, dir, false) {
        Ok(fd) => {
            if beneath::is_symlink_at(&fd, name).map_err(|e| Error::read(&path, e))? {
                return Err(Error::write(&path, beneath::refused(rel)));
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::write(&path, e)),
    }
}

fn sync_dir(dirfd: &OwnedFd, rel: &str) -> Result<()> {
    rustix::fs::fsync(dirfd).map_err(|e| Error::write(Root::display(rel), e.into()))
}

/// Atomically replaces `rel` with `content` and the given mode, creating folders as needed
/// (0755, or 0700 for netprofile's state; see `beneath::dir_mode`). Every folder and the file
/// are opened relative to the folder before them with O_NOFOLLOW: a symlink anywhere is refused.
pub fn write_file(root: &Root, rel: &str, content: &str, mode: u32) -> Result<()> {
    let path = root.path(rel);
    let (dir, name) = beneath::split(rel).map_err(|e| Error::write(&path, e))?;
    let dirfd = beneath::open_dir(root, dir, true).map_err(|e| Error::write(&path, e))?;
    if beneath::is_symlink_at(&dirfd, name).map_err(|e| Error::read(&path, e))? {
        return Err(Error::write(&path, beneath::refused(rel)));
    }
    let tmp = temp_name(name);
    let result = (|| -> std::io::Result<()> {
        let fd = rustix::fs::openat(
            &dirfd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        // O_CREAT honours the umask; set the mode exactly.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
        let mut file = File::from(fd);
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        rustix::fs::renameat(&dirfd, tmp.as_str(), &dirfd, name)?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = rustix::fs::unlinkat(&dirfd, tmp.as_str(), AtFlags::empty());
        return Err(Error::write(&path, e));
    }
    sync_dir(&dirfd, dir)
}

/// Removes `rel` if it exists (and syncs its folder), never through a symlinked folder.
pub fn remove_file(root: &Root, rel: &str) -> Result<()> {
    let path = root.path(rel);
    let (dir, name) = beneath::split(rel).map_err(|e| Error::write(&path, e))?;
    let dirfd = match beneath::open_dir(root, dir, false) {
        Ok(fd) => fd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::write(&path, e)),
    };
    if beneath::is_symlink_at(&dirfd, name).map_err(|e| Error::read(&path, e))? {
        return Err(Error::write(&path, beneath::refused(rel)));
    }
    match rustix::fs::unlinkat(&dirfd, name, AtFlags::empty()) {
        Ok(()) => sync_dir(&dirfd, dir),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::write(&path, e.into())),
    }
}

/// Removes the `.NAME.netprofile-PID` temp files a killed run left in `rel_dir`. Called by a
/// writer holding the lock, so no live netprofile is writing one. Returns how many it removed.
pub fn remove_leftovers(root: &Root, rel_dir: &str) -> Result<usize> {
    let dirfd = match beneath::open_dir(root, rel_dir, false) {
        Ok(fd) => fd,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(0);
        }
        Err(e) => return Err(Error::read(root.path(rel_dir), e)),
    };
    let mut dir = rustix::fs::Dir::read_from(&dirfd)
        .map_err(|e| Error::read(root.path(rel_dir), e.into()))?;
    let mut stale = Vec::new();
    while let Some(entry) = dir.read() {
        let Ok(entry) = entry else { break };
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temp_name(&name) {
            stale.push(name);
        }
    }
    for name in &stale {
        let _ = rustix::fs::unlinkat(&dirfd, name.as_str(), AtFlags::empty());
    }
    if !stale.is_empty() {
        sync_dir(&dirfd, rel_dir)?;
    }
    Ok(stale.len())
}

/// Writes `content` (or the file's removal, for `None`) with the mode for its location:
/// 0644 under etc/, 0600 for netprofile's own state.
pub fn put(root: &Root, rel: &str, content: Option<&str>) -> Result<()> {
    match content {
        Some(text) => {
            let mode = if rel.starts_with("etc/") {
                0o644
            } else {
                0o600
            };
            write_file(root, rel, text, mode)
        }
        None => remove_file(root, rel),
    }
}

/// Whether the key file `rel` is the kernel's (procfs), not a regular file of a temporary root
/// (which takes any text). Only the kernel can refuse a value.
pub fn sysctl_is_kernel(root: &Root, rel: &str) -> Result<bool> {
    let fd = beneath::open_file(root, rel, OFlags::RDONLY | OFlags::NONBLOCK, 0)
        .map_err(|e| Error::read(root.path(rel), e))?;
    Ok(beneath::is_procfs(&fd))
}

/// Writes a sysctl value. An empty value is written as "\n": a zero-byte write never reaches
/// the kernel's handler, so it would silently leave the old value in place. The key's file is
/// opened below `proc/sys` without following any symlink.
pub fn write_sysctl(root: &Root, rel: &str, value: &str) -> Result<()> {
    let path = root.path(rel);
    let fd =
        beneath::open_file(root, rel, OFlags::WRONLY, 0).map_err(|e| Error::write(&path, e))?;
    let procfs = beneath::is_procfs(&fd);
    let mut file = File::from(fd);
    // On a temporary root the "kernel file" is a regular file: replace its content. On procfs
    // the one write() below goes to the kernel's handler, which takes the whole value.
    if !procfs {
        file.set_len(0).map_err(|e| Error::write(&path, e))?;
    }
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| Error::write(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_sets_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        write_file(&root, "etc/sysctl.d/x.conf", "a\n", 0o644).unwrap();
        write_file(&root, "etc/sysctl.d/x.conf", "b\n", 0o644).unwrap();
        let path = dir.path().join("etc/sysctl.d/x.conf");
        assert_eq!(fs::read_to_string(&path).unwrap(), "b\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file left behind");
    }

    #[test]
    fn symlinks_are_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(dir.path().join("etc/sysctl.d")).unwrap();
        fs::write(dir.path().join("victim"), "keep\n").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("victim"),
            dir.path().join("etc/sysctl.d/x.conf"),
        )
        .unwrap();
        let err = write_file(&root, "etc/sysctl.d/x.conf", "evil\n", 0o644).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert_eq!(
            fs::read_to_string(dir.path().join("victim")).unwrap(),
            "keep\n"
        );
        // A symlinked folder is refused too.
        fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("elsewhere"),
            dir.path().join("etc/security"),
        )
        .unwrap();
        assert!(write_file(&root, "etc/security/limits.d/x.conf", "x", 0o644).is_err());
        assert!(!dir.path().join("elsewhere/limits.d").exists());
    }

    #[test]
    fn sysctl_write_replaces_fake_file_and_writes_newline_for_empty() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        fs::create_dir_all(dir.path().join("proc/sys/net/ipv4")).unwrap();
        let rel = "proc/sys/net/ipv4/ip_local_reserved_ports";
        fs::write(dir.path().join(rel), "8080,9000-9010\n").unwrap();
        write_sysctl(&root, rel, "").unwrap();
        assert_eq!(fs::read_to_string(dir.path().join(rel)).unwrap(), "\n");
    }
}
