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

/// How the kubelet of a test names pod cgroups: cgroupfs paths, or systemd
/// slices (kubelet's systemd cgroup driver, the kubeadm default on cgroup
/// v2 nodes). Chosen for a whole test run by `RUNSC_SHIM_TEST_CGROUP_DRIVER`
/// (`systemd` or `cgroupfs`, the default), as a node's kubelet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// `/kubepods/...` directories (or containerd's default place).
    Cgroupfs,
    /// `kubepods-<qos>-pod<uid>.slice`, and runsc told `systemd-cgroup`.
    Systemd,
}

impl CgroupDriver {
    /// The driver this test run is on.
    pub fn from_env() -> CgroupDriver {
        match std::env::var("RUNSC_SHIM_TEST_CGROUP_DRIVER").as_deref() {
            Ok("systemd") => CgroupDriver::Systemd,
            Ok("cgroupfs") | Ok("") | Err(_) => CgroupDriver::Cgroupfs,
            Ok(other) => panic!("RUNSC_SHIM_TEST_CGROUP_DRIVER={other}: want systemd or cgroupfs"),
        }
    }

    /// What `runsc.toml` needs for this driver (runsc must be told, as
    /// runc is by `SystemdCgroup`).
    pub fn runsc_config_lines(self) -> &'static str {
        match self {
            CgroupDriver::Cgroupfs => "",
            CgroupDriver::Systemd => "systemd-cgroup = \"true\"\n",
        }
    }

    /// The pod cgroup parent the kubelet gives a best-effort pod of `uid`
    /// (empty on cgroupfs: containerd's default place).
    pub fn pod_parent(self, uid: &str) -> String {
        match self {
            CgroupDriver::Cgroupfs => String::new(),
            CgroupDriver::Systemd => format!("{}.slice", pod_slice_stem(uid)),
        }
    }
}

/// `kubepods-besteffort-pod<uid>`, with the uid's dashes turned to
/// underscores as the kubelet does (a dash in a slice name means nesting).
pub fn pod_slice_stem(uid: &str) -> String {
    format!("kubepods-besteffort-pod{}", uid.replace('-', "_"))
}

/// Adds `lines` to the `[runsc_config]` table of a `runsc.toml` text,
/// creating the table if it has none.
pub fn with_runsc_config(toml: &str, lines: &str) -> String {
    if lines.is_empty() {
        return toml.to_string();
    }
    match toml.find("[runsc_config]\n") {
        Some(i) => {
            let at = i + "[runsc_config]\n".len();
            format!("{}{lines}{}", &toml[..at], &toml[at..])
        }
        None => format!("{toml}\n[runsc_config]\n{lines}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runsc_config_lines_join_an_existing_table() {
        let l = "systemd-cgroup = \"true\"\n";
        assert_eq!(with_runsc_config("", ""), "");
        assert_eq!(
            with_runsc_config("a = 1\n[runsc_config]\nnetwork = \"none\"\n", l),
            "a = 1\n[runsc_config]\nsystemd-cgroup = \"true\"\nnetwork = \"none\"\n"
        );
        assert_eq!(
            with_runsc_config("a = 1\n", l),
            "a = 1\n\n[runsc_config]\nsystemd-cgroup = \"true\"\n"
        );
    }

    #[test]
    fn pod_slices_are_named_as_the_kubelet_names_them() {
        assert_eq!(
            CgroupDriver::Systemd.pod_parent("uid-12-a-b"),
            "kubepods-besteffort-poduid_12_a_b.slice"
        );
        assert_eq!(CgroupDriver::Cgroupfs.pod_parent("x"), "");
    }
}
