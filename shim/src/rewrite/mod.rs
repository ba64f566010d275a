//! What the shim changes in a container's OCI spec before runsc reads it,
//! one concern per file, each a function of the spec (and what the runsc in
//! use supports) that says what it changed. The spec is rewritten as JSON,
//! not through typed structs, so fields the shim does not know survive.
//!
//! - [`capabilities`]: capabilities this runsc does not know are dropped.
//! - [`exec`]: an exec's process gets the container's `cwd`, `env` and
//!   capabilities where it leaves them out, as `runsc exec` gives them.
//! - [`pod`]: Kubernetes pods: kubelet volume mount hints, one `/dev/shm`
//!   per pod, the sandbox in the pod's cgroup, a member in the pod's PID
//!   namespace.
//! - [`paths`]: masked and read-only paths become mounts runsc honours.
//! - [`seccomp`]: the spec's seccomp profile made one runsc can run.
//! - [`resources`]: a pod's limits (CRI's `sandbox-*` annotations) become
//!   the sandbox's.

pub mod capabilities;
pub mod exec;
pub mod paths;
pub mod pod;
pub mod resources;
pub mod seccomp;

use std::{collections::BTreeSet, path::Path};

use serde_json::Value;

use crate::container::Role;

/// What a rewrite needs to know besides the spec.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The container's role in its sandbox.
    pub role: &'a Role,
    /// For a member: the sandbox process's host pid, if known.
    pub sandbox_pid: Option<u32>,
    /// The runsc release date (yyyymmdd), if known.
    pub release: Option<u32>,
    /// Where the kubelet keeps pod volumes.
    pub kubelet_pods: &'a Path,
    /// The rootfs on the host.
    pub rootfs: &'a Path,
    /// What a container path is in the rootfs (None: missing).
    pub rootfs_kind: &'a dyn Fn(&str) -> Option<paths::PathKind>,
    /// The empty file masked files get.
    pub masked_file: &'a Path,
}

/// What [`apply`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Capabilities dropped.
    pub dropped_capabilities: BTreeSet<String>,
    /// A member moved into the sandbox's PID namespace.
    pub shared_pid_namespace: bool,
    /// The cgroup the sandbox was pointed at.
    pub cgroup_parent: Option<String>,
    /// The pod's limits, made the sandbox's.
    pub pod_resources: Option<resources::PodResources>,
    /// `/dev/shm` made one tmpfs per pod.
    pub dev_shm: bool,
    /// Hinted volumes whose host source was not found.
    pub unresolved_volumes: Vec<String>,
    /// Member mounts that took a hint's type.
    pub hinted_mounts: usize,
    /// Masked and read-only paths made mounts.
    pub paths: paths::MaskedPaths,
    /// The seccomp profile fitted to runsc.
    pub seccomp: seccomp::SeccompFit,
}

impl Applied {
    /// Whether the spec changed.
    pub fn changed(&self) -> bool {
        !self.dropped_capabilities.is_empty()
            || self.shared_pid_namespace
            || self.cgroup_parent.is_some()
            || self.pod_resources.is_some()
            || self.dev_shm
            || self.hinted_mounts > 0
            || !self.unresolved_volumes.is_empty()
            || self.paths.changed()
            || self.seccomp.changed()
    }
}

/// Every rewrite that applies to this spec.
pub fn apply(spec: &mut Value, ctx: &Context) -> Applied {
    let mut a = Applied {
        dropped_capabilities: capabilities::drop_unknown_capabilities(spec, ctx.release),
        dev_shm: pod::dev_shm_per_pod(spec, ctx.role),
        paths: paths::masked_and_readonly(spec, ctx.rootfs_kind, ctx.rootfs, ctx.masked_file),
        seccomp: seccomp::fit_for_runsc(spec),
        ..Default::default()
    };
    match ctx.role {
        Role::Sandbox => {
            a.cgroup_parent = pod::pod_cgroup_parent(spec);
            a.pod_resources = resources::pod_resources(spec);
            a.unresolved_volumes = pod::volume_hint_sources(spec, ctx.kubelet_pods);
        }
        Role::Member { .. } => {
            if let Some(pid) = ctx.sandbox_pid {
                a.shared_pid_namespace = pod::share_sandbox_pid_namespace(spec, pid);
            }
            a.hinted_mounts = pod::volume_hint_types(spec, ctx.kubelet_pods);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_plain_container_is_left_alone() {
        let mut spec = json!({
            "process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_KILL"]}},
            "mounts": [{"destination": "/proc", "type": "proc"}],
            "linux": {"cgroupsPath": "/default/c1", "namespaces": [{"type": "pid"}]},
        });
        let before = spec.clone();
        let ctx = Context {
            role: &Role::Sandbox,
            sandbox_pid: None,
            release: Some(20221219),
            kubelet_pods: Path::new("/nonexistent"),
            rootfs: Path::new("/nonexistent"),
            rootfs_kind: &|_| None,
            masked_file: Path::new("/nonexistent"),
        };
        let a = apply(&mut spec, &ctx);
        assert!(!a.changed(), "{a:?}");
        assert_eq!(spec, before);
    }
}
