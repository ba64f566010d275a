//! Live restore (`"live-restore": true`): dockerd restarts (and its
//! containerd with it) while a container runs; the container goes on, and
//! the new daemon shows it, execs in it, follows its output and stops it.

use std::time::Duration;

use test_support::docker::DockerdOptions;

use crate::{run_detached, status, Dockerd, OutputExt, Runtime};

/// How many `tick` lines a container has logged so far.
fn ticks(d: &Dockerd, name: &str) -> usize {
    d.docker_ok(&["logs", name])
        .out()
        .lines()
        .filter(|l| *l == "tick")
        .count()
}

fn survives_a_daemon_restart(rt: Runtime) {
    let mut d = Dockerd::start_with(DockerdOptions { live_restore: true });
    run_detached(
        &d,
        rt,
        "survivor",
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 3' TERM; while true; do echo tick; sleep 0.1; done",
        ],
    );
    let pid = d.inspect("survivor", "{{.State.Pid}}");
    let started = d.inspect("survivor", "{{.State.StartedAt}}");
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "shims: {shims:?}");

    d.restart();

    // The same container, process and shim, still running.
    assert_eq!(status(&d, "survivor"), "running");
    assert_eq!(d.inspect("survivor", "{{.State.Pid}}"), pid);
    assert_eq!(d.inspect("survivor", "{{.State.StartedAt}}"), started);
    assert_eq!(d.shim_pids(), shims);
    // The new daemon controls it: exec, output, stop.
    assert_eq!(
        d.docker_text(&["exec", "survivor", "echo", "alive"]),
        "alive"
    );
    let before = ticks(&d, "survivor");
    d.wait_until(
        "ticks logged after the restart",
        Duration::from_secs(30),
        || ticks(&d, "survivor") > before + 2,
    );
    d.docker_ok(&["stop", "-t", "20", "survivor"]);
    assert_eq!(d.inspect("survivor", "{{.State.ExitCode}}"), "3");
    d.stop_and_check();
}

/// Named like the other tests (`<test>::runc`, `<test>::runsc`).
mod live_restore {
    use super::*;

    #[test]
    fn runc() {
        survives_a_daemon_restart(Runtime::Runc);
    }

    #[test]
    fn runsc() {
        survives_a_daemon_restart(Runtime::Runsc);
    }
}
