//! Container lifecycle as the kubelet drives it: exec with a timeout, stop
//! with a grace period, logs, stats, resource updates.

use std::time::{Duration, Instant};

use containerd_client::tonic::Code;
use k8s_cri::v1::{
    ListContainerStatsRequest, ReopenContainerLogRequest, UpdateContainerResourcesRequest,
};

use integration::cri::{Cri, CtrSpec, PodSpec};
use test_support::cri::{pod_slice_stem, CgroupDriver};

fn pod(cri: &mut Cri, name: &str) -> (String, k8s_cri::v1::PodSandboxConfig) {
    cri.run_pod(&PodSpec {
        name: name.into(),
        ..Default::default()
    })
}

#[test]
fn exec_sync_returns_output_exit_code_and_honours_its_timeout() {
    let mut cri = Cri::start();
    let p = pod(&mut cri, "exec");
    let id = cri.run_container(&p, &CtrSpec::sh("c", "exec sleep 1000"), false);
    let r = cri
        .exec_sync(&id, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
        .unwrap();
    assert_eq!(
        (r.exit_code, r.stdout.as_slice(), r.stderr.as_slice()),
        (3, &b"out\n"[..], &b"err\n"[..])
    );
    let t0 = Instant::now();
    let e = cri.exec_sync(&id, &["sleep", "30"], 1).unwrap_err();
    // Well before the sleep's own end: the 1 s timeout cut it short (the
    // margin is for the emulated VM under CI's load).
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");
    // The container goes on.
    assert_eq!(cri.exec_ok(&id, &["echo", "still"]), "still\n");
    cri.stop_and_check();
}

#[test]
fn stop_sends_term_then_kill_after_the_grace_period() {
    let mut cri = Cri::start();
    let p = pod(&mut cri, "stop");
    let polite = cri.run_container(
        &p,
        &CtrSpec::sh(
            "polite",
            "trap 'exit 3' TERM; while true; do sleep 0.1; done",
        ),
        false,
    );
    let stubborn = cri.run_container(
        &p,
        &CtrSpec::sh("stubborn", "trap '' TERM; while true; do sleep 0.1; done"),
        false,
    );
    std::thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    cri.stop_container(&polite, 10);
    // Before the grace period ran out: TERM alone ended it.
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert_eq!(cri.wait_exited(&polite).exit_code, 3);
    let t0 = Instant::now();
    cri.stop_container(&stubborn, 2);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "{took:?}"
    );
    assert_eq!(cri.wait_exited(&stubborn).exit_code, 137);
    cri.remove_container(&polite);
    cri.remove_container(&stubborn);
    cri.stop_and_check();
}

#[test]
fn logs_are_in_cri_format_and_reopen() {
    let mut cri = Cri::start();
    let p = pod(&mut cri, "logs");
    let script = "echo out-line; echo err-line >&2; while true; do echo tick; sleep 0.2; done";
    let id = cri.run_container(&p, &CtrSpec::sh("talker", script), false);
    let log = cri.log_of(&p.1, "talker");
    // Every line wanted: stdout and stderr are copied apart, and under load
    // (the emulated VM beside the host tiers) a tick came before err-line.
    let read = |path: &std::path::Path, want: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if want.iter().all(|w| text.contains(w)) || Instant::now() > deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let text = read(&log, &["tick", "out-line", "err-line"]);
    // <RFC 3339 time> <stream> <F|P> <line>
    let line = |stream: &str, msg: &str| {
        text.lines().any(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            f.len() == 4 && f[0].contains('T') && f[1] == stream && f[2] == "F" && f[3] == msg
        })
    };
    assert!(
        line("stdout", "out-line") && line("stderr", "err-line"),
        "{text}"
    );
    // Rotation: the kubelet renames the file, then asks for a reopen.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let req = ReopenContainerLogRequest {
        container_id: id.clone(),
    };
    cri.rt
        .block_on(cri.client.reopen_container_log(req))
        .unwrap();
    let fresh = read(&log, &["tick"]);
    assert!(fresh.contains("stdout F tick"), "{fresh}");
    cri.stop_and_check();
}

#[test]
fn stats_are_served_per_container() {
    let mut cri = Cri::start();
    let p = pod(&mut cri, "stats");
    let id = cri.run_container(&p, &CtrSpec::sh("busy", "exec sleep 1000"), false);
    let s = cri.stats(&id);
    assert_eq!(
        s.attributes.as_ref().map(|a| a.id.as_str()),
        Some(id.as_str())
    );
    assert!(s.cpu.is_some() && s.memory.is_some(), "{s:?}");
    let all = cri
        .rt
        .block_on(
            cri.client
                .list_container_stats(ListContainerStatsRequest::default()),
        )
        .unwrap()
        .into_inner()
        .stats;
    assert!(all
        .iter()
        .any(|s| s.attributes.as_ref().map(|a| a.id.as_str()) == Some(id.as_str())));
    cri.stop_and_check();
}

#[test]
fn a_members_resources_update_is_refused_not_applied_to_the_pod() {
    let mut cri = Cri::start();
    let p = pod(&mut cri, "update");
    let id = cri.run_container(&p, &CtrSpec::sh("c", "exec sleep 1000"), false);
    let req = UpdateContainerResourcesRequest {
        container_id: id,
        linux: Some(k8s_cri::v1::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = cri
        .rt
        .block_on(cri.client.update_container_resources(req))
        .unwrap_err();
    assert!(e.message().contains("whole pod"), "{e:?}");
    cri.stop_and_check();
}

/// A pod cgroup with a memory limit, as the kubelet makes one on the
/// run's cgroup driver: a directory on cgroupfs (either cgroup version), a
/// slice with `MemoryMax` on systemd. Removed (with whatever runsc made
/// below it) on drop.
struct PodCgroup {
    /// What the pod's `cgroup_parent` is.
    parent: String,
}

impl PodCgroup {
    fn new(limit: u64) -> PodCgroup {
        let name = format!("podrsoom{}", std::process::id());
        match CgroupDriver::from_env() {
            CgroupDriver::Systemd => {
                let slice = format!("{}.slice", pod_slice_stem(&name));
                let st = std::process::Command::new("systemctl")
                    .args([
                        "set-property",
                        "--runtime",
                        &slice,
                        &format!("MemoryMax={limit}"),
                    ])
                    .status()
                    .unwrap();
                assert!(st.success(), "systemctl set-property {slice}");
                PodCgroup { parent: slice }
            }
            CgroupDriver::Cgroupfs => {
                let (dir, file) = if test_support::cgroup::is_v2() {
                    (
                        std::path::Path::new("/sys/fs/cgroup").join(&name),
                        "memory.max",
                    )
                } else {
                    (
                        std::path::Path::new("/sys/fs/cgroup/memory").join(&name),
                        "memory.limit_in_bytes",
                    )
                };
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(file), limit.to_string()).unwrap();
                PodCgroup {
                    parent: format!("/{name}"),
                }
            }
        }
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        fn remove(dir: &std::path::Path) {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        remove(&e.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(dir);
        }
        if let Some(rel) = self.parent.strip_prefix('/') {
            remove(&std::path::Path::new("/sys/fs/cgroup").join(rel));
            for c in std::fs::read_dir("/sys/fs/cgroup")
                .into_iter()
                .flatten()
                .flatten()
            {
                remove(&c.path().join(rel));
            }
        } else {
            for verb in ["stop", "revert"] {
                let _ = std::process::Command::new("systemctl")
                    .args([verb, &self.parent])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

#[test]
fn an_oom_kill_is_reported_as_oomkilled() {
    let cg = PodCgroup::new(96 << 20);
    let mut cri = Cri::start();
    let p = cri.run_pod(&PodSpec {
        name: "oom".into(),
        cgroup_parent: cg.parent.clone(),
        ..Default::default()
    });
    let id = cri.run_container(&p, &CtrSpec::memory_hog("hog"), false);
    let s = cri.wait_exited(&id);
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (137, "OOMKilled"),
        "{s:?}"
    );
    cri.stop_and_check();
    drop(cg);
}
