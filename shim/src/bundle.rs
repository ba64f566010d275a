//! A container's bundle directory and the names of the files in it: the
//! ones containerd writes (`config.json`, `rootfs`), the ones the shim
//! keeps there for containerd and for its own `delete` action, and the pid
//! files runsc writes for it. runsc's own per-call logs are the runsc
//! crate's (`GlobalOpts::log_per_call`).

use std::path::{Path, PathBuf};

/// A bundle directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle(PathBuf);

impl Bundle {
    /// The bundle at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Bundle(path.into())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The OCI spec containerd wrote, which the shim rewrites for runsc.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.json")
    }

    /// Where containerd's rootfs is (mounted here by the shim if it asked).
    pub fn rootfs(&self) -> PathBuf {
        self.0.join("rootfs")
    }

    /// The shim's persisted state ([`crate::state::State`]).
    pub fn state_file(&self) -> PathBuf {
        self.0.join("runsc-shim.json")
    }

    /// The serving shim's pid, which containerd reads.
    pub fn shim_pid_file(&self) -> PathBuf {
        self.0.join("shim.pid")
    }

    /// The serving shim's socket address, which containerd reads.
    pub fn address_file(&self) -> PathBuf {
        self.0.join("address")
    }

    /// Where a server that died before serving left its reason.
    pub fn server_stderr(&self) -> PathBuf {
        self.0.join("shim-server.err")
    }

    /// The empty read-only file bound over masked files.
    pub fn masked_file(&self) -> PathBuf {
        self.0.join("masked-file")
    }

    /// Where runsc writes the sandbox's pid at create and restore.
    pub fn init_pid_file(&self) -> PathBuf {
        self.0.join("init.pid")
    }

    /// Where `runsc exec` writes an exec's host pid and its pid in the
    /// sandbox.
    pub fn exec_pid_files(&self, exec_id: &str) -> (PathBuf, PathBuf) {
        (
            self.0.join(format!("{exec_id}.pid")),
            self.0.join(format!("{exec_id}-internal.pid")),
        )
    }

    /// Records this process as the bundle's shim (a pod's shim serves
    /// containers of several bundles).
    pub fn write_shim_pid(&self) {
        let path = self.shim_pid_file();
        if let Err(e) = std::fs::write(&path, std::process::id().to_string()) {
            log::warn!("write {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_containerd_and_runsc_expect() {
        let b = Bundle::new("/b");
        assert_eq!(b.config(), Path::new("/b/config.json"));
        assert_eq!(b.rootfs(), Path::new("/b/rootfs"));
        assert_eq!(b.shim_pid_file(), Path::new("/b/shim.pid"));
        assert_eq!(b.address_file(), Path::new("/b/address"));
        assert_eq!(b.init_pid_file(), Path::new("/b/init.pid"));
        assert_eq!(
            b.exec_pid_files("e1"),
            ("/b/e1.pid".into(), "/b/e1-internal.pid".into())
        );
    }
}
