//! Two containers in one sandbox through the CRI annotations: one shim.

use std::process::Command;

use test_support::cri::{pod_annotation_args, PodRole};

use crate::{Containerd, OutputExt};

#[test]
fn two_containers_one_sandbox_one_shim() {
    let c = Containerd::start();
    let sandbox = [
        "--annotation",
        "io.kubernetes.cri.container-type=sandbox",
        "--annotation",
        "io.kubernetes.cri.sandbox-id=pod1",
    ];
    let member = [
        "--annotation",
        "io.kubernetes.cri.container-type=container",
        "--annotation",
        "io.kubernetes.cri.sandbox-id=pod1",
    ];
    c.run_detached("pod1", &sandbox, &["sleep", "1000"]);
    c.run_detached("app1", &member, &["sleep", "1000"]);
    c.wait_status("app1", "RUNNING");
    // A spawned server that finds the pod's socket served exits by itself
    // (the bound is for a hang: under load it takes seconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.shim_pids().len() > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pids = c.shim_pids();
    let cmds: Vec<String> = pids
        .iter()
        .map(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ")
        })
        .collect();
    assert_eq!(
        pids.len(),
        1,
        "one shim per pod: {cmds:?}\n{}",
        c.log_tail(40)
    );
    // The leak check finds this pod's socket by containerd's derivation.
    assert_eq!(c.own_sockets().len(), 1, "pod socket");
    // Each sandbox has a runsc root of its own (ids resolve by prefix).
    let root = test_support::containerd::runsc_root(c.namespace()).join("pod1");
    let list = Command::new("runsc")
        .arg("--root")
        .arg(&root)
        .arg("list")
        .output()
        .unwrap();
    let text = list.out();
    assert!(text.contains("pod1") && text.contains("app1"), "{text}");

    let out = c.ctr(&["tasks", "exec", "--exec-id", "x", "app1", "echo", "in-app"]);
    assert_eq!(out.out(), "in-app\n", "{}", out.err());

    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "app1"]);
    c.wait_status("app1", "STOPPED");
    c.ctr_ok(&["tasks", "delete", "app1"]);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "pod1"]);
    c.wait_status("pod1", "STOPPED");
    c.stop_and_check();
}

#[test]
fn a_pod_member_with_a_terminal() {
    let c = Containerd::start();
    let ann = |kind: &str| {
        format!(
            "--annotation io.kubernetes.cri.container-type={kind} --annotation io.kubernetes.cri.sandbox-id=podt"
        )
    };
    c.run_detached(
        "podt",
        &ann("sandbox").split(' ').collect::<Vec<_>>(),
        &["sleep", "1000"],
    );
    let out = c.ctr_in_tty(
        80,
        20,
        &format!(
            "run -t --rm --runtime {} {} {} tty1 sh -c 'sleep 0.3; stty size; exit 3'",
            crate::RUNTIME,
            ann("container"),
            crate::IMAGE_REF,
        ),
    );
    let text = out.out();
    assert!(text.contains("20 80"), "{text}\n{}", out.err());
    assert_eq!(out.code(), 3, "{text}");
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "podt"]);
    c.wait_status("podt", "STOPPED");
    c.stop_and_check();
}

#[test]
fn members_sharing_the_pods_pid_namespace_see_the_sandbox_as_pid_1() {
    let c = Containerd::start();
    let sb = pod_annotation_args(PodRole::Sandbox, "podp");
    let sb: Vec<&str> = sb.iter().map(String::as_str).collect();
    c.run_detached("podp", &sb, &["sleep", "1000"]);
    let ls = c.ctr_ok(&["tasks", "ls"]).out();
    let pid = ls
        .lines()
        .find(|l| l.starts_with("podp "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    // As CRI asks for shareProcessNamespace: the pause process's namespace.
    let mut member = pod_annotation_args(PodRole::Member, "podp");
    member.extend(["--with-ns".into(), format!("pid:/proc/{pid}/ns/pid")]);
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    let out = c.run(
        "appp",
        &member,
        &["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"],
    );
    assert_eq!(out.out().trim(), "sleep 1000", "{}", out.err());
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "podp"]);
    c.wait_status("podp", "STOPPED");
    c.stop_and_check();
}

#[test]
fn a_pods_dev_shm_is_one_tmpfs_inside_the_sandbox() {
    let c = Containerd::start();
    // As CRI does: the sandbox's shm directory bind-mounted on every member.
    let shm = c.dir().join("podshm");
    std::fs::create_dir_all(&shm).unwrap();
    let mount = format!(
        "type=bind,src={},dst=/dev/shm,options=rbind:rw",
        shm.display()
    );
    let ann = |role| {
        let mut args = pod_annotation_args(role, "pods");
        args.extend(["--mount".to_string(), mount.clone()]);
        args
    };
    let sb = ann(PodRole::Sandbox);
    let sb: Vec<&str> = sb.iter().map(String::as_str).collect();
    c.run_detached("pods", &sb, &["sleep", "1000"]);
    let member = ann(PodRole::Member);
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    let out = c.run("apps", &member, &["sh", "-c", "echo shared > /dev/shm/x"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let seen = c.ctr_ok(&[
        "tasks",
        "exec",
        "--exec-id",
        "r",
        "pods",
        "cat",
        "/dev/shm/x",
    ]);
    assert_eq!(seen.out(), "shared\n");
    // It lives in the sandbox's memory, not in the host directory.
    assert_eq!(std::fs::read_dir(&shm).unwrap().count(), 0);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "pods"]);
    c.wait_status("pods", "STOPPED");
    c.stop_and_check();
}
