//! What the shim reads from a bundle's OCI spec: pod grouping annotations and
//! whether the sandbox needs `--network=none` to run on a plain host.

use std::{collections::HashMap, path::Path};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// CRI (containerd) annotation naming the container's role.
pub const CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// CRI (containerd) annotation naming the pod sandbox.
pub const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// CRI-O's equivalents.
pub const CRIO_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
/// CRI-O's sandbox id annotation.
pub const CRIO_SANDBOX_ID: &str = "io.kubernetes.cri-o.SandboxID";

/// Reads `<bundle>/config.json`.
pub fn read(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    Spec::load(&path).map_err(|e| {
        Error::InvalidArgument(format!("cannot read OCI spec {}: {e}", path.display()))
    })
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

/// True when the spec asks for a new network namespace without a path: runc
/// would make an empty (loopback only) one; runsc refuses to run in the host
/// namespace unless its own network stack is off, which gives exactly that.
pub fn wants_private_network(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|nss| {
            nss.iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Network && ns.path().is_none())
        })
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
    fn default_spec_wants_private_network() {
        let spec = Spec::default();
        assert!(wants_private_network(&spec));
    }
}
