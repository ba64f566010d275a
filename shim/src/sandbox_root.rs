//! A sandbox's runsc root (`<root>/<namespace>/<sandbox id>`) and its
//! removal: what runsc leaves after its delete, and the mark that tells a
//! new container of the same id that the old one's removal is under way.

use std::path::{Path, PathBuf};

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
/// A member's runsc call may still be under way when its sandbox dies
/// (containerd deletes the members and the sandbox concurrently): it
/// creates its lock file while the root is emptied, and the root is then
/// "not empty". Once the root is gone such a call fails and creates
/// nothing, so trying again a few times removes it for good.
pub fn remove_sandbox_root(root: &str) -> bool {
    for _ in 0..ROOT_TRIES {
        match std::fs::remove_dir_all(root) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => {
                log::warn!("remove runsc root {root}: {e}");
                return false;
            }
        }
    }
    log::warn!("remove runsc root {root}: still not empty after {ROOT_TRIES} tries");
    false
}

/// How often [`remove_sandbox_root`] empties a root that runsc refills.
const ROOT_TRIES: usize = 50;

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
            let _ = remove_sandbox_root(&root);
        }
        Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_refilled_while_it_is_emptied_still_goes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sandbox");
        std::fs::create_dir(&root).unwrap();
        for i in 0..200 {
            std::fs::write(root.join(format!("c{i}_sandbox:s.state")), "{}").unwrap();
        }
        // As a member's runsc does: it creates its lock file until the
        // root is gone, and then fails.
        let refill = {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while std::fs::write(root.join(format!("m{n}_sandbox:s.lock")), "").is_ok() {
                    n += 1;
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            })
        };
        assert!(remove_sandbox_root(&root.to_string_lossy()));
        refill.join().unwrap();
        assert!(!root.exists());
    }

    #[test]
    fn a_missing_root_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(remove_sandbox_root(
            &dir.path().join("gone").to_string_lossy()
        ));
    }
}
