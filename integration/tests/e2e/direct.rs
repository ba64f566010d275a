//! Starting a root container and calls on a running sandbox go over its
//! control socket, not through a runsc process: counted with a runsc wrapper that logs every invocation.
//! A runsc whose version has no known dialect gets the same results through
//! the CLI.

use std::{fs, path::Path, process::Command};

use test_support::cri::{pod_annotation_args, PodRole};

use crate::{Containerd, OutputExt};

/// A `runsc` that logs its argv to `log` and runs the real one; with
/// `version`, `--version` answers that instead.
fn counting_runsc(dir: &Path, version: Option<&str>) -> (String, std::path::PathBuf) {
    let log = dir.join("runsc-calls.log");
    let script = dir.join("runsc-counting");
    let fake_version = version
        .map(|v| format!("[ \"$1\" = --version ] && {{ echo 'runsc version {v}'; exit 0; }}\n"))
        .unwrap_or_default();
    test_support::host::write_script(
        &script,
        &format!(
            "#!/bin/sh\necho \"$*\" >> {}\n{fake_version}exec runsc \"$@\"\n",
            log.display()
        ),
    );
    let cfg = dir.join("counting.toml");
    fs::write(&cfg, format!("binary_name = \"{}\"\n", script.display())).unwrap();
    (cfg.to_string_lossy().into_owned(), log)
}

fn calls(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            // The verb: the first word that is not a flag.
            l.split_whitespace()
                .find(|w| !w.starts_with("--"))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Exec, ps, pause/resume, metrics and kill on a running container; returns
/// the exec's output and exit code, and the status `runsc state` saw while
/// paused.
fn exercise(c: &Containerd, id: &str, cfg: &str) -> (String, i32, String) {
    c.run_detached(id, &["--runtime-config-path", cfg], &["sleep", "1000"]);
    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        id,
        "sh",
        "-c",
        "echo direct; exit 3",
    ]);
    let code = out.status.code().unwrap_or(-1);
    // With a terminal (ctr resizes it after the start).
    let t = c.ctr_in_tty(
        81,
        21,
        &format!("tasks exec -t --exec-id t1 {id} sh -c 'sleep 0.5; stty size; exit 5'"),
    );
    assert!(t.out().contains("21 81"), "{}", t.out());
    assert_eq!(t.status.code(), Some(5));
    let ps = c.ctr_ok(&["tasks", "ps", id]).out();
    assert!(ps.lines().count() >= 2, "{ps}");
    c.ctr_ok(&["tasks", "pause", id]);
    let root = test_support::containerd::runsc_root(c.namespace()).join(id);
    let state = Command::new("runsc")
        .arg("--root")
        .arg(&root)
        .args(["state", id])
        .output()
        .unwrap()
        .out();
    c.ctr_ok(&["tasks", "resume", id]);
    let m = c.ctr_ok(&["tasks", "metrics", id]).out();
    assert!(m.contains("memory"), "{m}");
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", id]);
    c.wait_status(id, "STOPPED");
    c.ctr_ok(&["tasks", "delete", id]);
    c.ctr_ok(&["containers", "delete", id]);
    let paused: serde_json::Value = serde_json::from_str(&state).unwrap_or_default();
    (
        out.out(),
        code,
        paused["status"].as_str().unwrap_or_default().into(),
    )
}

#[test]
fn calls_on_a_running_sandbox_spawn_no_runsc() {
    let c = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let (cfg, log) = counting_runsc(dir.path(), None);
    let (out, code, paused) = exercise(&c, "direct1", &cfg);
    assert_eq!((out.as_str(), code), ("direct\n", 3));
    assert_eq!(
        paused, "paused",
        "runsc's own state file records a direct pause"
    );
    let verbs = calls(&log);
    for verb in ["exec", "ps", "pause", "resume", "events", "kill", "wait"] {
        assert!(
            !verbs.iter().any(|v| v == verb),
            "runsc {verb} was spawned: {verbs:?}"
        );
    }
    c.stop_and_check();
}

#[test]
fn a_runsc_of_unknown_version_gets_the_same_results_through_the_cli() {
    let c = Containerd::start();
    let dir = tempfile::tempdir().unwrap();
    let (cfg, log) = counting_runsc(dir.path(), Some("0.0~20230101.0"));
    let (out, code, paused) = exercise(&c, "viacli1", &cfg);
    assert_eq!((out.as_str(), code), ("direct\n", 3));
    assert_eq!(paused, "paused");
    let verbs = calls(&log);
    for verb in ["exec", "ps", "pause", "resume", "kill"] {
        assert!(
            verbs.iter().any(|v| v == verb),
            "no runsc {verb}: {verbs:?}"
        );
    }
    c.stop_and_check();
}

#[test]
fn a_pod_member_keeps_no_runsc_process() {
    let c = Containerd::start();
    let (sb, member) = (
        pod_annotation_args(PodRole::Sandbox, "podd"),
        pod_annotation_args(PodRole::Member, "podd"),
    );
    let sb: Vec<&str> = sb.iter().map(String::as_str).collect();
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    c.run_detached("podd", &sb, &["sleep", "1000"]);
    for id in ["appd1", "appd2"] {
        c.run_detached(id, &member, &["sleep", "1000"]);
    }
    let helpers = test_support::containerd::pids_matching(|cmd| {
        cmd.contains("runsc")
            && (cmd.contains(" wait ") || cmd.contains("runsc-exec"))
            && cmd.contains("podd")
    });
    assert!(helpers.is_empty(), "runsc processes kept: {helpers:?}");
    // The members' exits still arrive (from the sandbox's Wait).
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "appd1"]);
    c.wait_status("appd1", "STOPPED");
    for id in ["appd2", "podd"] {
        c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", id]);
        c.wait_status(id, "STOPPED");
    }
    for id in ["appd1", "appd2", "podd"] {
        c.ctr_ok(&["tasks", "delete", id]);
    }
    c.stop_and_check();
}
