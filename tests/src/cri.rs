//! containerd's CRI plugin configured for our shim: handler `runsc`, the
//! pause image, CNI from a test's own directory.

use std::path::{Path, PathBuf};

use crate::image;

/// containerd's CRI plugin with our shim as handler `runsc`: the pod
/// networks come from `cni_conf_dir`, runsc state goes under the
/// containerd's own directory.
#[derive(Debug, Clone)]
pub struct CriSetup {
    /// Directory of CNI network configurations.
    pub cni_conf_dir: PathBuf,
    /// Extra text for the shim's `runsc.toml`.
    pub runsc_toml: String,
    /// Directories before our shim's on containerd's `PATH` (a wrapper
    /// that records how containerd runs the shim).
    pub path_first: Vec<PathBuf>,
    /// More of containerd's configuration (TOML, format version 2): more
    /// runtime handlers beside `runsc`.
    pub extra_config: String,
}

/// The CRI plugin's (fixed) containerd namespace.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// The CRI plugin's configuration: handler `runsc` (also the default) with
/// our runtime options file, the pause image, CNI from `cni_conf_dir`.
pub(crate) fn cri_config(runsc_toml: &Path, cni_conf_dir: &Path) -> String {
    format!(
        r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # The host lacks CAP_SYS_RESOURCE: never ask for a lower OOM score.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runsc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "io.containerd.runsc.v1"
      # gVisor's mount hints reach the sandbox (and members) as annotations.
      pod_annotations = ["dev.gvisor.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "{toml}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
"#,
        pause = image::PAUSE_REF,
        toml = runsc_toml.display(),
        cni = cni_conf_dir.display(),
    )
}

/// A container's place in a pod, as the CRI plugin annotates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodRole {
    /// The pod's sandbox (pause) container.
    Sandbox,
    /// A container of the pod.
    Member,
}

/// `ctr` arguments giving a container the CRI plugin's pod annotations:
/// `role` in the pod whose sandbox is `sandbox_id`.
pub fn pod_annotation_args(role: PodRole, sandbox_id: &str) -> Vec<String> {
    let kind = match role {
        PodRole::Sandbox => "sandbox",
        PodRole::Member => "container",
    };
    vec![
        "--annotation".into(),
        format!("io.kubernetes.cri.container-type={kind}"),
        "--annotation".into(),
        format!("io.kubernetes.cri.sandbox-id={sandbox_id}"),
    ]
}
