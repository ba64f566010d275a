//! `make bench`: our shim against containerd's Go shim driving runsc (through
//! `--runc-binary`, with the same `--network=none`) and bare `runsc`, all in
//! one run, interleaved, on the same machine. Prints a markdown table of
//! medians and ratios, the issue-11 targets beside what was measured, and
//! writes JSON. It judges nothing: targets are read off the table.
//! `--runsc-dir DIR` puts DIR first on `PATH`, so every configuration runs
//! its `runsc`.

use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Instant,
};

use integration::bench::{
    self,
    procs::Cpu,
    report::{EXEC, START},
    scenarios::{self, ctr_run as go_run},
    Config, Sample, Stats,
};
use test_support::{
    containerd::{pids_matching, shim_dir, Containerd, LogLevel, OutputExt, RUNTIME},
    image::{write_busybox_rootfs, IMAGE_REF},
};

fn main() {
    // Built with panic = "abort": a panic must still take down what it made.
    test_support::abort::clean_up_on_panic();
    let cfg = Config::from_args();
    if let Some(d) = &cfg.shim_dir {
        std::env::set_var("RUNSC_SHIM_DIR", d);
    }
    if let Some(d) = &cfg.runsc_dir {
        let mut path = std::ffi::OsString::from(d.as_os_str());
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap_or_default());
        std::env::set_var("PATH", path);
    }
    let runsc_version = Command::new("runsc")
        .arg("--version")
        .output()
        .map(|o| o.out())
        .unwrap_or_default()
        .split_whitespace()
        .nth(2)
        .unwrap_or("?")
        .to_string();
    eprintln!("bench: runsc {runsc_version}");
    let load_before = bench::loadavg();
    let work = tempfile::Builder::new()
        .prefix("bench-")
        .tempdir()
        .expect("tempdir");
    let wrapper = work.path().join("runsc-nonet");
    fs::write(&wrapper, "#!/bin/sh\nexec runsc --network=none \"$@\"\n").expect("wrapper");
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).expect("chmod");

    // containerd's default log level, as nodes run it: at debug, containerd
    // and both shims (which it starts with -debug) log every request.
    let ours = Containerd::start_at_level(&[shim_dir()], LogLevel::Info);
    let go = Containerd::start_at_level(&[], LogLevel::Info);
    let bare = Bare::new(work.path());
    let _bare_on_abort = test_support::abort::on_abort({
        let (bare, work) = (bare.clone(), work.path().to_path_buf());
        move || {
            bare.cleanup();
            let _ = fs::remove_dir_all(work);
        }
    });
    let w = wrapper.to_string_lossy().into_owned();
    let ours_rt: Vec<&str> = vec!["--runtime", RUNTIME];
    let go_rt: Vec<&str> = vec!["--runtime", "io.containerd.runc.v2", "--runc-binary", &w];

    let mut settle_s = 0.0;
    let mut results: BTreeMap<&str, [Stats; 3]> = BTreeMap::new();
    let n = cfg.iterations;

    eprintln!("bench: start");
    settle_s += settle(&cfg);
    let mut s: [Vec<Sample>; 3] = Default::default();
    for i in 0..n + cfg.warmup {
        let order = bench::rotation(i);
        for &k in &order {
            let id = format!("{}start-{i:03}", PREFIX[k]);
            let t = match k {
                0 => time_ok(|| ours.run(&id, &ours_rt, &["/bin/true"]).status.success()),
                1 => time_ok(|| go_run(&go, &go_rt, &id, &["/bin/true"], "--rm")),
                _ => time_ok(|| bare.run(&id, &["/bin/true"])),
            };
            if i >= cfg.warmup {
                s[k].push(t);
            }
        }
    }
    results.insert(START, s.map(|v| Stats::of(&v)));

    eprintln!("bench: exec");
    ours.run_detached("oexecbox", &ours_rt, &["sleep", "100000"]);
    go_run(&go, &go_rt, "gexecbox", &["sleep", "100000"], "-d");
    bare.run_detached("bexecbox", &["sleep", "100000"]);
    settle_s += settle(&cfg);
    // CPU of the execs: the shims' own and reaped children's (ms), and
    // bare `runsc exec` as the benchmark's own reaped child.
    let shims = [(&ours, "oexecbox"), (&go, "gexecbox")].map(|(c, id)| {
        scenarios::shim_of(c, id)
            .map(|p| p.to_string())
            .unwrap_or_default()
    });
    let cpu_before = shims.clone().map(|p| Cpu::of(&p).unwrap_or_default());
    let mut bare_cpu = Cpu::default();
    let mut s: [Vec<Sample>; 3] = Default::default();
    for i in 0..n + cfg.warmup {
        for &k in &bench::rotation(i) {
            let eid = format!("e{i}");
            let me = Cpu::of("self").unwrap_or_default();
            let t = match k {
                0 => time_ok(|| {
                    ours.ctr(&["tasks", "exec", "--exec-id", &eid, "oexecbox", "/bin/true"])
                        .status
                        .success()
                }),
                1 => time_ok(|| {
                    go.ctr(&["tasks", "exec", "--exec-id", &eid, "gexecbox", "/bin/true"])
                        .status
                        .success()
                }),
                _ => time_ok(|| bare.exec("bexecbox", &["/bin/true"])),
            };
            if k == 2 {
                let d = me.since(Cpu::of("self").unwrap_or_default());
                bare_cpu.children += d.children;
            }
            if i >= cfg.warmup {
                s[k].push(t);
            }
        }
    }
    results.insert(EXEC, s.map(|v| Stats::of(&v)));
    let execs = (n + cfg.warmup) as f64;
    let per_exec = |k: usize| {
        let d = cpu_before[k].since(Cpu::of(&shims[k]).unwrap_or_default());
        Cpu {
            own: d.own / execs,
            children: d.children / execs,
        }
    };
    let exec_cpu = [
        per_exec(0),
        per_exec(1),
        Cpu {
            own: 0.0,
            children: bare_cpu.children / execs,
        },
    ];

    eprintln!("bench: {} Metrics calls per shim", cfg.metrics_calls);
    let metrics = [
        scenarios::metrics_cpu(&ours, "oexecbox", cfg.metrics_calls),
        scenarios::metrics_cpu(&go, "gexecbox", cfg.metrics_calls),
    ];

    // memory: one container per shim, then a pod (ours) or the same six
    // containers apart (Go).
    let mem_single = [
        shim_memory(&ours, "containerd-shim-runsc-v1"),
        shim_memory(&go, "containerd-shim-runc-v2"),
    ];
    eprintln!("bench: pod memory");
    let pod_ours = scenarios::pod_ours(&ours, &ours_rt, "opod");
    let pod_go = scenarios::pod_separate(&go, &go_rt, "gpod");
    // The pods and exec boxes have served: the scenarios still to come
    // should not share the CPUs with their ten idle sandboxes.
    ours.remove_all();
    go.remove_all();
    bare.remove_exec_box();

    eprintln!("bench: stdout");
    settle_s += settle(&cfg);
    let mut s: [Vec<Sample>; 3] = Default::default();
    let dd = ["dd", "if=/dev/zero", "bs=1M", "count=512"];
    let iters = cfg.iterations.clamp(1, 5);
    for i in 0..iters + 1 {
        for &k in &bench::rotation(i) {
            let id = format!("{}dd-{i:03}", PREFIX[k]);
            let mut cmd = match k {
                0 => {
                    let mut c = ours.ctr_cmd();
                    c.args(["run", "--rm"])
                        .args(&ours_rt)
                        .args([IMAGE_REF, &id])
                        .args(dd);
                    c
                }
                1 => {
                    let mut c = go.ctr_cmd();
                    c.args(["run", "--rm"])
                        .args(&go_rt)
                        .args([IMAGE_REF, &id])
                        .args(dd);
                    c
                }
                _ => bare.run_cmd(&id, &dd),
            };
            let t = time_bytes(&mut cmd, 512 << 20);
            if i >= 1 {
                s[k].push(t);
            }
        }
    }
    results.insert(
        "stdout: 512 MiB, ctr run incl. start (ms)",
        s.map(|v| Stats::of(&v)),
    );

    eprintln!("bench: 20 concurrent starts");
    settle_s += settle(&cfg);
    let mut conc = [Vec::new(), Vec::new()];
    for round in 0..iters {
        for &k in &bench::rotation(round)[..] {
            if k == 2 {
                continue;
            }
            let (c, rt): (&Containerd, &Vec<&str>) = if k == 0 {
                (&ours, &ours_rt)
            } else {
                (&go, &go_rt)
            };
            let t0 = Instant::now();
            let failures = thread::scope(|sc| {
                let hs: Vec<_> = (0..20)
                    .map(|j| {
                        // Fixed width: runsc 20221219 resolves ids by prefix
                        // and fails on "cc1" while "cc10" is being created.
                        let id = format!("{}cc{round:02}-{j:02}", PREFIX[k]);
                        sc.spawn(move || {
                            let mut a = vec!["run", "--rm"];
                            a.extend_from_slice(rt);
                            a.extend([IMAGE_REF, id.as_str(), "/bin/true"]);
                            c.ctr(&a).status.success()
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join())
                    .filter(|r| !matches!(r, Ok(true)))
                    .count()
            });
            conc[k].push((t0.elapsed().as_secs_f64() * 1000.0, failures));
        }
    }

    eprintln!("bench: runsc invocations");
    let runsc_calls = scenarios::count_runsc_calls(&ours, work.path());
    let load_after = bench::loadavg();
    let report = bench::Report {
        runsc_version,
        iterations: n,
        load_before,
        load_after,
        settle_s,
        results,
        mem_single,
        pod_ours,
        pod_go,
        concurrent: conc,
        exec_cpu,
        metrics,
        runsc_calls,
    };
    println!("{}", report.markdown());
    if let Some(out) = &cfg.out {
        fs::write(out, report.json()).expect("write results");
        eprintln!("results written to {}", out.display());
    }
    bare.cleanup();
    go.remove_all();
    drop(go);
    ours.stop_and_check();
}

/// Waits for idle CPUs (at most `cfg.settle_max`) and says how long it took.
fn settle(cfg: &Config) -> f64 {
    let waited = bench::settle(cfg.settle_max);
    eprintln!("bench: waited {waited:.0} s for idle CPUs");
    waited
}

/// Id prefixes per configuration: runsc sandbox ids are host-global.
const PREFIX: [&str; 3] = ["o", "g", "b"];

fn time_ok(f: impl FnOnce() -> bool) -> Sample {
    let t0 = Instant::now();
    let ok = f();
    Sample {
        ms: t0.elapsed().as_secs_f64() * 1000.0,
        ok,
    }
}

fn time_bytes(cmd: &mut Command, want: u64) -> Sample {
    let t0 = Instant::now();
    let Ok(mut child) = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn() else {
        return Sample { ms: 0.0, ok: false };
    };
    let mut total = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    if let Some(mut out) = child.stdout.take() {
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false) && total == want;
    Sample {
        ms: t0.elapsed().as_secs_f64() * 1000.0,
        ok,
    }
}

fn shim_memory(c: &Containerd, binary: &str) -> Vec<bench::Mem> {
    let sock = c.socket().to_string_lossy().into_owned();
    pids_matching(|cmd| cmd.contains(binary) && cmd.contains(&sock))
        .into_iter()
        .filter_map(bench::Mem::of)
        .collect()
}

/// Bare runsc with bundles built like the test image.
#[derive(Clone)]
struct Bare {
    root: PathBuf,
    dir: PathBuf,
}

impl Bare {
    fn new(work: &Path) -> Bare {
        let dir = work.join("bare");
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).expect("bare dir");
        write_busybox_rootfs(&rootfs).expect("rootfs");
        Bare {
            root: work.join("bare-root"),
            dir,
        }
    }

    fn bundle(&self, id: &str, args: &[&str]) -> PathBuf {
        let b = self.dir.join(format!("b-{id}"));
        let _ = fs::create_dir_all(&b);
        let _ = Command::new("runsc").arg("spec").current_dir(&b).status();
        let p = b.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&fs::read(&p).unwrap_or_default()).unwrap_or_default();
        spec["process"]["args"] = serde_json::json!(args);
        spec["process"]["terminal"] = serde_json::json!(false);
        spec["root"]["path"] = serde_json::json!(self.dir.join("rootfs"));
        let _ = fs::write(&p, serde_json::to_vec(&spec).unwrap_or_default());
        b
    }

    fn runsc(&self) -> Command {
        let mut c = Command::new("runsc");
        c.arg("--network=none").arg("--root").arg(&self.root);
        c
    }

    fn run_cmd(&self, id: &str, args: &[&str]) -> Command {
        let b = self.bundle(id, args);
        let mut c = self.runsc();
        c.args(["run", "--bundle"])
            .arg(b)
            .arg(id)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, id: &str, args: &[&str]) -> bool {
        let mut c = self.run_cmd(id, args);
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn run_detached(&self, id: &str, args: &[&str]) {
        let b = self.bundle(id, args);
        let _ = self
            .runsc()
            .args(["run", "--detach", "--bundle"])
            .arg(b)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn exec(&self, id: &str, args: &[&str]) -> bool {
        self.runsc()
            .arg("exec")
            .arg(id)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    fn remove_exec_box(&self) {
        let _ = self
            .runsc()
            .args(["delete", "--force", "bexecbox"])
            .status();
    }

    fn cleanup(&self) {
        self.remove_exec_box();
        let _ = fs::remove_dir_all(&self.root);
    }
}
