//! One hostNetwork pod through containerd's CRI `RuntimeService` with a
//! given RuntimeHandler, as the kubelet runs a pod of a RuntimeClass (no
//! CNI involved), checked to have run under gVisor through a given shim
//! binary, then removed.

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use k8s_cri::v1::{
    runtime_service_client::RuntimeServiceClient, ContainerConfig, ContainerMetadata,
    CreateContainerRequest, ImageSpec, LinuxContainerConfig, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};
use test_support::{
    containerd::{Containerd, OutputExt},
    image::IMAGE_REF,
};

fn host_network() -> Option<NamespaceOption> {
    Some(NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    })
}

/// Runs a hostNetwork pod with `handler` whose container prints
/// `greeting`; checks the greeting reached the CRI log, the pod's shim is
/// `shim` and runsc holds the container running under the runsc root of
/// `c`; then stops and removes the pod.
pub fn run_host_network_pod(c: &Containerd, handler: &str, shim: &Path, greeting: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(async {
        let ch = containerd_client::connect(c.socket()).await.unwrap();
        RuntimeServiceClient::new(ch)
    });
    let logs = c.dir().join("pod-logs");
    fs::create_dir_all(&logs).unwrap();
    let pod = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "installed".into(),
            uid: format!("uid-installed-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "installed".into(),
        log_directory: logs.to_string_lossy().into_owned(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: host_network(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod_id = rt
        .block_on(client.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: handler.into(),
        }))
        .unwrap_or_else(|e| panic!("RunPodSandbox ({handler}): {e}\n{}", c.log_tail(40)))
        .into_inner()
        .pod_sandbox_id;
    let status = rt
        .block_on(client.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod_id.clone(),
            verbose: false,
        }))
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.runtime_handler, handler);

    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "hello".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE_REF.into(),
            ..Default::default()
        }),
        args: ["sh", "-c", &format!("echo {greeting}; exec sleep 1000")]
            .map(String::from)
            .to_vec(),
        log_path: "hello.log".into(),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: host_network(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let id = rt
        .block_on(client.create_container(CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(config),
            sandbox_config: Some(pod),
        }))
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", c.log_tail(40)))
        .into_inner()
        .container_id;
    rt.block_on(client.start_container(StartContainerRequest {
        container_id: id.clone(),
    }))
    .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", c.log_tail(40)));

    let log = logs.join("hello.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(greeting)
    {
        assert!(
            Instant::now() < deadline,
            "{greeting:?} never reached {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The pod's shim is the installed binary.
    let shims = c.shim_pids();
    assert!(!shims.is_empty(), "no shim serves the pod");
    for pid in shims {
        let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(exe, shim, "shim {pid} is not the installed binary");
    }
    // runsc runs the container under the root runsc.toml names (one root
    // per sandbox: <root>/<namespace>/<pod id>).
    let root = c.runsc_state_root().join(&pod_id);
    let state = Command::new("runsc")
        .arg("--root")
        .arg(&root)
        .args(["state", &id])
        .output()
        .unwrap();
    assert!(
        state.status.success() && state.out().contains(r#""status": "running""#),
        "runsc --root {} state {id}: {}{}",
        root.display(),
        state.out(),
        state.err()
    );

    rt.block_on(client.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod_id.clone(),
    }))
    .unwrap();
    rt.block_on(client.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod_id,
    }))
    .unwrap();
}

/// Waits (10 s at most) until the CRI plugin's image store has `image`: it
/// learns of a `ctr images import`/`tag` from containerd's events, after
/// the import returned, and a RunPodSandbox before that would try to pull
/// the sandbox image from its registry.
pub fn wait_until_cri_sees(c: &Containerd, image: &str) {
    use k8s_cri::v1::{image_service_client::ImageServiceClient, ImageStatusRequest};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = rt.block_on(async {
        let ch = containerd_client::connect(c.socket()).await.unwrap();
        ImageServiceClient::new(ch)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let req = ImageStatusRequest {
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        let known = rt
            .block_on(client.image_status(req))
            .is_ok_and(|r| r.into_inner().image.is_some());
        if known {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the CRI plugin never saw {image}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
