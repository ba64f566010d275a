//! What `ctr` cannot express, through containerd's gRPC API: Update, and a
//! checkpoint that exits followed by a restore from it (Docker's
//! `checkpoint create` / `start --checkpoint` flow).

use containerd_client::{
    services::v1::{
        snapshots::{snapshots_client::SnapshotsClient, MountsRequest},
        tasks_client::TasksClient,
        CheckpointTaskRequest, CreateTaskRequest, StartRequest, UpdateTaskRequest,
    },
    tonic::Request,
    with_namespace,
};
use prost_types::Any;

use test_support::cgroup::memory_limit;
use test_support::cri::{pod_annotation_args, PodRole};

use crate::{Containerd, OutputExt};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn update_memory_limit_reaches_sandbox_cgroup() {
    let c = Containerd::start();
    c.run_detached("up1", &[], &["sleep", "1000"]);
    let pid = c.task_pid("up1");
    let want: u64 = 256 << 20;
    assert_ne!(memory_limit(pid), want);
    let ns = c.namespace().to_string();
    rt().block_on(async {
        let ch = containerd_client::connect(c.socket()).await.unwrap();
        let mut tasks = TasksClient::new(ch);
        let res = serde_json::json!({"memory": {"limit": want}});
        let req = UpdateTaskRequest {
            container_id: "up1".into(),
            resources: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: serde_json::to_vec(&res).unwrap(),
            }),
            ..Default::default()
        };
        tasks.update(with_namespace!(req, ns)).await.unwrap();
    });
    assert_eq!(memory_limit(pid), want);
    c.stop_and_check();
}

#[test]
fn a_pod_members_update_never_touches_the_pods_cgroup() {
    let c = Containerd::start();
    let (sb, member) = (
        pod_annotation_args(PodRole::Sandbox, "podu"),
        pod_annotation_args(PodRole::Member, "podu"),
    );
    let sb: Vec<&str> = sb.iter().map(String::as_str).collect();
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    c.run_detached("podu", &sb, &["sleep", "1000"]);
    c.run_detached("appu", &member, &["sleep", "1000"]);
    let pid = c.task_pid("podu");
    let before = memory_limit(pid);
    let ns = c.namespace().to_string();
    let status = rt().block_on(async {
        let ch = containerd_client::connect(c.socket()).await.unwrap();
        let mut tasks = TasksClient::new(ch);
        let res = serde_json::json!({"memory": {"limit": 64u64 << 20}});
        let req = UpdateTaskRequest {
            container_id: "appu".into(),
            resources: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: serde_json::to_vec(&res).unwrap(),
            }),
            ..Default::default()
        };
        tasks.update(with_namespace!(req, ns)).await.unwrap_err()
    });
    assert_eq!(
        status.code(),
        containerd_client::tonic::Code::FailedPrecondition,
        "{status:?}"
    );
    assert!(status.message().contains("whole pod"), "{status:?}");
    assert_eq!(memory_limit(pid), before);
    for id in ["appu", "podu"] {
        c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", id]);
        c.wait_status(id, "STOPPED");
        c.ctr_ok(&["tasks", "delete", id]);
    }
    c.stop_and_check();
}

#[test]
fn checkpoint_with_exit_then_restore_keeps_state() {
    let c = Containerd::start();
    // The counter lives only in the sandbox's memory (a tmpfs inside gVisor),
    // so only a real restore brings it back.
    c.run_detached(
        "ck1",
        &["--mount", "type=tmpfs,src=tmpfs,dst=/state,options=rw"],
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /state/n; sleep 0.1; done",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // The writer truncates then writes: an empty read is retried.
    let read = |eid: &str| -> u64 {
        for i in 0..50 {
            let id = format!("{eid}-{i}");
            let out = c.ctr_ok(&["tasks", "exec", "--exec-id", &id, "ck1", "cat", "/state/n"]);
            if let Ok(n) = out.out().trim().parse() {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("/state/n never held a number");
    };
    let before = read("r1");
    assert!(before > 3);
    let ns = c.namespace().to_string();
    let rt = rt();
    let checkpoint = rt.block_on(async {
        let ch = containerd_client::connect(c.socket()).await.unwrap();
        let mut tasks = TasksClient::new(ch);
        // containerd.runc.v1.CheckpointOptions { exit: true }
        let opts = Any {
            type_url: "containerd.runc.v1.CheckpointOptions".into(),
            value: vec![0x08, 0x01],
        };
        let req = CheckpointTaskRequest {
            container_id: "ck1".into(),
            options: Some(opts),
            ..Default::default()
        };
        let resp = tasks
            .checkpoint(with_namespace!(req, ns))
            .await
            .unwrap()
            .into_inner();
        resp.descriptors
            .into_iter()
            .find(|d| d.media_type.contains("checkpoint") && !d.media_type.contains("config"))
            .expect("checkpoint descriptor")
    });
    c.wait_status("ck1", "STOPPED");
    c.ctr_ok(&["tasks", "delete", "ck1"]);
    rt.block_on(async {
        let ch = containerd_client::connect(c.socket()).await.unwrap();
        let mut snaps = SnapshotsClient::new(ch.clone());
        let req = MountsRequest {
            snapshotter: "overlayfs".into(),
            key: "ck1".into(),
        };
        let mounts = snaps
            .mounts(with_namespace!(req, ns))
            .await
            .unwrap()
            .into_inner()
            .mounts;
        let mut tasks = TasksClient::new(ch);
        let req = CreateTaskRequest {
            container_id: "ck1".into(),
            rootfs: mounts,
            checkpoint: Some(checkpoint),
            ..Default::default()
        };
        tasks.create(with_namespace!(req, ns)).await.unwrap();
        let req = StartRequest {
            container_id: "ck1".into(),
            ..Default::default()
        };
        tasks.start(with_namespace!(req, ns)).await.unwrap();
    });
    c.wait_status("ck1", "RUNNING");
    let after = read("r2");
    assert!(
        after >= before,
        "restored counter {after} < checkpointed {before}"
    );
    c.stop_and_check();
}
