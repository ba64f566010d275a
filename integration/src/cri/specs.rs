//! What a test asks of a pod or a container, and the CRI configs built
//! from it the way the kubelet builds them.

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
};
use test_support::{cri::CgroupDriver, image::IMAGE_REF};

use super::Cri;

/// How a pod is asked for.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    pub name: String,
    pub host_network: bool,
    pub share_pid: bool,
    pub privileged: bool,
    pub port_mappings: Vec<(i32, i32)>,
    pub annotations: Vec<(String, String)>,
    /// The pod's cgroup (cgroupfs), as the kubelet gives it.
    pub cgroup_parent: String,
    /// The RuntimeClass handler (empty: [`super::HANDLER`]).
    pub handler: String,
    /// The pod's own limits (the kubelet's sum of its containers', or
    /// pod-level resources), which containerd passes to the runtime.
    pub resources: Option<k8s_cri::v1::LinuxContainerResources>,
}

/// How a container is asked for.
#[derive(Debug, Clone, Default)]
pub struct CtrSpec {
    pub name: String,
    pub args: Vec<String>,
    pub privileged: bool,
    pub tty: bool,
    pub mounts: Vec<(String, String)>,
    pub memory_limit: i64,
    /// `linux.security_context.masked_paths` (empty: containerd's defaults).
    pub masked_paths: Vec<String>,
    /// `linux.security_context.readonly_paths` (empty: containerd's defaults).
    pub readonly_paths: Vec<String>,
    /// A `Localhost` seccomp profile (None: unconfined).
    pub seccomp_profile: Option<std::path::PathBuf>,
}

impl CtrSpec {
    /// A container that allocates memory until it is OOM-killed: one
    /// read into a 512 MiB buffer, quick even in an emulated VM (where
    /// `tail /dev/zero`'s small reads take minutes).
    pub fn memory_hog(name: &str) -> CtrSpec {
        Self::sh(name, "dd if=/dev/zero of=/dev/null bs=512M count=1")
    }

    pub fn sh(name: &str, script: &str) -> CtrSpec {
        CtrSpec {
            name: name.into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }
    }
}

impl Cri {
    /// The UID the pod named `name` gets.
    pub fn pod_uid(name: &str) -> String {
        format!("uid-{}-{}", std::process::id(), name)
    }

    pub fn pod_config(&self, p: &PodSpec) -> PodSandboxConfig {
        let uid = Self::pod_uid(&p.name);
        let log_dir = self.logs.path().join(format!("default_{}_{uid}", p.name));
        std::fs::create_dir_all(&log_dir).unwrap();
        let mode = |node: bool| {
            if node {
                NamespaceMode::Node as i32
            } else {
                NamespaceMode::Pod as i32
            }
        };
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: p.name.clone(),
                uid: uid.clone(),
                namespace: "default".into(),
                attempt: 0,
            }),
            hostname: p.name.clone(),
            annotations: p.annotations.iter().cloned().collect(),
            log_directory: log_dir.to_string_lossy().into_owned(),
            port_mappings: p
                .port_mappings
                .iter()
                .map(|(c, h)| k8s_cri::v1::PortMapping {
                    protocol: 0,
                    container_port: *c,
                    host_port: *h,
                    host_ip: String::new(),
                })
                .collect(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: if p.cgroup_parent.is_empty() {
                    CgroupDriver::from_env().pod_parent(&uid)
                } else {
                    p.cgroup_parent.clone()
                },
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: mode(p.host_network),
                        pid: if p.share_pid {
                            NamespaceMode::Pod as i32
                        } else {
                            NamespaceMode::Container as i32
                        },
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    privileged: p.privileged,
                    ..Default::default()
                }),
                resources: p.resources.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn container_config(
        &self,
        pod: &PodSandboxConfig,
        c: &CtrSpec,
        share_pid: bool,
    ) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: c.name.clone(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE_REF.into(),
                ..Default::default()
            }),
            args: c.args.clone(),
            log_path: format!("{}.log", c.name),
            tty: c.tty,
            stdin: c.tty,
            mounts: c
                .mounts
                .iter()
                .map(|(host, ctr)| k8s_cri::v1::Mount {
                    host_path: host.clone(),
                    container_path: ctr.clone(),
                    ..Default::default()
                })
                .collect(),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    privileged: c.privileged,
                    masked_paths: c.masked_paths.clone(),
                    readonly_paths: c.readonly_paths.clone(),
                    seccomp: c
                        .seccomp_profile
                        .as_ref()
                        .map(|p| k8s_cri::v1::SecurityProfile {
                            profile_type: k8s_cri::v1::security_profile::ProfileType::Localhost
                                as i32,
                            localhost_ref: p.to_string_lossy().into_owned(),
                        }),
                    namespace_options: Some(NamespaceOption {
                        network: pod
                            .linux
                            .as_ref()
                            .and_then(|l| l.security_context.as_ref())
                            .and_then(|s| s.namespace_options.as_ref())
                            .map(|n| n.network)
                            .unwrap_or_default(),
                        pid: if share_pid {
                            NamespaceMode::Pod as i32
                        } else {
                            NamespaceMode::Container as i32
                        },
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                resources: (c.memory_limit > 0).then(|| k8s_cri::v1::LinuxContainerResources {
                    memory_limit_in_bytes: c.memory_limit,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }
    }
}
