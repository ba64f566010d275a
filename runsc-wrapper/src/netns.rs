//! Working around runsc's "am I in the root network namespace?" check.
//!
//! runsc (0.0~20221219 and 0.0~20240729) refuses to set up networking with
//! "cannot run with network enabled in root network namespace" when
//! `access("/proc/sys/net/core/rmem_default")` succeeds after it joined the
//! container's network namespace. Current kernels show that file in every
//! network namespace, so the check fails for every pod with a namespace of
//! its own. The check is a plain path lookup in the mount namespace of the
//! runsc process that sets up the interfaces (`runsc start` of a root
//! container, `runsc run`, `runsc restore`). [`NetnsCheck::MaskProcSysNet`]
//! runs that one process in a private mount namespace where a read-only,
//! empty tmpfs covers `/proc/sys/net` (covering only `/proc/sys/net/core`
//! is not enough: those entries belong to the joined namespace), so the
//! check passes; nothing else in that process reads `/proc/sys/net`, and no
//! other process sees the mount. Callers use it only for a namespace that
//! is not the host's, where the check is wrong.

use std::{ffi::CString, os::unix::process::CommandExt, process::Command};

/// How the runsc process that sets up networking sees `/proc/sys/net`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum NetnsCheck {
    /// As the host has it.
    #[default]
    AsIs,
    /// Hidden under an empty read-only tmpfs in a private mount namespace.
    MaskProcSysNet,
}

impl NetnsCheck {
    /// Sets `cmd` up accordingly.
    pub(crate) fn apply(self, cmd: &mut Command) {
        if self == NetnsCheck::AsIs {
            return;
        }
        // Built before fork: after it only async-signal-safe calls are allowed.
        let (Ok(root), Ok(target), Ok(tmpfs)) = (
            CString::new("/"),
            CString::new("/proc/sys/net"),
            CString::new("tmpfs"),
        ) else {
            return;
        };
        // SAFETY: the closure makes raw syscalls only (unshare, mount) on
        // C strings allocated before the fork; it touches no locks or heap.
        unsafe {
            cmd.pre_exec(move || {
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Keep the mount below out of the host's mount namespace.
                let private = libc::MS_REC | libc::MS_PRIVATE;
                let none = std::ptr::null();
                if libc::mount(none, root.as_ptr(), none, private, none as *const _) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                if libc::mount(
                    tmpfs.as_ptr(),
                    target.as_ptr(),
                    tmpfs.as_ptr(),
                    flags,
                    none as *const _,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_only_in_the_child() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "test -e /proc/sys/net/core/rmem_default && echo seen || echo hidden",
        ]);
        NetnsCheck::MaskProcSysNet.apply(&mut cmd);
        let out = cmd.output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hidden");
        // The host still sees it.
        assert!(std::path::Path::new("/proc/sys/net/core/rmem_default").exists());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "test -e /proc/sys/net/core/rmem_default && echo seen"]);
        NetnsCheck::AsIs.apply(&mut cmd);
        assert_eq!(
            String::from_utf8_lossy(&cmd.output().unwrap().stdout).trim(),
            "seen"
        );
    }
}
