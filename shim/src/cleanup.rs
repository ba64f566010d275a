//! A sandbox's last cleanup, after its Delete answered: runsc's force
//! delete, then the sandbox's runsc root and cgroup. It runs in a process
//! of its own (this binary again, `-runsc-shim-cleanup`) that the shim
//! waits for but that outlives it: containerd runs `shim delete` as soon
//! as the shim disconnects, sees the server alive and leaves the cleanup
//! to it, so a shim SIGKILLed in those moments would otherwise leave the
//! root and the cgroup behind (seen in the soak).

use std::{
    ffi::OsString,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
};

use runsc::ProcessMonitor;
use serde::{Deserialize, Serialize};

/// The flag that makes this binary run a cleanup instead of a shim.
pub const FLAG: &str = "-runsc-shim-cleanup";

/// Where a sandbox's last cleanup runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupIn {
    /// A process of its own: this binary again with [`FLAG`], which must
    /// therefore be the shim's binary.
    OwnProcess,
    /// This process, off the runtime thread: for a service hosted by some
    /// other binary (the service tests), which would not know [`FLAG`].
    ThisProcess,
}

/// What is left of a sandbox once its Delete answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leftovers {
    /// `runsc ... delete --force <id>`: program, then arguments.
    pub delete: Vec<OsString>,
    /// The sandbox's runsc root.
    pub root: String,
    /// The container's cgroup, as the spec names it.
    pub cgroups: Option<PathBuf>,
}

impl Leftovers {
    /// Removes them, here and now (blocking): the force delete, then the
    /// root and the cgroup. Whether runsc's delete succeeded and the root
    /// is gone.
    pub fn remove(&self) -> bool {
        let deleted = match self.delete.split_first() {
            Some((program, args)) => Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            None => false,
        };
        if let Some(p) = &self.cgroups {
            crate::cgroup::remove_leftover(p);
        }
        crate::sandbox_root::remove_sandbox_root(&self.root) && deleted
    }

    /// Removes them where `place` says, and waits: in a process that
    /// outlives this one, or in this process off the runtime thread.
    pub async fn remove_at(self, monitor: &Arc<dyn ProcessMonitor>, place: CleanupIn) -> bool {
        if place == CleanupIn::ThisProcess {
            return crate::blocking::blocking(move || Ok(self.remove()))
                .await
                .unwrap_or(false);
        }
        let Ok(json) = serde_json::to_string(&self) else {
            return false;
        };
        // The running binary even if its file was replaced since.
        let mut cmd = Command::new("/proc/self/exe");
        cmd.args([FLAG, &json])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in the shim's process group, and no parent-death signal.
            .process_group(0);
        match monitor.start(&mut cmd).await {
            Ok((child, exit)) => monitor
                .wait(&child, exit)
                .await
                .is_ok_and(|e| e.status == 0),
            Err(e) => {
                log::warn!("cleanup of {}: {e}", self.root);
                false
            }
        }
    }
}

/// Runs the cleanup this command line asks for, if it asks for one: the
/// exit code.
pub fn run_if_asked() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != FLAG {
        return None;
    }
    let leftovers: Option<Leftovers> = args
        .next()
        .and_then(|j| serde_json::from_str(&j.to_string_lossy()).ok());
    Some(match leftovers {
        Some(l) if l.remove() => 0,
        Some(_) => 1,
        None => 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_cross_the_command_line_whole() {
        let l = Leftovers {
            delete: vec!["runsc".into(), "--root=/r x".into(), "delete".into()],
            root: "/r x".into(),
            cgroups: Some("/stress/c1".into()),
        };
        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Leftovers>(&json).unwrap(), l);
    }

    #[test]
    fn a_cleanup_removes_the_root_even_when_runsc_fails() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("sandbox");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("c1_sandbox:c1.state"), "{}").unwrap();
        let l = Leftovers {
            delete: vec!["false".into()],
            root: root.to_string_lossy().into_owned(),
            cgroups: None,
        };
        assert!(!l.remove());
        assert!(!root.exists());
    }
}
