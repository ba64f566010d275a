//! A kubelet-like CRI environment for the CRI tier and `make demo-pod`: a
//! containerd with the CRI plugin, a private CNI network, and a client of
//! the CRI `RuntimeService`. One environment at a time (they share the
//! host's iptables and sysctls). Test support: it panics on what it does
//! not expect.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    path::PathBuf,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use containerd_client::tonic::{self, transport::Channel};
use k8s_cri::v1::{
    runtime_service_client::RuntimeServiceClient, ContainerState, ContainerStatsRequest,
    ContainerStatusRequest, CreateContainerRequest, ExecSyncRequest, ExecSyncResponse,
    ListPodSandboxRequest, PodSandboxConfig, PodSandboxStatusRequest, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest,
};
use test_support::{
    cni::CniNetwork,
    containerd::{Containerd, CriSetup},
    cri::{pod_slice_stem, CgroupDriver},
};

mod http;
mod recording;
mod specs;

pub use http::{http_get, serve_http_script};
pub use recording::RecordingShim;
pub use specs::{CtrSpec, PodSpec};

/// The RuntimeClass handler our shim is registered as.
pub const HANDLER: &str = "runsc";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What a CRI environment may have beyond the defaults.
#[derive(Debug, Default)]
pub struct CriExtras {
    /// Directories before our shim's on containerd's `PATH`.
    pub path_first: Vec<PathBuf>,
    /// More of containerd's configuration (more runtime handlers).
    pub extra_config: String,
    /// More of handler `runsc`'s `runsc.toml`.
    pub runsc_toml: String,
}

/// One CRI test environment. Fields drop in order: pods go before
/// containerd, containerd before the network.
pub struct Cri {
    pub rt: tokio::runtime::Runtime,
    pub client: RuntimeServiceClient<Channel>,
    pub containerd: Option<Containerd>,
    pub net: CniNetwork,
    pub logs: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

fn connect(rt: &tokio::runtime::Runtime, c: &Containerd) -> RuntimeServiceClient<Channel> {
    let socket = c.socket().to_path_buf();
    rt.block_on(async {
        let ch = containerd_client::connect(socket).await.unwrap();
        RuntimeServiceClient::new(ch)
    })
}

impl Cri {
    pub fn start() -> Cri {
        Self::start_with(CriExtras::default())
    }

    /// Like [`Cri::start`] with `extras`.
    pub fn start_with(extras: CriExtras) -> Cri {
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let logs = tempfile::Builder::new()
            .prefix("cri-logs-")
            .tempdir()
            .unwrap();
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let net = CniNetwork::new(logs.path(), n);
        let containerd = Containerd::start_cri(&CriSetup {
            cni_conf_dir: net.conf_dir.clone(),
            runsc_toml: extras.runsc_toml,
            path_first: extras.path_first,
            extra_config: extras.extra_config,
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let client = connect(&rt, &containerd);
        Cri {
            rt,
            client,
            containerd: Some(containerd),
            net,
            logs,
            _turn: turn,
        }
    }

    pub fn ctrd(&self) -> &Containerd {
        self.containerd.as_ref().unwrap()
    }

    /// Restarts containerd under the running pods and reconnects.
    pub fn restart_containerd(&mut self) {
        let c = self.containerd.as_mut().unwrap();
        c.restart();
        self.client = connect(&self.rt, self.containerd.as_ref().unwrap());
        // The CRI plugin answers "server is not initialized yet" until it
        // has recovered its pods, which takes longer on a loaded machine.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let req = k8s_cri::v1::StatusRequest { verbose: false };
            match self.rt.block_on(self.client.status(req)) {
                Ok(_) => break,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => panic!("the CRI plugin never came back after a restart: {e}"),
            }
        }
    }

    /// RunPodSandbox with handler `runsc`; returns (pod id, its config).
    pub fn run_pod(&mut self, p: &PodSpec) -> (String, PodSandboxConfig) {
        let config = self.pod_config(p);
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: if p.handler.is_empty() {
                HANDLER.into()
            } else {
                p.handler.clone()
            },
        };
        let id = self
            .rt
            .block_on(self.client.run_pod_sandbox(req))
            .unwrap_or_else(|e| {
                panic!(
                    "RunPodSandbox {}: {e}\n{}",
                    p.name,
                    self.ctrd().log_tail(30)
                )
            })
            .into_inner()
            .pod_sandbox_id;
        (id, config)
    }

    /// CreateContainer + StartContainer; returns the container id.
    pub fn run_container(
        &mut self,
        pod: &(String, PodSandboxConfig),
        c: &CtrSpec,
        share_pid: bool,
    ) -> String {
        let config = self.container_config(&pod.1, c, share_pid);
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.0.clone(),
            config: Some(config),
            sandbox_config: Some(pod.1.clone()),
        };
        let id = self
            .rt
            .block_on(self.client.create_container(req))
            .unwrap_or_else(|e| panic!("CreateContainer {}: {e}", c.name))
            .into_inner()
            .container_id;
        let start = StartContainerRequest {
            container_id: id.clone(),
        };
        self.rt
            .block_on(self.client.start_container(start))
            .unwrap_or_else(|e| panic!("StartContainer {}: {e}", c.name));
        id
    }

    pub fn exec_sync(
        &mut self,
        id: &str,
        cmd: &[&str],
        timeout: i64,
    ) -> Result<ExecSyncResponse, tonic::Status> {
        let req = ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout,
        };
        self.rt
            .block_on(self.client.exec_sync(req))
            .map(|r| r.into_inner())
    }

    /// ExecSync that must succeed; its stdout. Its timeout bounds a hang
    /// only: in the emulated VM beside CI's host tiers an exec has taken
    /// over 10 s.
    pub fn exec_ok(&mut self, id: &str, cmd: &[&str]) -> String {
        let r = self.exec_sync(id, cmd, 60).unwrap();
        assert_eq!(
            r.exit_code,
            0,
            "{cmd:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        String::from_utf8_lossy(&r.stdout).into_owned()
    }

    pub fn status(&mut self, id: &str) -> k8s_cri::v1::ContainerStatus {
        let req = ContainerStatusRequest {
            container_id: id.into(),
            verbose: false,
        };
        self.rt
            .block_on(self.client.container_status(req))
            .unwrap()
            .into_inner()
            .status
            .unwrap()
    }

    /// Waits until container `id` has exited; its status. The bound is
    /// for a hang, not a timing: a memory hog under a pod's CPU quota in
    /// the emulated VM is slow to reach its limit.
    pub fn wait_exited(&mut self, id: &str) -> k8s_cri::v1::ContainerStatus {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let s = self.status(id);
            if s.state == ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{id} never exited: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pod_ip(&mut self, pod: &str) -> String {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: false,
        };
        let s = self
            .rt
            .block_on(self.client.pod_sandbox_status(req))
            .unwrap()
            .into_inner();
        s.status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default()
    }

    pub fn stop_container(&mut self, id: &str, timeout: i64) {
        let req = StopContainerRequest {
            container_id: id.into(),
            timeout,
        };
        self.rt.block_on(self.client.stop_container(req)).unwrap();
    }

    pub fn stats(&mut self, id: &str) -> k8s_cri::v1::ContainerStats {
        let req = ContainerStatsRequest {
            container_id: id.into(),
        };
        self.rt
            .block_on(self.client.container_stats(req))
            .unwrap()
            .into_inner()
            .stats
            .unwrap()
    }

    /// The host pid of a pod's sandbox (runsc's sandbox process), from
    /// the CRI plugin's verbose status.
    pub fn sandbox_pid(&mut self, pod: &str) -> u32 {
        self.sandbox_info(pod)["pid"].as_u64().unwrap() as u32
    }

    /// The pod's network namespace (its path in the sandbox's spec).
    pub fn pod_netns(&mut self, pod: &str) -> PathBuf {
        let info = self.sandbox_info(pod);
        let namespaces = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .unwrap();
        let net = namespaces.iter().find(|n| n["type"] == "network").unwrap();
        PathBuf::from(net["path"].as_str().unwrap())
    }

    /// containerd's verbose PodSandboxStatus info.
    fn sandbox_info(&mut self, pod: &str) -> serde_json::Value {
        let req = PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: true,
        };
        let info = self
            .rt
            .block_on(self.client.pod_sandbox_status(req))
            .unwrap()
            .into_inner()
            .info;
        serde_json::from_str(&info["info"]).unwrap()
    }

    /// StopPodSandbox of `pod` alone (RemovePodSandbox follows later).
    pub fn stop_pod(&mut self, pod: &str) {
        self.rt
            .block_on(self.client.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))
            .unwrap();
    }

    /// A container's CRI log file.
    pub fn log_of(&self, pod: &PodSandboxConfig, name: &str) -> PathBuf {
        PathBuf::from(&pod.log_directory).join(format!("{name}.log"))
    }

    /// StopPodSandbox + RemovePodSandbox of every pod (as the kubelet does
    /// when pods go), so CNI tears their networks down.
    pub fn remove_pods(&mut self) {
        let list = self
            .rt
            .block_on(
                self.client
                    .list_pod_sandbox(ListPodSandboxRequest::default()),
            )
            .map(|r| r.into_inner().items)
            .unwrap_or_default();
        for p in list {
            let _ = self.remove_pod(&p.id);
        }
    }

    /// StopPodSandbox + RemovePodSandbox of `pod`.
    pub fn remove_pod(&mut self, pod: &str) -> Result<(), tonic::Status> {
        self.rt
            .block_on(self.client.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))?;
        self.rt
            .block_on(self.client.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.into(),
            }))?;
        Ok(())
    }

    /// Ids of every container.
    pub fn container_ids(&mut self) -> Vec<String> {
        let req = k8s_cri::v1::ListContainersRequest::default();
        self.rt
            .block_on(self.client.list_containers(req))
            .map(|r| {
                r.into_inner()
                    .containers
                    .into_iter()
                    .map(|c| c.id)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn remove_container(&mut self, id: &str) {
        let req = RemoveContainerRequest {
            container_id: id.into(),
        };
        self.rt.block_on(self.client.remove_container(req)).unwrap();
    }

    /// Removes every pod, then checks containerd left nothing (shim,
    /// runsc, mount, socket, runsc state) and CNI no network namespace.
    pub fn stop_and_check(mut self) {
        self.remove_pods();
        let netns = self.net.new_netns();
        let units = systemd_units_left();
        stop_pod_slices();
        if let Some(c) = self.containerd.take() {
            c.stop_and_check();
        }
        assert!(netns.is_empty(), "CRI left network namespaces: {netns:?}");
        assert!(units.is_empty(), "CRI left systemd units: {units:?}");
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        if self.containerd.is_some() {
            self.remove_pods();
        }
        stop_pod_slices();
    }
}

/// The pod slices of this test process's pods: systemd keeps an empty slice
/// (the kubelet removes its own); ours go when the test's pods are gone.
fn stop_pod_slices() {
    if CgroupDriver::from_env() == CgroupDriver::Systemd {
        let pattern = format!("{}*.slice", pod_slice_stem(&Cri::pod_uid("")));
        let _ = std::process::Command::new("systemctl")
            .args(["stop", &pattern])
            .status();
    }
}

/// Scopes of this test process's pods that are still loaded (on the
/// systemd driver every sandbox is one, in its pod's slice).
fn systemd_units_left() -> Vec<String> {
    if CgroupDriver::from_env() != CgroupDriver::Systemd {
        return Vec::new();
    }
    let out = std::process::Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--type=scope",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.starts_with("cri-containerd-"))
        .map(str::to_string)
        .collect()
}
