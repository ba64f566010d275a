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
    // A stopped task: TERM/KILL are accepted, like runc's shim.
    c.run_detached("k2", &[], &["sleep", "1000"]);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "k2"]);
    c.wait_status("k2", "STOPPED");
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "k2"]);
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

#[test]
fn checkpoint_leaving_it_running_is_refused_clearly() {
    let c = Containerd::start();
    c.run_detached("ck0", &[], &["sleep", "1000"]);
    let out = c.ctr(&["containers", "checkpoint", "--task", "ck0", "ckpt/ck0:1"]);
    assert_ne!(out.code(), 0);
    assert!(
        out.err().contains("not supported by this runsc"),
        "{}",
        out.err()
    );
    // The container survives the refusal.
    c.wait_status("ck0", "RUNNING");
    c.stop_and_check();
}
