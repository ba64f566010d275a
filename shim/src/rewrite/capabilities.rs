//! Capabilities the runsc in use does not know: containerd grants
//! privileged containers (and "add ALL") every capability the host kernel
//! knows; runsc refuses the whole container on a name it does not know
//! (`unknown capability "CAP_PERFMON"` from 0.0~20221219). Those are
//! dropped, never added.

use std::collections::BTreeSet;

use serde_json::Value;

/// Capabilities every runsc release knows (Linux's 0 to 37).
fn base_capabilities() -> &'static [&'static str] {
    &runsc::control::process::CAPABILITIES[..38]
}

/// Added to runsc's capability table on 2023-02-17 (gVisor commit
/// bd9010d4): releases from 2023-02-20 on know them.
const CAPABILITIES_2023: &[&str] = &["CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"];
const CAPABILITIES_2023_FROM: u32 = 20230220;

/// The capability sets of an OCI process.
const SETS: &[&str] = &[
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// Whether a runsc released on `release` (yyyymmdd; None = unknown, the
/// oldest table) knows capability `name`.
pub fn runsc_knows_capability(name: &str, release: Option<u32>) -> bool {
    base_capabilities().contains(&name)
        || (CAPABILITIES_2023.contains(&name)
            && release.is_some_and(|d| d >= CAPABILITIES_2023_FROM))
}

/// Capability names in the spec's process that runsc released on `release`
/// does not know.
pub fn unknown_capabilities(spec: &Value, release: Option<u32>) -> BTreeSet<String> {
    let Some(caps) = spec.pointer("/process/capabilities") else {
        return BTreeSet::new();
    };
    SETS.iter()
        .filter_map(|set| caps.get(set).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .filter(|c| !runsc_knows_capability(c, release))
        .map(str::to_string)
        .collect()
}

/// Removes from every capability set the names runsc released on
/// `release` does not know; returns them.
pub fn drop_unknown_capabilities(spec: &mut Value, release: Option<u32>) -> BTreeSet<String> {
    let dropped = unknown_capabilities(spec, release);
    if dropped.is_empty() {
        return dropped;
    }
    if let Some(caps) = spec.pointer_mut("/process/capabilities") {
        for set in SETS {
            if let Some(list) = caps.get_mut(*set).and_then(Value::as_array_mut) {
                list.retain(|c| c.as_str().is_none_or(|c| !dropped.contains(c)));
            }
        }
    }
    dropped
}

/// [`drop_unknown_capabilities`] for an exec's process (not a whole spec).
/// A process that cannot be converted is left as it is.
pub fn drop_unknown_from_process(
    process: &mut oci_spec::runtime::Process,
    release: Option<u32>,
) -> BTreeSet<String> {
    let Ok(p) = serde_json::to_value(&*process) else {
        return BTreeSet::new();
    };
    let mut spec = serde_json::json!({ "process": p });
    let dropped = drop_unknown_capabilities(&mut spec, release);
    if !dropped.is_empty() {
        if let Ok(p) = serde_json::from_value(spec["process"].take()) {
            *process = p;
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn privileged() -> Value {
        let all: Vec<&str> = base_capabilities()
            .iter()
            .chain(CAPABILITIES_2023)
            .copied()
            .collect();
        json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"], "capabilities": {
                "bounding": all, "effective": all, "permitted": all,
                "inheritable": ["CAP_KILL", "CAP_BPF"],
            }},
            "unknownField": {"kept": true},
        })
    }

    #[test]
    fn runsc_2022_loses_the_2023_capabilities_only() {
        let mut spec = privileged();
        let dropped = drop_unknown_capabilities(&mut spec, Some(20221219));
        assert_eq!(
            dropped.iter().map(String::as_str).collect::<Vec<_>>(),
            ["CAP_BPF", "CAP_CHECKPOINT_RESTORE", "CAP_PERFMON"]
        );
        let bounding = spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert_eq!(bounding.len(), base_capabilities().len());
        assert_eq!(
            spec["process"]["capabilities"]["inheritable"],
            json!(["CAP_KILL"])
        );
        // Nothing else is touched.
        assert_eq!(spec["unknownField"], json!({"kept": true}));
    }

    #[test]
    fn an_exec_process_loses_them_too() {
        let mut v = privileged()["process"].clone();
        v["user"] = json!({"uid": 0, "gid": 0});
        v["cwd"] = json!("/");
        let mut p: oci_spec::runtime::Process = serde_json::from_value(v).unwrap();
        let dropped = drop_unknown_from_process(&mut p, Some(20221219));
        assert_eq!(dropped.len(), 3);
        let caps = p.capabilities().as_ref().unwrap();
        assert!(!caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&oci_spec::runtime::Capability::Perfmon));
        assert!(drop_unknown_from_process(&mut p, Some(20221219)).is_empty());
    }

    #[test]
    fn newer_runsc_keeps_everything_and_unknown_versions_are_careful() {
        let mut spec = privileged();
        assert!(drop_unknown_capabilities(&mut spec, Some(20240729)).is_empty());
        assert_eq!(spec, privileged());
        assert_eq!(unknown_capabilities(&spec, None).len(), 3);
        assert!(unknown_capabilities(&json!({"process": {}}), None).is_empty());
        assert!(!runsc_knows_capability("CAP_MADE_UP", Some(20991231)));
    }
}
