//! Update on runsc's systemd cgroup driver goes through systemd, so it
//! survives systemd rewriting the unit's cgroup.

use containerd_client::{
    services::v1::{tasks_client::TasksClient, UpdateTaskRequest},
    tonic::Request,
    with_namespace,
};
use prost_types::Any;
use test_support::cgroup::{cpu_quota, memory_limit};

use crate::{daemon_reload, unit_property, Containerd};

fn update(c: &Containerd, id: &str, res: serde_json::Value) {
    let ns = c.namespace().to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = containerd_client::connect(c.socket()).await.unwrap();
        let req = UpdateTaskRequest {
            container_id: id.into(),
            resources: Some(Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
                value: serde_json::to_vec(&res).unwrap(),
            }),
            ..Default::default()
        };
        TasksClient::new(ch)
            .update(with_namespace!(req, ns))
            .await
            .unwrap();
    });
}

#[test]
#[ignore = "needs systemd and cgroup v2: make vm runs it"]
fn an_update_survives_daemon_reload() {
    let c = Containerd::start();
    let cfg = c.dir().join("runsc.toml");
    std::fs::write(&cfg, "[runsc_config]\nsystemd-cgroup = \"true\"\n").unwrap();
    let id = format!("sdup{}", std::process::id());
    let cgroup = format!("system.slice:runsc-shim-test:{id}");
    let unit = format!("runsc-shim-test-{id}.scope");
    c.run_detached(
        &id,
        &[
            "--runtime-config-path",
            cfg.to_str().unwrap(),
            "--cgroup",
            &cgroup,
        ],
        &["sleep", "1000"],
    );
    let pid = c.task_pid(&id);
    let mem: u64 = 200 << 20;
    update(
        &c,
        &id,
        serde_json::json!({"memory": {"limit": mem}, "cpu": {"quota": 50000, "period": 100000}}),
    );
    assert_eq!(unit_property(&unit, "MemoryMax"), mem.to_string());
    assert_eq!(unit_property(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(memory_limit(pid), mem);
    assert_eq!(cpu_quota(pid), (Some(50000), 100000));
    daemon_reload();
    assert_eq!(memory_limit(pid), mem, "lost at daemon-reload");
    assert_eq!(
        cpu_quota(pid),
        (Some(50000), 100000),
        "lost at daemon-reload"
    );
    c.ctr_ok(&["tasks", "kill", "-s", "KILL", &id]);
    c.stop_and_check();
}
