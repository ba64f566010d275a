//! Rootfs mounts from `CreateTaskRequest.rootfs`, through containerd-shim's
//! mount helpers.

use containerd_shim::protos::types::mount::Mount;

use crate::{
    bundle::Bundle,
    error::{Error, Result},
};

/// Mounts every rootfs mount on `<bundle>/rootfs`; on failure undoes what was
/// mounted.
pub fn mount_rootfs(bundle: &Bundle, mounts: &[Mount]) -> Result<bool> {
    if mounts.is_empty() {
        return Ok(false);
    }
    let target = bundle.rootfs();
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

/// Removes runsc's rootfs overlay filestores (`.gvisor.filestore.<id>`,
/// made when a user opts into `overlay2 = "root:self"`) from
/// `<bundle>/rootfs` while it is still mounted, so that a snapshot committed
/// later never carries one.
pub fn remove_filestores(bundle: &Bundle) {
    let rootfs = bundle.rootfs();
    let Ok(rd) = std::fs::read_dir(&rootfs) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(".gvisor.filestore.")
        {
            if let Err(err) = std::fs::remove_file(e.path()) {
                log::warn!("remove {}: {err}", e.path().display());
            }
        }
    }
}

/// Unmounts everything at or below `<bundle>/rootfs`; failures are logged.
pub fn unmount_rootfs(bundle: &Bundle) {
    let target = bundle.rootfs();
    let Some(t) = target.to_str() else {
        return;
    };
    if let Err(e) = containerd_shim::mount::umount_recursive(Some(t), libc::MNT_DETACH) {
        log::warn!("unmount {t}: {e}");
    }
}
