//! A sandbox's runsc root (`<root>/<namespace>/<sandbox id>`) and its
//! removal: what runsc leaves after its delete, and the mark that tells a
//! new container of the same id that the old one's removal is under way.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
};

use crate::options::Options;

/// runsc's `--root` for a sandbox: `<root>/<namespace>/<sandbox id>`.
///
/// runsc (0.0~20221219 and 0.0~20240729) resolves a container id by prefix
/// within its root: with `web10` present `runsc start web1` is "ambiguous",
/// and with only `web10` present `runsc delete web1` deletes `web10`. A
/// sandbox's containers must share a root (a member finds its sandbox
/// there), so each sandbox gets one of its own: ids of different sandboxes
/// can never be mistaken for each other.
pub fn sandbox_root(options: &Options, namespace: &str, sandbox_id: &str) -> String {
    Path::new(&options.runsc_root(namespace))
        .join(sandbox_id)
        .to_string_lossy()
        .into_owned()
}

/// Left in a sandbox's runsc root by the shim that removes it after the
/// container's Delete was answered; holds that shim's pid and goes with
/// the root, last. A new container of the same id waits for it.
pub const CLEANUP_MARK: &str = ".shim-cleanup";

/// Marks `root` as being removed by this shim ([`CLEANUP_MARK`]).
pub fn mark_cleanup(root: &str) {
    let mark = Path::new(root).join(CLEANUP_MARK);
    if let Err(e) = std::fs::write(&mark, std::process::id().to_string()) {
        log::warn!("write {}: {e}", mark.display());
    }
}

/// Whether a live shim (this one included) is still removing `root`.
pub fn cleanup_pending(root: &str) -> bool {
    std::fs::read_to_string(Path::new(root).join(CLEANUP_MARK))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id() || crate::host::process_alive(pid))
}

/// Removes a sandbox's runsc root with whatever runsc left in it (a
/// killed `runsc create` leaves its lock file). Only for a sandbox that is
/// gone: every container in that root belonged to it. Blocking. Whether
/// the root is gone.
///
/// The root is first moved aside, in one step with its [`CLEANUP_MARK`]:
/// a new container of the same id (it waits for the mark) may come at
/// once, and its files are not ours to remove. A member's runsc call may
/// still be under way when its sandbox dies (containerd deletes the
/// members and the sandbox concurrently); once the root is moved, such a
/// call finds none and creates nothing, and what one created just before
/// goes with the root.
pub fn remove_sandbox_root(root: &str) -> bool {
    let root = Path::new(root);
    let name = root.file_name().unwrap_or_default().to_string_lossy();
    let aside = root.with_file_name(format!(".{name}.removing-{}", std::process::id()));
    let target = match std::fs::rename(root, &aside) {
        Ok(()) => aside,
        Err(e) if e.kind() == ErrorKind::NotFound => return true,
        Err(e) => {
            log::warn!("move runsc root {} aside: {e}", root.display());
            root.to_path_buf()
        }
    };
    for _ in 0..ROOT_TRIES {
        match std::fs::remove_dir_all(&target) {
            Ok(()) => return true,
            Err(e) if e.kind() == ErrorKind::NotFound => return true,
            // A call under way as the root moved added to it.
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                log::warn!("remove runsc root {}: {e}", target.display());
                return false;
            }
        }
    }
    log::warn!("remove runsc root {}: not empty", target.display());
    false
}

/// How often [`remove_sandbox_root`] empties a root that is refilled.
const ROOT_TRIES: usize = 10;

/// Removes what runsc leaves after its delete, off the runtime: the
/// container's cgroup where runsc left it empty, then a sandbox's runsc
/// root (`root`, for a sandbox only). The root goes last: its
/// [`CLEANUP_MARK`] tells a new container of the same id when nothing of
/// the old one is left.
pub async fn remove_leftovers(root: Option<String>, cgroups: Option<PathBuf>) {
    let _ = crate::blocking::blocking(move || {
        if let Some(p) = cgroups {
            crate::cgroup::remove_leftover(&p);
        }
        if let Some(root) = root {
            remove_sandbox_root(&root);
        }
        Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marked root of 200 state files.
    fn full_root(dir: &Path) -> PathBuf {
        let root = dir.join("sandbox");
        std::fs::create_dir(&root).unwrap();
        mark_cleanup(&root.to_string_lossy());
        for i in 0..200 {
            std::fs::write(root.join(format!("c{i}_sandbox:s.state")), "{}").unwrap();
        }
        root
    }

    /// What is left beside the root: nothing, once it is removed.
    fn beside(dir: &Path) -> Vec<std::ffi::OsString> {
        let entries = std::fs::read_dir(dir).unwrap().flatten();
        entries.map(|e| e.file_name()).collect()
    }

    #[test]
    fn a_root_refilled_while_it_is_removed_still_goes() {
        let dir = tempfile::tempdir().unwrap();
        let root = full_root(dir.path());
        // Members' runsc calls, one after another: each creates its lock
        // file, unless the root is gone by then.
        let refill = {
            let root = root.clone();
            std::thread::spawn(move || {
                for n in 0..100 {
                    let _ = std::fs::write(root.join(format!("m{n}_sandbox:s.lock")), "");
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            })
        };
        assert!(remove_sandbox_root(&root.to_string_lossy()));
        refill.join().unwrap();
        assert_eq!(beside(dir.path()), Vec::<std::ffi::OsString>::new());
    }

    #[test]
    fn a_new_container_of_the_same_id_keeps_what_it_made() {
        let dir = tempfile::tempdir().unwrap();
        let root = full_root(dir.path());
        // It waits for the mark, then makes the root again (runsc create).
        let new = root.join("c0_sandbox:c0.state");
        let next = {
            let (root, new) = (root.clone(), new.clone());
            std::thread::spawn(move || {
                let mut seen_without_mark = Vec::new();
                while root.join(CLEANUP_MARK).exists() {}
                let left = std::fs::read_dir(&root).into_iter().flatten().flatten();
                seen_without_mark.extend(left.map(|e| e.file_name()));
                std::fs::create_dir_all(&root).unwrap();
                std::fs::write(&new, "{}").unwrap();
                seen_without_mark
            })
        };
        assert!(remove_sandbox_root(&root.to_string_lossy()));
        // Nothing of the old one was there once the mark was gone.
        assert_eq!(next.join().unwrap(), Vec::<std::ffi::OsString>::new());
        assert!(new.exists());
        assert_eq!(
            beside(dir.path()),
            vec![std::ffi::OsString::from("sandbox")]
        );
    }

    #[test]
    fn a_missing_root_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(remove_sandbox_root(
            &dir.path().join("gone").to_string_lossy()
        ));
    }
}
