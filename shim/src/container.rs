//! What the shim knows about each container, so it answers State, Pids,
//! Kill and Wait without asking runsc (every runsc call is a Go binary
//! start). A container's processes and their state machine are in
//! [`crate::process`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
};

use runsc::Runsc;

use crate::{
    blocking::blocking,
    bundle::Bundle,
    cgroup::HostCgroup,
    error::{Error, Result},
    portforward::Forwarder,
    process::Process,
};

/// A container's place in its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Its process is the sandbox: a container on its own, or a pod's
    /// sandbox (pause) container.
    Sandbox,
    /// A pod member, run in sandbox `sandbox_id` by `runsc create`/`start`
    /// of a sub-container.
    Member {
        /// The pod's sandbox container.
        sandbox_id: String,
    },
}

impl Role {
    /// Whether this is a pod member.
    pub fn is_member(&self) -> bool {
        matches!(self, Role::Member { .. })
    }
}

/// An exit of the init that is kept instead of reported while a
/// checkpoint restores the container in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Parking {
    /// Exits are reported.
    #[default]
    Off,
    /// The next exit is kept.
    Waiting,
    /// This exit was kept.
    Parked(u32),
}

/// A container served by this shim.
pub struct Container {
    /// Container id.
    pub id: String,
    /// Its bundle.
    pub bundle: Bundle,
    /// runsc client with this container's flags.
    pub runsc: Runsc,
    /// Sandbox or pod member.
    pub role: Role,
    /// runsc's `--root` for this container's sandbox.
    pub runsc_root: String,
    /// How the runsc call that sets up the sandbox's network sees
    /// `/proc/sys/net`.
    pub netns_check: runsc::NetnsCheck,
    /// The init process.
    pub init: Arc<Process>,
    execs: Mutex<HashMap<String, Arc<Process>>>,
    /// Whether the shim mounted `<bundle>/rootfs`.
    pub rootfs_mounted: bool,
    /// Checkpoint image to restore from at Start.
    pub restore_from: Option<String>,
    cgroup: OnceLock<HostCgroup>,
    /// The spec's `cgroupsPath`: removed after runsc's delete if runsc
    /// left it.
    pub cgroups_path: Option<std::path::PathBuf>,
    /// The options it was created with.
    pub options: crate::options::Options,
    parking: Mutex<Parking>,
    /// A pod sandbox's network namespace, where ports are forwarded.
    pub pod_netns: Option<std::path::PathBuf>,
    forwarder: Mutex<Option<Forwarder>>,
}

/// What [`Container::new`] takes: everything fixed at Create.
pub struct ContainerParts {
    /// Container id.
    pub id: String,
    /// Its bundle.
    pub bundle: Bundle,
    /// runsc client with this container's flags.
    pub runsc: Runsc,
    /// Sandbox or pod member.
    pub role: Role,
    /// runsc's `--root`.
    pub runsc_root: String,
    /// See [`Container::netns_check`].
    pub netns_check: runsc::NetnsCheck,
    /// The init process.
    pub init: Arc<Process>,
    /// Whether the shim mounted `<bundle>/rootfs`.
    pub rootfs_mounted: bool,
    /// Checkpoint image to restore from at Start.
    pub restore_from: Option<String>,
    /// The spec's `cgroupsPath`.
    pub cgroups_path: Option<std::path::PathBuf>,
    /// The options it was created with.
    pub options: crate::options::Options,
    /// See [`Container::pod_netns`].
    pub pod_netns: Option<std::path::PathBuf>,
}

impl Container {
    /// A container with no execs yet.
    pub fn new(p: ContainerParts) -> Self {
        Container {
            id: p.id,
            bundle: p.bundle,
            runsc: p.runsc,
            role: p.role,
            runsc_root: p.runsc_root,
            netns_check: p.netns_check,
            init: p.init,
            execs: Mutex::default(),
            rootfs_mounted: p.rootfs_mounted,
            restore_from: p.restore_from,
            cgroup: OnceLock::new(),
            cgroups_path: p.cgroups_path,
            options: p.options,
            parking: Mutex::default(),
            pod_netns: p.pod_netns,
            forwarder: Mutex::default(),
        }
    }

    /// The pod's sandbox id (the container's own for a sandbox).
    pub fn sandbox_id(&self) -> &str {
        match &self.role {
            Role::Sandbox => &self.id,
            Role::Member { sandbox_id } => sandbox_id,
        }
    }

    /// Whether this is a pod member.
    pub fn is_member(&self) -> bool {
        self.role.is_member()
    }

    /// Locks the exec table.
    pub fn execs(&self) -> MutexGuard<'_, HashMap<String, Arc<Process>>> {
        self.execs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The init process (empty exec id) or the named exec.
    pub fn process(&self, exec_id: &str) -> Result<Arc<Process>> {
        if exec_id.is_empty() {
            return Ok(self.init.clone());
        }
        self.execs().get(exec_id).cloned().ok_or_else(|| {
            Error::NotFound(format!("exec {exec_id} not found in container {}", self.id))
        })
    }

    fn parking(&self) -> MutexGuard<'_, Parking> {
        self.parking.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts keeping the init's next exit instead of reporting it.
    pub fn park_exit(&self) {
        *self.parking() = Parking::Waiting;
    }

    /// Parks `status` if parking; false means report it as usual.
    pub fn try_park(&self, status: u32) -> bool {
        let mut p = self.parking();
        match *p {
            Parking::Off => false,
            Parking::Waiting | Parking::Parked(_) => {
                *p = Parking::Parked(status);
                true
            }
        }
    }

    /// Whether an exit is parked.
    pub fn exit_parked(&self) -> bool {
        matches!(*self.parking(), Parking::Parked(_))
    }

    /// Stops parking; returns the parked exit, if any.
    pub fn unpark_exit(&self) -> Option<u32> {
        match std::mem::take(&mut *self.parking()) {
            Parking::Parked(status) => Some(status),
            Parking::Off | Parking::Waiting => None,
        }
    }

    /// Keeps the sandbox's port forwarding.
    pub fn set_forwarder(&self, f: Forwarder) {
        *self.forwarder.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Takes the sandbox's port forwarding, to stop it.
    pub fn take_forwarder(&self) -> Option<Forwarder> {
        self.forwarder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The sandbox's host cgroup, once found.
    pub fn cgroup(&self) -> Option<&HostCgroup> {
        self.cgroup.get()
    }

    /// Finds the host cgroup of the sandbox pid (once), off the runtime.
    pub async fn find_cgroup(self: &Arc<Self>, pid: u32) {
        if pid == 0 || self.cgroup.get().is_some() {
            return;
        }
        match blocking(move || HostCgroup::for_pid(pid)).await {
            Ok(cg) => {
                let _ = self.cgroup.set(cg);
            }
            Err(e) => log::warn!("host cgroup of id={} pid={pid}: {e}", self.id),
        }
    }

    /// The sandbox cgroup's OOM kill count now (None without a cgroup),
    /// read off the runtime.
    pub async fn oom_kills(self: &Arc<Self>) -> Option<u64> {
        self.cgroup.get()?;
        let c = self.clone();
        blocking(move || Ok(c.cgroup.get().map(|cg| cg.oom_kills())))
            .await
            .ok()
            .flatten()
    }
}

/// OOM kills already reported per sandbox: the cgroup is the sandbox's, so
/// one kill is reported for one exit only, and only for a process that
/// started before it.
#[derive(Debug, Default)]
pub struct OomLedger {
    reported: Mutex<HashMap<String, u64>>,
}

impl OomLedger {
    /// Whether an exit with `status` of a process that started at OOM count
    /// `baseline` was an OOM kill, given the count `now`; marks it reported.
    /// When the kill took the sandbox itself (`sandbox_gone`), every
    /// container died of it, and each exit that follows it is an OOM kill.
    pub fn take(
        &self,
        sandbox: &str,
        baseline: Option<u64>,
        now: Option<u64>,
        status: u32,
        sandbox_gone: bool,
    ) -> bool {
        let (Some(baseline), Some(now)) = (baseline, now) else {
            return false;
        };
        if status == 0 || now <= baseline {
            return false;
        }
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let seen = reported.entry(sandbox.to_string()).or_insert(0);
        if now <= *seen && !sandbox_gone {
            return false;
        }
        *seen = now;
        true
    }

    /// Forgets a sandbox that is gone.
    pub fn forget(&self, sandbox: &str) {
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sandbox);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_is_reported_once_and_only_after_start() {
        let l = OomLedger::default();
        // An OOM before this process started is not its own.
        assert!(!l.take("pod", Some(2), Some(2), 137, false));
        // A clean exit is never an OOM kill.
        assert!(!l.take("pod", Some(2), Some(3), 0, false));
        assert!(l.take("pod", Some(2), Some(3), 137, false));
        // The same kill is not reported for a second exit...
        assert!(!l.take("pod", Some(1), Some(3), 137, false));
        // ...unless it took the whole sandbox, and every container with it.
        assert!(l.take("pod", Some(1), Some(3), 137, true));
        assert!(
            !l.take("pod", Some(3), Some(3), 137, true),
            "started after the kill"
        );
        assert!(l.take("pod", Some(1), Some(4), 137, false));
        assert!(!l.take("pod", None, Some(9), 137, false), "no baseline");
        assert!(!l.take("pod", Some(1), None, 137, false), "no cgroup");
        l.forget("pod");
        assert!(l.take("pod", Some(1), Some(4), 137, false));
    }
}
