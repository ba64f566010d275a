//! What the shim reads from a bundle's OCI spec: pod grouping annotations and
//! whether the sandbox needs `--network=none` to run on a plain host.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::{
    bundle::Bundle,
    error::{Error, Result},
};

/// CRI (containerd) annotation naming the container's role.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// CRI (containerd) annotation naming the pod sandbox.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// CRI-O's equivalents.
pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
/// CRI-O's sandbox id annotation.
pub const CRIO_SANDBOX_ID: &str = "io.kubernetes.cri-o.SandboxID";

/// Reads `<bundle>/config.json`.
pub fn read(bundle: &Bundle) -> Result<Spec> {
    let path = bundle.config();
    Spec::load(&path).map_err(|e| {
        Error::InvalidArgument(format!("cannot read OCI spec {}: {e}", path.display()))
    })
}

/// Reads `<bundle>/config.json` as JSON, every field kept (for rewrites).
pub fn read_json(bundle: &Bundle) -> Result<serde_json::Value> {
    let path = bundle.config();
    let data =
        std::fs::read(&path).map_err(|e| Error::os(format!("read {}", path.display()), e))?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::InvalidArgument(format!("invalid spec {}: {e}", path.display())))
}

/// The pod a container belongs to: the CRI sandbox id annotation, else the
/// container's own id. Used both for the shim socket (one shim per pod) and
/// for runsc (sub-containers join the sandbox).
pub fn grouping_key(id: &str, annotations: Option<&HashMap<String, String>>) -> String {
    annotations
        .and_then(|a| a.get(SANDBOX_ID).or_else(|| a.get(CRIO_SANDBOX_ID)))
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| id.to_string())
}

/// True for a pod's non-sandbox container, which joins an existing runsc
/// sandbox instead of creating one.
pub fn is_sub_container(annotations: Option<&HashMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(CONTAINER_TYPE).or_else(|| a.get(CRIO_CONTAINER_TYPE)))
        .is_some_and(|t| t == "container")
}

/// True for a Kubernetes pod's sandbox (pause) container.
pub fn is_pod_sandbox(annotations: Option<&HashMap<String, String>>) -> bool {
    annotations
        .and_then(|a| a.get(CONTAINER_TYPE).or_else(|| a.get(CRIO_CONTAINER_TYPE)))
        .is_some_and(|t| t == "sandbox")
}

/// The network the spec asks for, from its network namespace entry.
pub fn network(spec: &Spec) -> Network {
    let ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|nss| {
            nss.iter()
                .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        });
    match ns {
        None => Network::Host,
        Some(ns) => match ns.path() {
            Some(p) => Network::Join(p.clone()),
            None if has_setup_hooks(spec) => Network::NewFilledByHooks,
            None => Network::New,
        },
    }
}

/// Whether the spec has hooks that run before the container starts, which
/// is how Docker fills a new network namespace (`libnetwork-setkey`).
fn has_setup_hooks(spec: &Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        #[allow(deprecated)]
        let prestart = h.prestart();
        prestart.as_ref().is_some_and(|v| !v.is_empty())
            || h.create_runtime().as_ref().is_some_and(|v| !v.is_empty())
    })
}

/// The host namespaces (PID, IPC, UTS) a spec asks to share by leaving
/// them out. gVisor's kernel cannot share them: the container gets the
/// sandbox's own, as CRI's hostPID/hostIPC pods do (critest's HostPID spec
/// passes that way), so the shim runs it and says so in its log.
pub fn unshareable_host_namespaces(spec: &Spec) -> Vec<&'static str> {
    let Some(nss) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) else {
        return Vec::new();
    };
    [
        (LinuxNamespaceType::Pid, "pid"),
        (LinuxNamespaceType::Ipc, "ipc"),
        (LinuxNamespaceType::Uts, "uts"),
    ]
    .into_iter()
    .filter(|(t, _)| !nss.iter().any(|ns| ns.typ() == *t))
    .map(|(_, name)| name)
    .collect()
}

/// The network a spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// No network namespace: the host's (`hostNetwork`, `ctr run --net-host`).
    Host,
    /// A new, empty namespace.
    New,
    /// A new namespace that the spec's prestart or createRuntime hooks
    /// fill before runsc's network stack takes its interfaces over:
    /// Docker's bridge networks (its `libnetwork-setkey` hook moves the
    /// veth in). runsc runs the hooks, then sets up its stack at start.
    NewFilledByHooks,
    /// An existing namespace (a CNI-configured pod's).
    Join(std::path::PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn grouping_prefers_cri_then_crio_then_id() {
        assert_eq!(grouping_key("c1", None), "c1");
        assert_eq!(
            grouping_key("c1", Some(&ann(&[(SANDBOX_ID, "pod")]))),
            "pod"
        );
        assert_eq!(
            grouping_key("c1", Some(&ann(&[(CRIO_SANDBOX_ID, "p2")]))),
            "p2"
        );
        assert_eq!(
            grouping_key(
                "c1",
                Some(&ann(&[(SANDBOX_ID, "a"), (CRIO_SANDBOX_ID, "b")]))
            ),
            "a"
        );
        assert_eq!(grouping_key("c1", Some(&ann(&[(SANDBOX_ID, "")]))), "c1");
    }

    #[test]
    fn sub_container_detection() {
        assert!(!is_sub_container(None));
        assert!(!is_sub_container(Some(&ann(&[(
            CONTAINER_TYPE,
            "sandbox"
        )]))));
        assert!(is_sub_container(Some(&ann(&[(
            CONTAINER_TYPE,
            "container"
        )]))));
        assert!(is_sub_container(Some(&ann(&[(
            CRIO_CONTAINER_TYPE,
            "container"
        )]))));
    }

    #[test]
    fn host_namespaces_are_the_ones_left_out() {
        let mut spec = Spec::default();
        assert!(unshareable_host_namespaces(&spec).is_empty());
        let mut linux = spec.linux().clone().unwrap();
        let mut nss = linux.namespaces().clone().unwrap();
        nss.retain(|ns| ns.typ() != LinuxNamespaceType::Pid && ns.typ() != LinuxNamespaceType::Uts);
        linux.set_namespaces(Some(nss));
        spec.set_linux(Some(linux));
        assert_eq!(unshareable_host_namespaces(&spec), ["pid", "uts"]);
    }

    #[test]
    fn network_kinds() {
        let mut spec = Spec::default();
        assert_eq!(network(&spec), Network::New);
        // Docker's bridge: a new namespace its prestart hook fills.
        let mut hooked = spec.clone();
        let hook = oci_spec::runtime::HookBuilder::default()
            .path("/usr/bin/dockerd")
            .args(vec!["libnetwork-setkey".to_string()])
            .build()
            .unwrap();
        #[allow(deprecated)]
        hooked.set_hooks(Some(
            oci_spec::runtime::HooksBuilder::default()
                .prestart(vec![hook])
                .build()
                .unwrap(),
        ));
        assert_eq!(network(&hooked), Network::NewFilledByHooks);
        let mut linux = spec.linux().clone().unwrap();
        let mut nss = linux.namespaces().clone().unwrap();
        for ns in nss.iter_mut() {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some("/var/run/netns/pod".into()));
            }
        }
        linux.set_namespaces(Some(nss.clone()));
        spec.set_linux(Some(linux.clone()));
        assert_eq!(network(&spec), Network::Join("/var/run/netns/pod".into()));
        nss.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
        linux.set_namespaces(Some(nss));
        spec.set_linux(Some(linux));
        assert_eq!(network(&spec), Network::Host);
    }
}
