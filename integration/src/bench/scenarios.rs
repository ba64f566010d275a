//! The benchmark's non-timing scenarios: a pod's memory footprint, the CPU
//! one Metrics call costs, and how many runsc processes a lifecycle, an
//! exec and a Metrics call start.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, thread, time::Duration};

use containerd_client::{
    services::v1::{tasks_client::TasksClient, MetricsRequest},
    tonic::{transport::Channel, Request},
};
use serde_json::json;
use test_support::{
    containerd::{Containerd, OutputExt},
    image::IMAGE_REF,
};

use super::procs::{self, Cpu, Proc};

/// The pid `ctr task ls` shows for `id`.
pub fn task_pid(c: &Containerd, id: &str) -> Option<i32> {
    let out = c.ctr(&["tasks", "ls"]).out();
    out.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&id))
        .and_then(|w| w.get(1)?.parse().ok())
}

/// The shim serving container `id`.
pub fn shim_of(c: &Containerd, id: &str) -> Option<i32> {
    procs::shim_of(task_pid(c, id)?)
}

/// `ctr run <mode> <rt...> busybox <id> <cmd...>`.
pub fn ctr_run(c: &Containerd, rt: &[&str], id: &str, cmd: &[&str], mode: &str) -> bool {
    let mut a = vec!["run", mode];
    a.extend_from_slice(rt);
    a.push(IMAGE_REF);
    a.push(id);
    a.extend_from_slice(cmd);
    let out = c.ctr(&a);
    if !out.status.success() {
        eprintln!("bench: ctr run {id} failed: {}", out.err().trim());
    }
    out.status.success()
}

/// Shims and the processes they keep, with their total PSS.
#[derive(Debug, Default)]
pub struct Footprint {
    /// Shim pids.
    pub shims: Vec<i32>,
    /// Their kept processes (descendants but runsc's sandbox and gofers).
    pub kept: Vec<Proc>,
    /// PSS of the shims and the kept processes (kB).
    pub pss_kb: u64,
    /// Their private memory (USS: Private_Clean + Private_Dirty, kB), which
    /// unlike PSS does not depend on how many other shims share the binary.
    pub private_kb: u64,
}

impl Footprint {
    /// Reads the footprint of `shims` now.
    pub fn of(shims: &[i32]) -> Footprint {
        let kept: Vec<Proc> = shims.iter().flat_map(|&s| procs::kept(s)).collect();
        let pids = shims.iter().chain(kept.iter().map(|p| &p.pid));
        let (pss_kb, private_kb) = pids
            .map(|&p| procs::rollup(p))
            .fold((0, 0), |(a, b), (p, u)| (a + p, b + u));
        Footprint {
            shims: shims.to_vec(),
            kept,
            pss_kb,
            private_kb,
        }
    }

    /// JSON for the report.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "shims": self.shims,
            "pss_kb": self.pss_kb,
            "private_kb": self.private_kb,
            "kept": self.kept.iter().map(Proc::json).collect::<Vec<_>>(),
        })
    }
}

/// Members of the benchmark's pod (besides its sandbox).
pub const POD_MEMBERS: usize = 5;

/// A pod through one shim: the sandbox alone, then with its members.
#[derive(Debug, Default)]
pub struct PodMem {
    /// Shims serving the pod (1 when the members join the sandbox's shim).
    pub shims: usize,
    /// Shims of ours alive meanwhile (PSS splits the binary's pages
    /// among them).
    pub shims_alive: usize,
    /// The sandbox container alone.
    pub sandbox_only: Footprint,
    /// Sandbox and [`POD_MEMBERS`] members.
    pub pod: Footprint,
}

impl PodMem {
    /// Kept processes each member added.
    pub fn kept_per_member(&self) -> f64 {
        (self.pod.kept.len() as f64 - self.sandbox_only.kept.len() as f64) / POD_MEMBERS as f64
    }
}

/// CRI annotations making `<pod>0` the sandbox and `<pod>1..` its members.
pub fn pod_annotations(pod: &str, j: usize) -> Vec<String> {
    let kind = if j == 0 { "sandbox" } else { "container" };
    vec![
        "--annotation".into(),
        format!("io.kubernetes.cri.container-type={kind}"),
        "--annotation".into(),
        format!("io.kubernetes.cri.sandbox-id={pod}0"),
    ]
}

/// Runs a pod `<pod>0..=<pod>5` of `sleep`s through our shim (runtime
/// arguments `rt`) and reads its footprint before and after the members.
pub fn pod_ours(c: &Containerd, rt: &[&str], pod: &str) -> PodMem {
    let shims_before = c.shim_pids().len();
    let mut sandbox_only = Footprint::default();
    let mut shim = None;
    for j in 0..=POD_MEMBERS {
        let mut a = rt.to_vec();
        let annos = pod_annotations(pod, j);
        a.extend(annos.iter().map(String::as_str));
        ctr_run(c, &a, &format!("{pod}{j}"), &["sleep", "100000"], "-d");
        if j == 0 {
            thread::sleep(Duration::from_secs(1));
            shim = shim_of(c, &format!("{pod}0"));
            sandbox_only = Footprint::of(shim.as_slice());
        }
    }
    thread::sleep(Duration::from_secs(2));
    let shims_alive = c.shim_pids().len();
    PodMem {
        shims: shims_alive - shims_before,
        shims_alive,
        sandbox_only,
        pod: Footprint::of(shim.as_slice()),
    }
}

/// The same six `sleep`s as separate containers (containerd's runc shim
/// cannot run a runsc pod: its `runsc start` waits on pipes the
/// sub-container's gofer keeps open), one shim each.
pub fn pod_separate(c: &Containerd, rt: &[&str], pod: &str) -> Footprint {
    let ids: Vec<String> = (0..=POD_MEMBERS).map(|j| format!("{pod}{j}")).collect();
    for id in &ids {
        ctr_run(c, rt, id, &["sleep", "100000"], "-d");
    }
    thread::sleep(Duration::from_secs(2));
    let shims: Vec<i32> = ids.iter().filter_map(|id| shim_of(c, id)).collect();
    Footprint::of(&shims)
}

/// containerd's Tasks service over gRPC, in the containerd's namespace.
pub struct Tasks {
    rt: tokio::runtime::Runtime,
    client: TasksClient<Channel>,
    namespace: String,
}

impl Tasks {
    /// Connects to `c`.
    pub fn connect(c: &Containerd) -> Tasks {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = rt
            .block_on(containerd_client::connect(c.socket()))
            .expect("connect to containerd");
        Tasks {
            rt,
            client: TasksClient::new(channel),
            namespace: c.namespace().to_string(),
        }
    }

    /// One `Tasks.Metrics` call for `id` (containerd asks the shim's
    /// `Stats`); whether it returned `id`'s metrics.
    pub fn metrics(&mut self, id: &str) -> bool {
        let mut req = Request::new(MetricsRequest {
            filters: vec![format!("id=={id}")],
        });
        if let Ok(ns) = self.namespace.parse() {
            req.metadata_mut().insert("containerd-namespace", ns);
        }
        match self.rt.block_on(self.client.metrics(req)) {
            Ok(r) => r
                .into_inner()
                .metrics
                .iter()
                .any(|m| m.id == id && m.data.is_some()),
            Err(_) => false,
        }
    }
}

/// CPU of `calls` Metrics calls.
#[derive(Debug, Default, Clone, Copy)]
pub struct MetricsCpu {
    /// Calls made.
    pub calls: usize,
    /// Calls that returned metrics.
    pub ok: usize,
    /// Wall time of all calls (ms).
    pub wall_ms: f64,
    /// The shim's own and reaped children's CPU over all calls (ms).
    pub shim: Cpu,
    /// The container's sandbox process over all calls (ms): not part of
    /// the target (it also runs the workload), shown for what moves there.
    pub sandbox_ms: f64,
}

impl MetricsCpu {
    /// Shim plus reaped children per call (ms).
    pub fn per_call(&self) -> f64 {
        if self.calls == 0 {
            return 0.0;
        }
        self.shim.total() / self.calls as f64
    }
}

/// Calls Metrics `calls` times for running container `id` and reads the
/// CPU its shim (with what it spawned and reaped) and its sandbox spent.
pub fn metrics_cpu(c: &Containerd, id: &str, calls: usize) -> MetricsCpu {
    let mut tasks = Tasks::connect(c);
    let (Some(sandbox), Some(shim)) = (task_pid(c, id), shim_of(c, id)) else {
        eprintln!("bench: no task {id} to call Metrics on");
        return MetricsCpu::default();
    };
    tasks.metrics(id);
    let (sb, sh) = (sandbox.to_string(), shim.to_string());
    let before = (
        Cpu::of(&sh).unwrap_or_default(),
        Cpu::of(&sb).unwrap_or_default(),
    );
    let t0 = std::time::Instant::now();
    let ok = (0..calls).filter(|_| tasks.metrics(id)).count();
    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let after = (
        Cpu::of(&sh).unwrap_or_default(),
        Cpu::of(&sb).unwrap_or_default(),
    );
    MetricsCpu {
        calls,
        ok,
        wall_ms,
        shim: before.0.since(after.0),
        sandbox_ms: before.1.since(after.1).own,
    }
}

/// runsc subcommands our shim ran, per operation.
#[derive(Debug, Default)]
pub struct RunscCalls {
    /// The first `ctr run --rm /bin/true` and the first exec with a runsc
    /// binary (the shim caches what it learns of one on disk).
    pub first_use: Vec<String>,
    /// One `ctr run --rm /bin/true`, including containerd's `shim delete`.
    pub lifecycle: Vec<String>,
    /// One `ctr task exec /bin/true` on a running container.
    pub exec: Vec<String>,
    /// [`METRICS_COUNTED`] Metrics calls on a running container.
    pub metrics: Vec<String>,
}

/// Metrics calls whose runsc invocations are counted.
pub const METRICS_COUNTED: usize = 10;

/// Runs two lifecycles, then two execs and [`METRICS_COUNTED`] Metrics
/// calls on a running container, through our shim with a `runsc` that logs each
/// call (`binary_name` in a runtime config file).
pub fn count_runsc_calls(c: &Containerd, work: &Path) -> RunscCalls {
    let log = work.join("runsc-calls.log");
    let counter = work.join("runsc-counting");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {}\nexec runsc \"$@\"\n",
        log.display()
    );
    fs::write(&counter, script).expect("counter");
    fs::set_permissions(&counter, fs::Permissions::from_mode(0o755)).expect("chmod");
    let cfg = work.join("count.toml");
    fs::write(&cfg, format!("binary_name = \"{}\"\n", counter.display())).expect("cfg");
    let cfg = cfg.to_string_lossy().into_owned();
    let rt = [
        "--runtime",
        test_support::containerd::RUNTIME,
        "--runtime-config-path",
        &cfg,
    ];
    // Reads and empties the log once the shim (and, after an exit,
    // containerd's `shim delete`) is done.
    let take = || {
        thread::sleep(Duration::from_secs(1));
        let calls = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        calls
            .lines()
            .map(|l| {
                // No subcommand (`runsc --version`): its last flag.
                let verb = procs::runsc_verb(l.split_whitespace());
                verb.or(l.split_whitespace().last())
                    .unwrap_or("?")
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
    let mut calls = RunscCalls::default();
    // The shim caches what it learns of a runsc binary (`flags`, and the
    // version) on disk: the first lifecycle and exec show that, the second
    // ones the steady state.
    ctr_run(c, &rt, "ocount-first", &["/bin/true"], "--rm");
    calls.first_use = take();
    ctr_run(c, &rt, "ocount-run", &["/bin/true"], "--rm");
    calls.lifecycle = take();
    if ctr_run(c, &rt, "ocount-exec", &["sleep", "100000"], "-d") {
        take();
        let exec = |eid: &str| {
            let out = c.ctr(&[
                "tasks",
                "exec",
                "--exec-id",
                eid,
                "ocount-exec",
                "/bin/true",
            ]);
            if !out.status.success() {
                eprintln!("bench: counted exec failed: {}", out.err().trim());
            }
            take()
        };
        calls.first_use.extend(exec("x1"));
        calls.exec = exec("x2");
        let mut tasks = Tasks::connect(c);
        for _ in 0..METRICS_COUNTED {
            tasks.metrics("ocount-exec");
        }
        calls.metrics = take();
        let _ = c.ctr(&["tasks", "kill", "-s", "SIGKILL", "ocount-exec"]);
        thread::sleep(Duration::from_millis(500));
        let _ = c.ctr(&["tasks", "delete", "-f", "ocount-exec"]);
        let _ = c.ctr(&["containers", "delete", "ocount-exec"]);
    }
    calls
}
