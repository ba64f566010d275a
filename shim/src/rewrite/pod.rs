//! Pod rewrites, as gVisor's own shim makes them for Kubernetes (and one it
//! lacks): mount hints for kubelet volumes, one `/dev/shm` per pod, the
//! pod's cgroup for the sandbox, and a member in the pod's PID namespace.
//!
//! runsc reads mount hints from the sandbox's annotations
//! (`dev.gvisor.spec.mount.<name>.{source,type,share,options}`): a volume
//! with a hint is one mount inside the sandbox, shared by the containers
//! that mount its source, instead of one gofer-backed bind per container.

use std::path::Path;

use serde_json::{Map, Value};

use crate::container::Role;

/// The pod's log directory, `.../pods/<namespace>_<name>_<uid>`.
pub const SANDBOX_LOG_DIR: &str = "io.kubernetes.cri.sandbox-log-directory";
/// Prefix of runsc's mount hint annotations.
pub const MOUNT_HINT: &str = "dev.gvisor.spec.mount.";
/// The cgroup runsc puts the sandbox in.
pub const CGROUP_PARENT: &str = "dev.gvisor.spec.cgroup-parent";
/// The hint name for the pod's `/dev/shm`.
const DEV_SHM_HINT: &str = "gvisorinternaldevshm";
/// Where the kubelet keeps pod volumes.
pub const KUBELET_PODS: &str = "/var/lib/kubelet/pods";

fn annotations(spec: &mut Value) -> Option<&mut Map<String, Value>> {
    let obj = spec.as_object_mut()?;
    obj.entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
}

fn annotation<'a>(spec: &'a Value, key: &str) -> Option<&'a str> {
    spec.pointer("/annotations")?.get(key)?.as_str()
}

fn mounts(spec: &mut Value) -> Option<&mut Vec<Value>> {
    spec.get_mut("mounts")?.as_array_mut()
}

/// The sandbox joins the pod's cgroup (the last `pod…` element of its
/// `linux.cgroupsPath`) instead of the pause container's: the kubelet sets
/// the pod's limits there. Returns the parent set, if any.
///
/// On the systemd driver the path is `<slice>:<prefix>:<name>` and runsc
/// takes a parent only in that form too: a sandbox whose slice is the pod's
/// (`kubepods[-<qos>]-pod<uid>.slice`) gets its whole path, a scope in the
/// pod's slice, under the pod's limits.
pub fn pod_cgroup_parent(spec: &mut Value) -> Option<String> {
    if annotation(spec, CGROUP_PARENT).is_some() {
        return None;
    }
    let path = spec.pointer("/linux/cgroupsPath")?.as_str()?.to_string();
    let parent = if path.contains(':') {
        let slice = path.split(':').next()?;
        is_pod_slice(slice).then_some(path)?
    } else {
        let parts: Vec<&str> = path.split('/').collect();
        let i = parts.iter().rposition(|p| p.starts_with("pod"))?;
        parts[..=i].join("/")
    };
    annotations(spec)?.insert(CGROUP_PARENT.into(), Value::String(parent.clone()));
    Some(parent)
}

/// Whether a systemd slice is a pod's (`kubepods-besteffort-pod<uid>.slice`,
/// `kubepods-pod<uid>.slice`), not a QoS class's or the kubepods one.
fn is_pod_slice(slice: &str) -> bool {
    slice
        .strip_suffix(".slice")
        .and_then(|s| s.rsplit('-').next())
        .is_some_and(|last| last.starts_with("pod"))
}

/// CRI bind-mounts the same host directory on every container's
/// `/dev/shm`. Inside gVisor it becomes one tmpfs shared by the pod: the
/// mount turns into a `tmpfs`, and the sandbox carries the hint that makes
/// it pod-wide (a second, plain tmpfs `/dev/shm` entry is removed).
pub fn dev_shm_per_pod(spec: &mut Value, role: &Role) -> bool {
    let Some(list) = mounts(spec) else {
        return false;
    };
    let is_shm = |m: &Value| m.get("destination").and_then(Value::as_str) == Some("/dev/shm");
    let is_bind = |m: &Value| {
        m.get("type").and_then(Value::as_str) == Some("bind")
            || m.get("options")
                .and_then(Value::as_array)
                .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
    };
    let Some(i) = list.iter().position(|m| is_shm(m) && is_bind(m)) else {
        return false;
    };
    let source = list[i]
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    list[i]["type"] = Value::String("tmpfs".into());
    list[i]["options"] = serde_json::json!(["rw", "nosuid", "nodev", "noexec"]);
    // Any other `/dev/shm` entry (a runtime default tmpfs) would hide it.
    let mut index = 0;
    list.retain(|m| {
        let keep = index == i || !is_shm(m);
        index += 1;
        keep
    });
    if *role == Role::Sandbox {
        if let Some(a) = annotations(spec) {
            for (k, v) in [
                ("source", source.as_str()),
                ("type", "tmpfs"),
                ("share", "pod"),
                ("options", "rw"),
            ] {
                a.insert(
                    format!("{MOUNT_HINT}{DEV_SHM_HINT}.{k}"),
                    Value::String(v.into()),
                );
            }
        }
    }
    true
}

/// Where a pod sandbox's gVisor logs go, as gVisor's shim puts them: the
/// sentry's user log (`--user-log`, what the container's kernel prints)
/// and runsc's panic log, in the pod's log directory.
pub fn sandbox_logs(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = Path::new(annotations?.get(SANDBOX_LOG_DIR)?);
    dir.is_absolute()
        .then(|| (dir.join("gvisor.log"), dir.join("gvisor_panic.log")))
}

/// The pod's UID: the last `_` field of its log directory's name.
pub fn pod_uid(spec: &Value) -> Option<String> {
    let dir = annotation(spec, SANDBOX_LOG_DIR)?;
    let name = Path::new(dir).file_name()?.to_str()?;
    Some(name.rsplit('_').next()?.to_string()).filter(|u| !u.is_empty())
}

/// Names of volumes with a mount hint (`dev.gvisor.spec.mount.<name>.type`).
fn hinted_volumes(spec: &Value) -> Vec<(String, String)> {
    let Some(a) = spec.pointer("/annotations").and_then(Value::as_object) else {
        return Vec::new();
    };
    a.iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix(MOUNT_HINT)?.strip_suffix(".type")?;
            Some((name.to_string(), v.as_str()?.to_string()))
        })
        .filter(|(n, _)| n != DEV_SHM_HINT)
        .collect()
}

/// Sandbox: each hinted volume gets its host source, the one directory
/// `<kubelet pods>/<pod uid>/volumes/*/<name>`. Returns the names left
/// without a source (none or several candidates; runsc then ignores them).
pub fn volume_hint_sources(spec: &mut Value, kubelet_pods: &Path) -> Vec<String> {
    let Some(uid) = pod_uid(spec) else {
        return Vec::new();
    };
    let volumes = kubelet_pods.join(uid).join("volumes");
    let kinds: Vec<_> = std::fs::read_dir(&volumes)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let mut unresolved = Vec::new();
    for (name, _) in hinted_volumes(spec) {
        let found: Vec<_> = kinds
            .iter()
            .map(|k| k.join(&name))
            .filter(|p| p.exists())
            .collect();
        match found.as_slice() {
            [one] => {
                if let Some(a) = annotations(spec) {
                    a.insert(
                        format!("{MOUNT_HINT}{name}.source"),
                        Value::String(one.to_string_lossy().into_owned()),
                    );
                }
            }
            _ => unresolved.push(name),
        }
    }
    unresolved
}

/// Member: a mount of a hinted volume (`<kubelet pods>/*/volumes/*/<name>`)
/// takes the hint's type, so runsc matches it to the sandbox's mount
/// (`bind`/`rbind` options go when the type is not `bind`). Returns how
/// many mounts changed.
pub fn volume_hint_types(spec: &mut Value, kubelet_pods: &Path) -> usize {
    let hints = hinted_volumes(spec);
    let Some(list) = mounts(spec) else {
        return 0;
    };
    let mut changed = 0;
    for m in list.iter_mut() {
        let Some(src) = m.get("source").and_then(Value::as_str).map(Path::new) else {
            continue;
        };
        // <pods>/<uid>/volumes/<kind>/<name>
        let Ok(rest) = src.strip_prefix(kubelet_pods) else {
            continue;
        };
        let parts: Vec<_> = rest.iter().collect();
        if parts.len() != 4 || parts[1] != "volumes" {
            continue;
        }
        let Some((_, kind)) = hints.iter().find(|(n, _)| *parts[3] == **n) else {
            continue;
        };
        m["type"] = Value::String(kind.clone());
        if kind != "bind" {
            if let Some(o) = m.get_mut("options").and_then(Value::as_array_mut) {
                o.retain(|x| x != "bind" && x != "rbind");
            }
        }
        changed += 1;
    }
    changed
}

/// A pod member sharing the pod's PID namespace (`shareProcessNamespace`)
/// names the pause process's namespace by path; runsc joins a namespace
/// only when the path equals one recorded for a container of the sandbox,
/// and the sandbox's own has no path, so the member would get a namespace
/// of its own. Without a PID namespace entry a member runs in the
/// sandbox's root PID namespace, with the pause process as `/proc/1`.
///
/// Removes a member's PID namespace entry when its path is the sandbox
/// process's (`/proc/<sandbox pid>/ns/pid`); returns whether it did.
pub fn share_sandbox_pid_namespace(spec: &mut Value, sandbox_pid: u32) -> bool {
    if sandbox_pid == 0 {
        return false;
    }
    let sandbox_ns = format!("/proc/{sandbox_pid}/ns/pid");
    let Some(nss) = spec
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let before = nss.len();
    nss.retain(|ns| {
        !(ns.get("type").and_then(Value::as_str) == Some("pid")
            && ns.get("path").and_then(Value::as_str) == Some(sandbox_ns.as_str()))
    });
    nss.len() != before
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn member_role() -> Role {
        Role::Member {
            sandbox_id: "pod".into(),
        }
    }

    #[test]
    fn a_member_in_the_pods_pid_namespace_joins_the_sandboxs_root() {
        let member = |path: &str| {
            json!({"linux": {"namespaces": [
                {"type": "pid", "path": path},
                {"type": "network", "path": "/var/run/netns/pod"},
            ]}})
        };
        let mut spec = member("/proc/42/ns/pid");
        assert!(share_sandbox_pid_namespace(&mut spec, 42));
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([{"type": "network", "path": "/var/run/netns/pod"}])
        );
        // Another process's namespace, or no sandbox pid: untouched.
        let mut spec = member("/proc/7/ns/pid");
        assert!(!share_sandbox_pid_namespace(&mut spec, 42));
        assert!(!share_sandbox_pid_namespace(&mut spec, 0));
        assert_eq!(spec, member("/proc/7/ns/pid"));
    }

    #[test]
    fn the_sandbox_joins_the_pod_cgroup() {
        for (path, want) in [
            (
                "/kubepods/burstable/pod123/abc",
                Some("/kubepods/burstable/pod123"),
            ),
            // runsc refuses a bare slice as a systemd parent.
            (
                "kubepods-besteffort-pod9.slice:cri-containerd:abc",
                Some("kubepods-besteffort-pod9.slice:cri-containerd:abc"),
            ),
            (
                "kubepods-pod9.slice:cri-containerd:abc",
                Some("kubepods-pod9.slice:cri-containerd:abc"),
            ),
            // A QoS class's slice, or kubepods', is no pod's.
            ("kubepods-besteffort.slice:cri-containerd:abc", None),
            ("kubepods.slice:cri-containerd:abc", None),
            ("system.slice:test:abc", None),
            ("/system.slice/abc", None),
        ] {
            let mut spec = json!({"linux": {"cgroupsPath": path}});
            assert_eq!(pod_cgroup_parent(&mut spec).as_deref(), want, "{path}");
            assert_eq!(
                spec.pointer("/annotations/dev.gvisor.spec.cgroup-parent")
                    .and_then(Value::as_str),
                want
            );
        }
        // A parent the user set is kept.
        let mut spec = json!({"linux": {"cgroupsPath": "/kubepods/pod1/c"},
            "annotations": {CGROUP_PARENT: "/mine"}});
        assert_eq!(pod_cgroup_parent(&mut spec), None);
        assert_eq!(spec["annotations"][CGROUP_PARENT], "/mine");
    }

    #[test]
    fn sandbox_logs_go_to_the_pods_log_directory() {
        let ann = std::collections::HashMap::from([(
            SANDBOX_LOG_DIR.to_string(),
            "/var/log/pods/ns_web_uid".to_string(),
        )]);
        let (user, panic) = sandbox_logs(Some(&ann)).unwrap();
        assert_eq!(user, Path::new("/var/log/pods/ns_web_uid/gvisor.log"));
        assert_eq!(
            panic,
            Path::new("/var/log/pods/ns_web_uid/gvisor_panic.log")
        );
        assert_eq!(sandbox_logs(None), None);
    }

    #[test]
    fn dev_shm_becomes_one_tmpfs_per_pod() {
        let spec = || {
            json!({"mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
                {"destination": "/dev/shm", "type": "bind", "source": "/run/sb/shm", "options": ["rbind", "ro"]},
            ]})
        };
        let mut sb = spec();
        assert!(dev_shm_per_pod(&mut sb, &Role::Sandbox));
        let mounts = sb["mounts"].as_array().unwrap();
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[1]["type"], "tmpfs");
        assert_eq!(mounts[1]["source"], "/run/sb/shm");
        assert_eq!(
            sb["annotations"]["dev.gvisor.spec.mount.gvisorinternaldevshm.source"],
            "/run/sb/shm"
        );
        assert_eq!(
            sb["annotations"]["dev.gvisor.spec.mount.gvisorinternaldevshm.share"],
            "pod"
        );
        let mut member = spec();
        assert!(dev_shm_per_pod(&mut member, &member_role()));
        assert!(member.get("annotations").is_none());
        let mut plain = json!({"mounts": [{"destination": "/dev/shm", "type": "tmpfs"}]});
        assert!(!dev_shm_per_pod(&mut plain, &Role::Sandbox));
    }

    #[test]
    fn kubelet_volumes_get_their_hints() {
        let pods = tempfile::tempdir().unwrap();
        let vol = pods
            .path()
            .join("uid-1/volumes/kubernetes.io~empty-dir/cache");
        std::fs::create_dir_all(&vol).unwrap();
        let mut sb = json!({"annotations": {
            SANDBOX_LOG_DIR: "/var/log/pods/default_web_uid-1",
            "dev.gvisor.spec.mount.cache.type": "tmpfs",
            "dev.gvisor.spec.mount.cache.share": "pod",
            "dev.gvisor.spec.mount.missing.type": "bind",
        }});
        assert_eq!(pod_uid(&sb).as_deref(), Some("uid-1"));
        assert_eq!(volume_hint_sources(&mut sb, pods.path()), ["missing"]);
        assert_eq!(
            sb["annotations"]["dev.gvisor.spec.mount.cache.source"],
            vol.to_str().unwrap()
        );

        let mut member = json!({
        "annotations": {"dev.gvisor.spec.mount.cache.type": "tmpfs"},
        "mounts": [
            {"destination": "/cache", "type": "bind", "source": vol.to_str().unwrap(), "options": ["rbind", "rw"]},
            {"destination": "/other", "type": "bind", "source": "/srv/x", "options": ["rbind"]},
        ]});
        assert_eq!(volume_hint_types(&mut member, pods.path()), 1);
        assert_eq!(member["mounts"][0]["type"], "tmpfs");
        assert_eq!(member["mounts"][0]["options"], json!(["rw"]));
        assert_eq!(member["mounts"][1]["type"], "bind");
    }
}
