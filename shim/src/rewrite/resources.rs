//! Pod-level resources. containerd's CRI passes a pod's limits (the
//! kubelet's sum of its containers' limits plus overhead, or Kubernetes'
//! pod-level resources) as annotations on the sandbox container's spec.
//! Under gVisor the whole pod is one sandbox, so they are the sandbox's own
//! limits: they go into the sandbox container's `linux.resources`, which
//! runsc applies to the cgroup it makes for the sandbox (as unit
//! properties on its systemd driver) and sizes the sandbox's memory from.
//! With a CPU quota, `--cpu-num-from-quota` sizes its CPUs too (see
//! `runtime::runsc_flags`). gVisor's Go shim ignores these annotations
//! (gvisor#13777: a 660m pod used 1675m).

use std::collections::HashMap;

use serde_json::{json, Map, Value};

/// The pod's CFS period, in microseconds.
pub const CPU_PERIOD: &str = "io.kubernetes.cri.sandbox-cpu-period";
/// The pod's CFS quota, in microseconds per period.
pub const CPU_QUOTA: &str = "io.kubernetes.cri.sandbox-cpu-quota";
/// The pod's CPU shares.
pub const CPU_SHARES: &str = "io.kubernetes.cri.sandbox-cpu-shares";
/// The pod's memory limit, in bytes.
pub const MEMORY: &str = "io.kubernetes.cri.sandbox-memory";

/// A pod's limits as containerd's CRI annotates them (absent or 0: none).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PodResources {
    /// CFS period, microseconds.
    pub cpu_period: u64,
    /// CFS quota, microseconds per period.
    pub cpu_quota: i64,
    /// CPU shares.
    pub cpu_shares: u64,
    /// Memory limit, bytes.
    pub memory: i64,
}

impl PodResources {
    /// The limits in a sandbox spec's annotations. Unparsable values count
    /// as absent.
    pub fn from_annotations(a: Option<&HashMap<String, String>>) -> PodResources {
        let get = |k: &str| a.and_then(|a| a.get(k)).map(|v| v.trim());
        PodResources {
            cpu_period: get(CPU_PERIOD).and_then(|v| v.parse().ok()).unwrap_or(0),
            cpu_quota: get(CPU_QUOTA).and_then(|v| v.parse().ok()).unwrap_or(0),
            cpu_shares: get(CPU_SHARES).and_then(|v| v.parse().ok()).unwrap_or(0),
            memory: get(MEMORY).and_then(|v| v.parse().ok()).unwrap_or(0),
        }
    }

    /// Whether the pod has a CPU limit.
    pub fn has_cpu_quota(&self) -> bool {
        self.cpu_quota > 0
    }
}

/// Puts the pod's limits into a sandbox spec's `linux.resources` (they
/// replace what containerd gave the pause container alone, such as its CPU
/// shares of 2). Returns the limits applied, if any.
pub fn pod_resources(spec: &mut Value) -> Option<PodResources> {
    let annotations: HashMap<String, String> = spec
        .get("annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let r = PodResources::from_annotations(Some(&annotations));
    if r == PodResources::default() {
        return None;
    }
    let linux = spec.as_object_mut()?.entry("linux").or_insert(json!({}));
    let resources = object(linux.as_object_mut()?, "resources")?;
    if r.cpu_shares > 0 || r.cpu_quota > 0 || r.cpu_period > 0 {
        let cpu = object(resources, "cpu")?;
        if r.cpu_shares > 0 {
            cpu.insert("shares".into(), json!(r.cpu_shares));
        }
        if r.cpu_quota > 0 {
            cpu.insert("quota".into(), json!(r.cpu_quota));
        }
        if r.cpu_period > 0 {
            cpu.insert("period".into(), json!(r.cpu_period));
        }
    }
    if r.memory > 0 {
        object(resources, "memory")?.insert("limit".into(), json!(r.memory));
    }
    Some(r)
}

/// The object at `key` in `m`, made if missing; `None` if it is not one.
fn object<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    m.entry(key).or_insert(json!({})).as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pods_limits_become_the_sandboxs() {
        let mut spec = json!({
            "annotations": {
                CPU_PERIOD: "100000", CPU_QUOTA: "50000", CPU_SHARES: "512",
                MEMORY: "134217728", "other": "x"
            },
            "linux": {"resources": {"cpu": {"shares": 2}, "devices": [{"allow": false}]}}
        });
        let r = pod_resources(&mut spec).unwrap();
        assert!(r.has_cpu_quota());
        assert_eq!(
            spec["linux"]["resources"],
            json!({
                "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                "memory": {"limit": 134217728},
                "devices": [{"allow": false}]
            })
        );
    }

    #[test]
    fn zero_or_absent_limits_change_nothing() {
        for annotations in [
            json!({}),
            json!({CPU_PERIOD: "0", CPU_QUOTA: "0", CPU_SHARES: "0", MEMORY: "0"}),
            json!({MEMORY: "lots"}),
        ] {
            let mut spec = json!({"annotations": annotations, "linux": {}});
            let before = spec.clone();
            assert_eq!(pod_resources(&mut spec), None);
            assert_eq!(spec, before);
        }
        // Memory alone: no CPU object appears.
        let mut spec = json!({"annotations": {MEMORY: "1048576"}});
        assert!(pod_resources(&mut spec).is_some_and(|r| !r.has_cpu_quota()));
        assert_eq!(
            spec["linux"]["resources"],
            json!({"memory": {"limit": 1048576}})
        );
    }
}
