//! A pod's resources under gVisor, where the whole pod is one sandbox: its
//! limits (pod-level resources, or the kubelet's sum of its containers')
//! are the sandbox's, and its memory is shared out among its containers'
//! stats without counting it twice.

use integration::cri::{Cri, CtrSpec, PodSpec};
use k8s_cri::v1::LinuxContainerResources;
use test_support::cgroup::{cpu_quota, dir_of, memory_limit};

/// A key of a flat keyed cgroup file (`cpu.stat`).
fn stat(pid: u32, controller: &str, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(dir_of(pid, controller).join(file)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{file} has no {key}: {text}"))
}

fn working_set(cri: &mut Cri, id: &str) -> u64 {
    let s = cri.stats(id);
    s.memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0)
}

#[test]
fn pod_level_limits_hold() {
    let mut cri = Cri::start();
    let limit: i64 = 128 << 20;
    let p = cri.run_pod(&PodSpec {
        name: "limits".into(),
        resources: Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: limit,
            ..Default::default()
        }),
        ..Default::default()
    });
    let pid = cri.sandbox_pid(&p.0);
    assert_eq!(cpu_quota(pid), (Some(50_000), 100_000));
    assert_eq!(memory_limit(pid), limit as u64);
    // The sandbox's view is sized to the pod: its memory. Read before the
    // CPU-bound container starts: an exec then shares the pod's half CPU
    // with it, and in the emulated VM under load it overran ExecSync's
    // 10 s (twice in CI).
    let idle = cri.run_container(&p, &CtrSpec::sh("idle", "exec sleep 1000"), false);
    let meminfo = cri.exec_ok(&idle, &["cat", "/proc/meminfo"]);
    let total_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        total_kb * 1024 <= limit as u64,
        "MemTotal {total_kb} kB: {meminfo}"
    );
    // A CPU-bound container is held to the pod's half CPU: the kernel
    // throttles the sandbox period after period.
    let busy = cri.run_container(&p, &CtrSpec::sh("busy", "while :; do :; done"), false);
    let before = stat(pid, "cpu", "cpu.stat", "nr_throttled");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stat(pid, "cpu", "cpu.stat", "nr_throttled") < before + 5 {
        assert!(std::time::Instant::now() < deadline, "never throttled");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Past the pod's memory the kernel kills the sandbox: OOMKilled. The
    // busy loop goes first: sharing the pod's half CPU with it, the hog
    // took long to fill the pod's memory in the VM under CI's load.
    cri.stop_container(&busy, 0);
    let hog = cri.run_container(&p, &CtrSpec::memory_hog("hog"), false);
    let s = cri.wait_exited(&hog);
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (137, "OOMKilled"),
        "{s:?}"
    );
    cri.stop_and_check();
}

#[test]
fn members_share_the_pods_memory() {
    let mut cri = Cri::start();
    let p = cri.run_pod(&PodSpec {
        name: "share".into(),
        ..Default::default()
    });
    let pid = cri.sandbox_pid(&p.0);
    let a = cri.run_container(&p, &CtrSpec::sh("a", "exec sleep 1000"), false);
    let b = cri.run_container(&p, &CtrSpec::sh("b", "exec sleep 1000"), false);
    let (wa, wb) = (working_set(&mut cri, &a), working_set(&mut cri, &b));
    let usage = test_support::cgroup::memory_usage(pid);
    assert!(wa > 0 && wb > 0, "a member shows no memory: {wa} {wb}");
    // Each has half: together about the pod's usage, not twice it.
    assert!(
        wa + wb <= usage + usage / 4,
        "{wa} + {wb} against the pod's {usage}"
    );
    cri.stop_and_check();
}
