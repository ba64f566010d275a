//! A container's life through the everyday commands: `run` and its exit
//! codes, `wait`, `logs -f`, `stop` with a timeout, `kill` with signals,
//! `pause`/`unpause`, `restart`, restart policies, `--init`, health checks
//! and `rm -f`.

use std::time::{Duration, Instant};

use crate::{assert_ok, run, run_detached, status, wait_status, OutputExt, SLEEP};

/// A container that says which signals it got and exits 3 on SIGTERM.
const TRAPPING: &str = "trap 'echo usr1' USR1; trap 'echo hup' HUP; \
    trap 'echo term; exit 3' TERM; echo ready; while true; do sleep 0.1; done";

/// A container that prints `tick` every 0.1 s.
const TICKING: &str = "while true; do echo tick; sleep 0.1; done";

/// How many `tick` lines a container has logged so far.
fn ticks(d: &crate::Dockerd, name: &str) -> usize {
    d.docker_ok(&["logs", name])
        .out()
        .lines()
        .filter(|l| *l == "tick")
        .count()
}

/// Waits until `name`'s log has a line `line`.
fn wait_for_log(d: &crate::Dockerd, name: &str, line: &str) {
    d.wait_until(
        &format!("{name} logging {line:?}"),
        Duration::from_secs(30),
        || {
            d.docker_ok(&["logs", name])
                .out()
                .lines()
                .any(|l| l == line)
        },
    );
}

on_both_runtimes! {
    /// `docker run`'s exit code is the container's; stdout and stderr stay
    /// apart; a missing command is 127, as Docker documents.
    fn run_exit_codes(d, rt) {
        let out = run(d, rt, &[], &["sh", "-c", "echo out; echo err >&2"]);
        assert_ok(&out, "run echo");
        assert_eq!(out.out(), "out\n");
        assert!(out.err().contains("err\n") && !out.err().contains("out"), "{}", out.err());
        for (cmd, code) in [("true", 0), ("false", 1), ("exit 7", 7), ("exit 255", 255)] {
            let out = run(d, rt, &[], &["sh", "-c", cmd]);
            assert_eq!(out.code(), code, "{cmd}: {}", out.err());
        }
        let out = run(d, rt, &[], &["/no/such/command"]);
        assert_eq!(out.code(), 127, "missing command: {}", out.err());
    }
}

on_both_runtimes! {
    /// `docker wait` blocks until the container exits and prints its code.
    fn wait_prints_the_exit_code(d, rt) {
        run_detached(d, rt, "waited", &[], &["sh", "-c", "sleep 1; exit 5"]);
        assert_eq!(d.docker_text(&["wait", "waited"]), "5");
        assert_eq!(d.inspect("waited", "{{.State.ExitCode}}"), "5");
        assert_eq!(status(d, "waited"), "exited");
    }
}

on_both_runtimes! {
    /// `docker logs -f` follows the output until the container exits.
    fn logs_follow(d, rt) {
        run_detached(
            d,
            rt,
            "talker",
            &[],
            &["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done; echo bye >&2"],
        );
        let out = d.docker_ok(&["logs", "-f", "talker"]);
        let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(lines, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
        assert_eq!(out.err(), "bye\n");
        assert_eq!(status(d, "talker"), "exited");
    }
}

on_both_runtimes! {
    /// `docker stop` sends SIGTERM and waits: a container that handles it
    /// exits at once with its own code; one that ignores it is killed when
    /// the timeout passes (137).
    fn stop_with_timeout(d, rt) {
        run_detached(d, rt, "polite", &[], &["sh", "-c", TRAPPING]);
        wait_for_log(d, "polite", "ready");
        let started = Instant::now();
        d.docker_ok(&["stop", "-t", "20", "polite"]);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert_eq!(d.inspect("polite", "{{.State.ExitCode}}"), "3");
        wait_for_log(d, "polite", "term");

        run_detached(
            d,
            rt,
            "stubborn",
            &[],
            &["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 0.1; done"],
        );
        wait_for_log(d, "stubborn", "ready");
        let started = Instant::now();
        d.docker_ok(&["stop", "-t", "2", "stubborn"]);
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(15), "{took:?}");
        assert_eq!(d.inspect("stubborn", "{{.State.ExitCode}}"), "137");
        assert_eq!(status(d, "stubborn"), "exited");
    }
}

on_both_runtimes! {
    /// `docker kill -s` delivers the signal to the container's process;
    /// plain `docker kill` is SIGKILL (137).
    fn kill_signals(d, rt) {
        run_detached(d, rt, "target", &[], &["sh", "-c", TRAPPING]);
        wait_for_log(d, "target", "ready");
        d.docker_ok(&["kill", "-s", "USR1", "target"]);
        wait_for_log(d, "target", "usr1");
        d.docker_ok(&["kill", "-s", "SIGHUP", "target"]);
        wait_for_log(d, "target", "hup");
        assert_eq!(status(d, "target"), "running");
        d.docker_ok(&["kill", "target"]);
        wait_status(d, "target", "exited");
        assert_eq!(d.inspect("target", "{{.State.ExitCode}}"), "137");
    }
}

on_both_runtimes! {
    /// A paused container makes no progress and says so; unpaused it goes on.
    fn pause_and_unpause(d, rt) {
        run_detached(d, rt, "ticker", &[], &["sh", "-c", TICKING]);
        d.wait_until("first ticks", Duration::from_secs(30), || ticks(d, "ticker") > 2);
        d.docker_ok(&["pause", "ticker"]);
        assert_eq!(status(d, "ticker"), "paused");
        assert_eq!(d.inspect("ticker", "{{.State.Paused}}"), "true");
        // Output already on its way may still land: count from a moment on.
        std::thread::sleep(Duration::from_millis(300));
        let frozen = ticks(d, "ticker");
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(ticks(d, "ticker"), frozen, "a paused container went on");
        d.docker_ok(&["unpause", "ticker"]);
        assert_eq!(status(d, "ticker"), "running");
        d.wait_until("ticks after unpause", Duration::from_secs(30), || {
            ticks(d, "ticker") > frozen + 2
        });
    }
}

on_both_runtimes! {
    /// `docker restart` stops the container and starts it again.
    fn restart(d, rt) {
        run_detached(d, rt, "again", &[], &["sh", "-c", TRAPPING]);
        wait_for_log(d, "again", "ready");
        let first = d.inspect("again", "{{.State.StartedAt}}");
        d.docker_ok(&["restart", "-t", "10", "again"]);
        assert_eq!(status(d, "again"), "running");
        assert_ne!(d.inspect("again", "{{.State.StartedAt}}"), first);
        let readies = || {
            let out = d.docker_ok(&["logs", "again"]).out();
            out.lines().filter(|l| *l == "ready").count()
        };
        d.wait_until("the second run's output", Duration::from_secs(30), || readies() == 2);
        let out = d.docker_ok(&["logs", "again"]).out();
        assert!(out.contains("term"), "{out}");
    }
}

on_both_runtimes! {
    /// `--restart on-failure:2` runs a failing container three times in all.
    fn restart_policy(d, rt) {
        run_detached(
            d,
            rt,
            "flaky",
            &["--restart", "on-failure:2"],
            &["sh", "-c", "echo attempt; exit 3"],
        );
        d.wait_until("two restarts, then exited", Duration::from_secs(60), || {
            d.inspect("flaky", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
        });
        assert_eq!(d.inspect("flaky", "{{.State.ExitCode}}"), "3");
        let out = d.docker_ok(&["logs", "flaky"]).out();
        assert_eq!(out.lines().filter(|l| *l == "attempt").count(), 3, "{out}");
    }
}

on_both_runtimes! {
    /// `--init` runs Docker's init (tini) as pid 1, which passes `docker
    /// stop`'s SIGTERM on to the command.
    fn init(d, rt) {
        let out = run(d, rt, &["--init"], &["cat", "/proc/1/cmdline"]);
        assert_ok(&out, "run --init");
        assert!(out.out().starts_with("/sbin/docker-init\0"), "{:?}", out.out());

        // sleep handles no signal: only a forwarded SIGTERM ends it at once.
        run_detached(d, rt, "inited", &["--init"], SLEEP);
        let started = Instant::now();
        d.docker_ok(&["stop", "-t", "20", "inited"]);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert_eq!(d.inspect("inited", "{{.State.ExitCode}}"), "143");
    }
}

on_both_runtimes! {
    /// A health check runs in the container: unhealthy until its file
    /// exists, then healthy.
    fn healthcheck(d, rt) {
        run_detached(
            d,
            rt,
            "checked",
            &[
                "--health-cmd",
                "test -e /root/healthy",
                "--health-interval",
                "300ms",
                "--health-retries",
                "1",
                "--health-timeout",
                "10s",
            ],
            SLEEP,
        );
        let health = || d.inspect("checked", "{{.State.Health.Status}}");
        d.wait_until("unhealthy", Duration::from_secs(30), || health() == "unhealthy");
        d.docker_ok(&["exec", "checked", "touch", "/root/healthy"]);
        d.wait_until("healthy", Duration::from_secs(30), || health() == "healthy");
        // Docker keeps the last probes' exit codes: the latest succeeded.
        let log = d.inspect("checked", "{{range .State.Health.Log}}{{.ExitCode}} {{end}}");
        assert!(log.ends_with('0'), "{log}");
    }
}

on_both_runtimes! {
    /// `docker rm -f` removes a running container and everything it ran on.
    fn rm_force(d, rt) {
        run_detached(d, rt, "doomed", &[], SLEEP);
        assert!(!d.shim_pids().is_empty());
        d.docker_ok(&["rm", "-f", "doomed"]);
        assert_eq!(d.docker_text(&["ps", "-aq"]), "");
        d.wait_until("the shim gone", Duration::from_secs(15), || d.shim_pids().is_empty());
    }
}
