//! Rootfs mounts from `CreateTaskRequest.rootfs`, through containerd-shim's
//! mount helpers.

use std::path::Path;

use containerd_shim::protos::types::mount::Mount;

use crate::error::{Error, Result};

/// Mounts every rootfs mount on `<bundle>/rootfs`; on failure undoes what was
/// mounted.
pub fn mount_rootfs(bundle: &Path, mounts: &[Mount]) -> Result<bool> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.join("rootfs");
    std::fs::create_dir_all(&target)
        .map_err(|e| Error::os(format!("create {}", target.display()), e))?;
    for m in mounts {
        let res = containerd_shim::mount::mount_rootfs(
            none_if_empty(&m.type_),
            none_if_empty(&m.source),
            &m.options,
            &target,
        );
        if let Err(e) = res {
            unmount_rootfs(bundle);
            return Err(Error::Other(format!(
                "mount {} ({}) on {}: {e}",
                m.source,
                m.type_,
                target.display()
            )));
        }
    }
    Ok(true)
}

fn none_if_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Unmounts everything at or below `<bundle>/rootfs`; failures are logged.
pub fn unmount_rootfs(bundle: &Path) {
    let target = bundle.join("rootfs");
    let Some(t) = target.to_str() else {
        return;
    };
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(t), libc::MNT_DETACH) {
        log::warn!("unmount {t}: {e}");
    }
}
