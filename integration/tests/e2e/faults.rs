//! Off the happy path: a runsc that hangs, ids that prefix each other, a
//! runsc flag this runsc does not know, a missing executable, a shim that
//! is killed, containerd restarted in the middle of a Create.

use std::{fs, time::Duration};

use crate::{Containerd, OutputExt};

fn config(c: &Containerd, name: &str, text: &str) -> String {
    let p = c.dir().join(name);
    fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn ids_that_prefix_each_other_coexist() {
    let c = Containerd::start();
    c.run_detached("web10", &[], &["sleep", "1000"]);
    let out = c.run("web1", &[], &["echo", "web1 ran"]);
    assert_eq!(out.out(), "web1 ran\n", "{}", out.err());
    c.run_detached("web1", &[], &["sleep", "1000"]);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "web1"]);
    c.wait_status("web1", "STOPPED");
    // web10 is untouched by everything done to web1.
    assert_eq!(c.task_status("web10").as_deref(), Some("RUNNING"));
    c.ctr_ok(&["tasks", "delete", "web1"]);
    c.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "web10"]);
    c.wait_status("web10", "STOPPED");
    c.stop_and_check();
}

#[test]
fn an_unknown_runsc_flag_is_refused_by_name() {
    let c = Containerd::start();
    let cfg = config(&c, "typo.toml", "[runsc_config]\nnetwrok = \"none\"\n");
    let out = c.run("typo", &["--runtime-config-path", &cfg], &["echo", "ran"]);
    assert_ne!(out.code(), 0);
    assert!(out.err().contains("\"netwrok\""), "{}", out.err());
    // runsc's usage text never reaches the container's output.
    assert!(!out.out().contains("Usage"), "{}", out.out());
    let cfg = config(&c, "owned.toml", "[runsc_config]\nlog-format = \"text\"\n");
    let out = c.run("owned", &["--runtime-config-path", &cfg], &["true"]);
    assert!(out.err().contains("log-format"), "{}", out.err());
    c.stop_and_check();
}

#[test]
fn a_missing_executable_fails_at_create() {
    let c = Containerd::start();
    let out = c.run("nobin", &[], &["no-such-binary"]);
    assert_ne!(out.code(), 0);
    assert!(
        out.err()
            .contains("exec: \"no-such-binary\": executable file not found in $PATH"),
        "{}",
        out.err()
    );
    let out = c.run("nobin2", &[], &["/no/such/binary"]);
    assert!(
        out.err()
            .contains("/no/such/binary: no such file or directory"),
        "{}",
        out.err()
    );
    c.stop_and_check();
}

#[test]
fn a_hung_runsc_create_is_ended_at_its_deadline() {
    let c = Containerd::start();
    // On this host `--platform=kvm` hangs `runsc create` forever.
    let cfg = config(
        &c,
        "kvm.toml",
        "[runsc_config]\nplatform = \"kvm\"\n[runsc_timeouts]\ncreate = 3\n",
    );
    let started = std::time::Instant::now();
    let out = c.run("kvm1", &["--runtime-config-path", &cfg], &["true"]);
    assert_ne!(out.code(), 0);
    assert!(started.elapsed() < Duration::from_secs(60));
    if std::path::Path::new("/dev/kvm").exists() && started.elapsed() >= Duration::from_secs(3) {
        assert!(
            out.err().contains("did not finish within 3s"),
            "{}",
            out.err()
        );
    }
    // No runsc, gofer or sandbox, mount or state is left (checked here).
    c.stop_and_check();
}

#[test]
fn a_killed_shim_leaves_no_socket_after_containerds_cleanup() {
    let c = Containerd::start();
    c.run_detached("crash1", &[], &["sleep", "1000"]);
    let pids = c.shim_pids();
    assert_eq!(pids.len(), 1);
    assert_eq!(c.own_sockets().len(), 1);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // containerd sees the shim die and runs its `delete` action.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !c.own_sockets().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.own_sockets().is_empty(), "{:?}", c.own_sockets());
    // containerd has reported the task stopped and dropped it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.task_status("crash1").is_some_and(|s| s != "STOPPED")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.ctr(&["tasks", "delete", "crash1"]);
    c.stop_and_check();
}

#[test]
fn execs_racing_a_kill_all_end_and_report() {
    let c = Containerd::start();
    c.run_detached("race1", &[], &["sleep", "1000"]);
    // The execs' FIFOs go with the test: an exec the kill overtakes can
    // leave them behind (ctr's own cleanup fails with the task gone).
    let fifo_dir = c.fifo_dir();
    let execs: Vec<_> = (0..3)
        .map(|i| {
            c.ctr_cmd()
                .args(["tasks", "exec", "--fifo-dir", &fifo_dir])
                .args(["--exec-id", &format!("x{i}"), "race1"])
                .args(["sleep", "1000"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let killed = std::thread::scope(|s| {
        let kill = s.spawn(|| c.ctr(&["tasks", "kill", "-s", "SIGKILL", "race1"]));
        let exec = s.spawn(|| {
            c.ctr(&[
                "tasks",
                "exec",
                "--fifo-dir",
                &fifo_dir,
                "--exec-id",
                "late",
                "race1",
                "true",
            ])
        });
        // Ran or refused, either way it ends (it hung when the container
        // stopped between its Exec and its Start).
        let late = exec.join().unwrap();
        assert!(late.status.code().is_some(), "late exec: {}", late.err());
        kill.join().unwrap()
    });
    assert_eq!(killed.code(), 0, "{}", killed.err());
    c.wait_status("race1", "STOPPED");
    // Every exec's client gets its exit: the sandbox took them all down.
    for mut e in execs {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if e.try_wait().unwrap().is_some() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "an exec never ended");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    c.ctr_ok(&["tasks", "delete", "race1"]);
    c.stop_and_check();
}

#[test]
fn a_privileged_container_runs_without_the_capabilities_runsc_lacks() {
    let c = Containerd::start();
    let out = c.run(
        "priv1",
        &["--privileged"],
        &["sh", "-c", "grep CapEff /proc/self/status"],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    assert!(out.out().contains("CapEff"), "{}", out.out());
    c.stop_and_check();
}

// Seen in the soak: containerd restarted while a shim was in the middle of
// a Create, and that shim, its sandbox and its gofer ran on with no task
// containerd knew of.
#[test]
fn a_containerd_restart_during_a_create_leaves_no_shim_or_sandbox() {
    let mut c = Containerd::start();
    // A runsc whose `create` takes 6 s: containerd restarts meanwhile.
    let runsc = test_support::host::which("runsc").expect("runsc on PATH");
    let slow = c.dir().join("slow-runsc");
    fs::write(
        &slow,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = create ] && sleep 6; done\nexec {} \"$@\"\n",
            runsc.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cfg = config(
        &c,
        "slow.toml",
        &format!("binary_name = \"{}\"\n", slow.display()),
    );
    let fifo_dir = c.fifo_dir();
    let mut run = c
        .ctr_cmd()
        .args([
            "run",
            "-d",
            "--fifo-dir",
            &fifo_dir,
            "--runtime",
            crate::RUNTIME,
        ])
        .args(["--runtime-config-path", &cfg])
        .args([crate::IMAGE_REF, "restart1", "sleep", "1000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The shim is in `runsc create` when containerd goes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.shim_pids().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!c.shim_pids().is_empty(), "no shim started");
    std::thread::sleep(Duration::from_secs(2));
    c.restart();
    let _ = run.wait();
    // Whatever containerd made of it, a container it still knows is
    // deleted the usual way; one it forgot must not live on.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if c.task_status("restart1").is_some() {
            let _ = c.ctr(&["tasks", "delete", "-f", "restart1"]);
        }
        if c.shim_pids().is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a shim outlived the Create containerd forgot: {:?}\n{}",
            c.shim_pids(),
            c.log()
                .lines()
                .filter(|l| l.contains("restart1") || l.contains("shim"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = c.ctr(&["containers", "delete", "restart1"]);
    c.stop_and_check();
}
