//! What Docker reads about a running container and changes on it: `docker
//! stats`, `docker top`, `docker update`, and an OOM kill reported as
//! `OOMKilled`.

use std::fs;

use test_support::cgroup;

use crate::{run_detached, Dockerd, OutputExt, SLEEP};

/// The container's host pid as Docker knows it (`.State.Pid`: for runsc
/// the sandbox's, which lives in the container's cgroup).
fn host_pid(d: &Dockerd, name: &str) -> u32 {
    d.inspect(name, "{{.State.Pid}}").parse().unwrap()
}

/// Bytes in a `docker stats` size like `1.5MiB` or `256MiB`.
fn bytes(size: &str) -> f64 {
    let units = [
        ("GiB", 1024.0 * 1024.0 * 1024.0),
        ("MiB", 1024.0 * 1024.0),
        ("KiB", 1024.0),
        ("kB", 1000.0),
        ("B", 1.0),
    ];
    for (unit, scale) in units {
        if let Some(n) = size.strip_suffix(unit) {
            return n.trim().parse::<f64>().unwrap() * scale;
        }
    }
    panic!("not a size: {size:?}");
}

on_both_runtimes! {
    /// `docker stats --no-stream`: memory in use under the container's
    /// limit, and its process count.
    fn stats_no_stream(d, rt) {
        run_detached(
            d,
            rt,
            "measured",
            &["-m", "256m"],
            &["sh", "-c", "sleep 100000 & sleep 100000 & wait"],
        );
        let line = d.docker_text(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}",
            "measured",
        ]);
        let fields: Vec<&str> = line.split('|').collect();
        let [mem, pids, cpu] = fields[..] else {
            panic!("stats: {line:?}");
        };
        let (used, limit) = mem.split_once(" / ").unwrap_or_else(|| panic!("{mem:?}"));
        assert!(bytes(used) > 0.0, "memory in use: {line:?}");
        assert_eq!(bytes(limit), 256.0 * 1024.0 * 1024.0, "{line:?}");
        assert!(pids.parse::<u32>().unwrap() >= 1, "{line:?}");
        assert!(cpu.ends_with('%'), "{line:?}");
    }
}

on_both_runtimes! {
    /// `docker top` lists the container's processes: Docker filters the
    /// host's `ps` by the pids containerd's ListPids returns, so every row
    /// must be a process of this container (in its cgroup), never an
    /// unrelated host process that happens to have such a pid.
    fn top_lists_only_the_containers_processes(d, rt) {
        let id = run_detached(
            d,
            rt,
            "watched",
            &[],
            &["sh", "-c", "sleep 100000 & sleep 100000 & wait"],
        );
        d.docker_ok(&["exec", "-d", "watched", "sleep", "100000"]);
        d.wait_until("the exec running", std::time::Duration::from_secs(30), || {
            d.inspect("watched", "{{len .ExecIDs}}") == "1"
        });
        let top = d.docker_text(&["top", "watched"]);
        let mut lines = top.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        let pid_col = header.iter().position(|h| *h == "PID").unwrap();
        let rows: Vec<&str> = lines.collect();
        assert!(!rows.is_empty(), "docker top listed nothing:\n{top}");
        for row in &rows {
            let pid = row.split_whitespace().nth(pid_col).unwrap();
            let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            assert!(
                cgroups.contains(&id),
                "docker top listed pid {pid}, not a process of the container:\n{top}"
            );
        }
        if rt == crate::Runtime::Runc {
            // runc's processes are host processes: the three sleeps are there.
            let cmd_col = header.iter().position(|h| *h == "CMD").unwrap();
            let sleeps = rows
                .iter()
                .filter(|r| r.split_whitespace().nth(cmd_col) == Some("sleep"))
                .count();
            assert_eq!(sleeps, 3, "{top}");
        }
    }
}

on_both_runtimes! {
    /// `docker update` changes a running container's limits in its cgroup.
    fn update_memory_and_cpus(d, rt) {
        run_detached(d, rt, "resized", &["-m", "256m", "--memory-swap", "512m"], SLEEP);
        let pid = host_pid(d, "resized");
        assert_eq!(cgroup::memory_limit(pid), 256 << 20);
        d.docker_ok(&["update", "--memory", "128m", "--memory-swap", "256m", "--cpus", "0.5", "resized"]);
        assert_eq!(d.inspect("resized", "{{.HostConfig.Memory}}"), (128u64 << 20).to_string());
        assert_eq!(cgroup::memory_limit(pid), 128 << 20);
        let (quota, period) = cgroup::cpu_quota(pid);
        assert_eq!(quota.map(|q| q * 100 / period), Some(50), "quota {quota:?}/{period}");
        // Still running, and the new limit holds for what it does next.
        assert_eq!(d.docker_text(&["exec", "resized", "echo", "alive"]), "alive");
    }
}

on_both_runtimes! {
    /// A container that outgrows its memory limit is killed (137) and
    /// Docker says it was the OOM killer.
    fn oom_killed(d, rt) {
        let out = d.docker(&[
            "run",
            "--name",
            "hog",
            "--runtime",
            rt.name(),
            "-m",
            "64m",
            "--memory-swap",
            "64m",
            crate::IMAGE,
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/null bs=512M count=1",
        ]);
        assert_eq!(out.code(), 137, "{}", out.err());
        assert_eq!(d.inspect("hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"), "true 137");
    }
}
