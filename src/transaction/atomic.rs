//! Writing files under a `Root` so that a crash leaves either the old or the new content.
//!
//! A write goes to a temporary file in the same folder, is fsynced, renamed over the target,
//! and the folder is fsynced. No component of the target path may be a symlink: a symlinked
//! `/etc/sysctl.d/90-netprofile.conf` could point anywhere, so it is refused, not followed.
//! Also writes sysctl values, which are not regular files (no temp file, no rename).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::system::root::Root;

/// Refuses a path if it, or any folder between the root and it, is a symlink.
pub fn refuse_symlinks(root: &Root, rel: &str) -> Result<()> {
    let mut path = root.base().to_path_buf();
    for part in rel.trim_start_matches('/').split('/') {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::write(
                    &path,
                    std::io::Error::other(
                        "is a symlink; netprofile never writes through a symlink. Replace it \
                         with a regular file or folder",
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::read(&path, e)),
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::write(dir, e))
}

/// Atomically replaces `rel` with `content` and the given mode, creating folders as needed.
pub fn write_file(root: &Root, rel: &str, content: &str, mode: u32) -> Result<()> {
    refuse_symlinks(root, rel)?;
    let path = root.path(rel);
    let dir = path
        .parent()
        .ok_or_else(|| Error::write(&path, std::io::Error::other("has no parent folder")))?;
    fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.netprofile-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&tmp)?;
        // create_new honours the umask; set the mode exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::write(&path, e));
    }
    sync_dir(dir)
}

/// Removes `rel` if it exists (and syncs its folder).
pub fn remove_file(root: &Root, rel: &str) -> Result<()> {
    refuse_symlinks(root, rel)?;
    let path = root.path(rel);
    match fs::remove_file(&path) {
        Ok(()) => path.parent().map_or(Ok(()), sync_dir),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::write(&path, e)),
    }
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

/// Writes a sysctl value. An empty value is written as "\n": a zero-byte write never reaches
/// the kernel's handler, so it would silently leave the old value in place.
pub fn write_sysctl(root: &Root, rel: &str, value: &str) -> Result<()> {
    let path = root.path(rel);
    let mut file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::write(&path, e))?;
    // On a temporary root the "kernel file" is a regular file: replace its content. On procfs
    // the one write() below goes to the kernel's handler, which takes the whole value.
    if !is_procfs(&path) {
        file.set_len(0).map_err(|e| Error::write(&path, e))?;
    }
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| Error::write(&path, e))
}

/// Whether a path lives on procfs (where files report size 0 and must not be truncated).
fn is_procfs(path: &Path) -> bool {
    rustix::fs::statfs(path)
        .map(|s| s.f_type == 0x9fa0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

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
