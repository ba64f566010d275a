//! `ctr task exec`: stdio, exit codes, kill, and pids naming the exec.

use std::{
    io::Write,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use crate::{Containerd, OutputExt};

#[test]
fn exec_stdio_exit_code_and_kill() {
    let c = Containerd::start();
    c.run_detached("ex1", &[], &["sleep", "1000"]);

    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "ex1",
        "sh",
        "-c",
        "echo in-exec; echo err >&2; exit 5",
    ]);
    assert_eq!(out.code(), 5, "{}", out.err());
    assert_eq!(out.out(), "in-exec\n");
    assert_eq!(out.err(), "err\n");

    // stdin reaches the exec and EOF ends it (ctr sends CloseIO on EOF).
    let mut child = c
        .ctr_cmd()
        .args([
            "tasks",
            "exec",
            "--exec-id",
            "e2",
            "ex1",
            "sh",
            "-c",
            "cat | wc -c",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"12345").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.code(), 0, "{}", out.err());
    assert_eq!(out.out().trim(), "5");

    // A long exec, listed by ps with its exec id, then killed.
    let mut long = c
        .ctr_cmd()
        .args(["tasks", "exec", "--exec-id", "e3", "ex1", "sleep", "999"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ps = c.ctr(&["tasks", "ps", "ex1"]).out();
        if ps.contains("e3") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "exec e3 never listed by ps:\n{ps}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    c.ctr_ok(&["tasks", "kill", "--exec-id", "e3", "-s", "SIGKILL", "ex1"]);
    let status = long.wait().unwrap();
    assert_eq!(status.code(), Some(137));

    // Exec of a missing binary fails with runsc's words, not a hang.
    let out = c.ctr(&["tasks", "exec", "--exec-id", "e4", "ex1", "/no/such/binary"]);
    assert_ne!(out.code(), 0);

    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "ex1"]);
    c.wait_status("ex1", "STOPPED");
    c.stop_and_check();
}

#[test]
fn exec_with_tty() {
    let c = Containerd::start();
    c.run_detached("ex2", &[], &["sleep", "1000"]);
    let out = c.ctr_in_tty(
        80,
        20,
        "tasks exec -t --exec-id t1 ex2 sh -c 'sleep 0.5; stty size; exit 4'",
    );
    assert!(out.out().contains("20 80"), "{}", out.out());
    assert_eq!(out.code(), 4);
    c.stop_and_check();
}
