//! Kill, pause/resume, ps and metrics.

use crate::{Containerd, OutputExt};

#[test]
fn kill_term_and_kill() {
    let c = Containerd::start();
    c.run_detached("k1", &[], &["sleep", "1000"]);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGTERM", "k1"]);
    c.wait_status("k1", "STOPPED");
    let out = c.ctr(&["tasks", "delete", "k1"]);
    assert!(out.status.success(), "{}", out.err());
    // A stopped task: "process already finished" (NotFound), as runc's shim.
    c.run_detached("k2", &[], &["sleep", "1000"]);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "k2"]);
    c.wait_status("k2", "STOPPED");
    let again = c.ctr(&["tasks", "kill", "-s", "SIGKILL", "k2"]);
    assert_ne!(again.code(), 0);
    assert!(again.err().contains("already finished"), "{}", again.err());
    c.stop_and_check();
}

#[test]
fn pause_resume_ps_and_metrics() {
    let c = Containerd::start();
    c.run_detached("p1", &[], &["sleep", "1000"]);
    c.ctr_ok(&["tasks", "pause", "p1"]);
    assert_eq!(c.task_status("p1").as_deref(), Some("PAUSED"));
    c.ctr_ok(&["tasks", "resume", "p1"]);
    assert_eq!(c.task_status("p1").as_deref(), Some("RUNNING"));
    let ps = c.ctr_ok(&["tasks", "ps", "p1"]).out();
    assert!(ps.lines().count() >= 2, "{ps}");
    let m = c.ctr_ok(&["tasks", "metrics", "p1"]).out();
    assert!(
        m.contains("memory.usage_in_bytes") || m.contains("memory.usage"),
        "{m}"
    );
    let usage: u64 = m
        .lines()
        .find(|l| l.starts_with("memory.usage_in_bytes") || l.starts_with("memory.usage "))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(usage > 0, "{m}");
    c.stop_and_check();
}

/// `docker top` filters the host's `ps` by the pids ListPids returns: none
/// may be an unrelated host process's. In-sandbox pids start at 1, where
/// the host has its own low-numbered processes.
#[test]
fn listed_pids_are_never_an_unrelated_host_process() {
    let c = Containerd::start();
    c.run_detached(
        "top1",
        &[],
        &["sh", "-c", "sleep 1000 & sleep 1000 & exec sleep 1000"],
    );
    let init = c.task_pid("top1");
    let ps = c.ctr_ok(&["tasks", "ps", "top1"]).out();
    let pids: Vec<u32> = ps
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(pids.contains(&init), "{ps}");
    for pid in pids.iter().filter(|p| **p != init) {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} is a host process's: {ps}"
        );
    }
    c.stop_and_check();
}

#[test]
fn ctr_checkpoint_leaves_it_running() {
    let c = Containerd::start();
    // The counter lives only in the sandbox's memory (a tmpfs inside gVisor).
    c.run_detached(
        "ck0",
        &["--mount", "type=tmpfs,src=tmpfs,dst=/state,options=rw"],
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /state/n; sleep 0.1; done",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1000));
    // The writer truncates then writes: an empty read is retried.
    let read = |eid: &str| -> u64 {
        for i in 0..50 {
            let id = format!("{eid}-{i}");
            let out = c.ctr_ok(&["tasks", "exec", "--exec-id", &id, "ck0", "cat", "/state/n"]);
            if let Ok(n) = out.out().trim().parse() {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("/state/n never held a number");
    };
    let first = read("r0");
    // ctr task checkpoint: the task keeps running, with its state.
    c.ctr_ok(&["tasks", "checkpoint", "ck0"]);
    assert_eq!(c.task_status("ck0").as_deref(), Some("RUNNING"));
    let before = read("r1");
    assert!(before >= first, "{before} < {first}");
    // ctr containers checkpoint pauses the task around it: it comes back
    // running. (Restoring from an image is covered through the gRPC API.)
    c.ctr_ok(&["containers", "checkpoint", "--task", "ck0", "ckpt/ck0:1"]);
    assert_eq!(c.task_status("ck0").as_deref(), Some("RUNNING"));
    let after = read("r2");
    assert!(after >= before, "counter went back: {after} < {before}");
    c.stop_and_check();
}
