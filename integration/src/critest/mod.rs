//! The critest tier (`scripts/critest.sh`): cri-tools' `critest` against
//! containerd's CRI plugin with handler `runsc` (our shim), each pod in a
//! namespace of a private CNI bridge with gVisor's network stack in it, its
//! images built locally and served from 127.0.0.1 ([`images`],
//! [`registry`]). Failures are judged against the checked-in list of specs
//! that fail for gVisor's reasons ([`report`]); any other failure, or
//! anything the run leaves behind, fails the tier.
//!
//! The containerd and runsc are the first on `PATH` (the script puts
//! containerd 2.3 and runsc 0.0~20240729 there), the shim comes from
//! `RUNSC_SHIM_DIR`.

use std::{
    collections::BTreeSet,
    fs,
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use crate::cri::{Cri, CriExtras};

pub mod images;
pub mod registry;
pub mod report;
mod rootfs;

/// What to run and where the results go.
#[derive(Debug, Clone)]
pub struct Options {
    /// The critest binary.
    pub critest: PathBuf,
    /// The list of specs expected to fail (or skipped) under gVisor.
    pub expected: PathBuf,
    /// Where critest's JSON report and console log are kept.
    pub out_dir: PathBuf,
    /// Only the specs matching this regular expression (for debugging).
    pub focus: Option<String>,
    /// How long critest may run before it is interrupted (and the tier fails).
    pub limit: Duration,
    /// The runtime handler critest runs its pods with: `runsc` (our
    /// shim), or `runc` to tell what fails under gVisor from what fails
    /// anyway.
    pub handler: String,
}

/// Set when this process is asked to stop (SIGINT, SIGTERM, SIGHUP).
static STOP: AtomicBool = AtomicBool::new(false);
/// critest's pid while it runs, 0 otherwise.
static CRITEST_PID: AtomicU32 = AtomicU32::new(0);

fn stopped() -> Result<(), String> {
    if STOP.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

/// Sends `signal` (a `kill` name: INT, KILL) to critest if it runs.
fn signal_critest(signal: &str) {
    let pid = CRITEST_PID.load(Ordering::SeqCst);
    if pid != 0 {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status();
    }
}

/// On SIGINT, SIGTERM or SIGHUP: interrupt critest (ginkgo then cleans up its spec
/// and writes its report; 10 s later, again, which stops it at once) and
/// stop before the next step; the teardown still runs.
fn handle_signals() {
    thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
                eprintln!("critest tier: interrupted, cleaning up");
                STOP.store(true, Ordering::SeqCst);
                signal_critest("INT");
                // Ginkgo lets the running spec finish its step first; a
                // second interrupt makes it stop at once.
                thread::spawn(|| {
                    thread::sleep(Duration::from_secs(10));
                    signal_critest("INT");
                });
            }
        });
    });
}

/// Runs the tier; `Ok(true)` when every failure was expected and nothing
/// leaked.
pub fn run(opts: &Options) -> Result<bool, String> {
    handle_signals();
    let list_text = fs::read_to_string(&opts.expected)
        .map_err(|e| format!("read {}: {e}", opts.expected.display()))?;
    let list =
        report::parse_list(&list_text).map_err(|e| format!("{}: {e}", opts.expected.display()))?;
    fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("mkdir {}: {e}", opts.out_dir.display()))?;
    // critest runs in the scratch directory: give it absolute paths.
    let opts = &Options {
        out_dir: fs::canonicalize(&opts.out_dir)
            .map_err(|e| format!("{}: {e}", opts.out_dir.display()))?,
        ..opts.clone()
    };
    let work = tempfile::Builder::new()
        .prefix("critest-")
        .tempdir()
        .map_err(|e| format!("tempdir: {e}"))?;
    let result = run_in(opts, &list, work.path());
    // Whatever critest mounted under its temporary directory and left.
    let mut mounts = test_support::host::mounts_under(work.path());
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in &mounts {
        let _ = Command::new("umount").args(["-l", m]).status();
    }
    drop(work);
    if !mounts.is_empty() {
        // A spec that failed before its cleanup (critest's own, in its
        // TMPDIR; not the runtime's).
        println!("critest tier: critest left mounts in its TMPDIR (removed): {mounts:?}");
    }
    result
}

fn run_in(opts: &Options, list: &[report::Entry], work: &Path) -> Result<bool, String> {
    let t = Instant::now();
    let content = images::build(&work.join("images"))?;
    let _ = fs::remove_dir_all(work.join("images"));
    println!(
        "critest tier: {} images built in {:.1}s",
        content.tags.len(),
        t.elapsed().as_secs_f64()
    );
    stopped()?;
    let registry = registry::Registry::serve(content)?;
    let certs = work.join("certs.d");
    registry::hosts_dir(&certs, registry.addr())?;
    let nri = work.join("nri.sock");
    let extra_config = format!(
        r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "{certs}"
[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = "{nri}"
  plugin_path = "{plugins}"
  plugin_config_path = "{plugins}"
"#,
        certs = certs.display(),
        nri = nri.display(),
        plugins = work.join("nri-plugins").display(),
    );
    let shm_before = shm_segments();
    let cri = Cri::start_with(CriExtras {
        extra_config,
        ..CriExtras::default()
    });
    println!(
        "critest tier: containerd at {}, registry at {}",
        cri.ctrd().socket().display(),
        registry.addr()
    );
    use_sandbox_image(cri.ctrd(), &certs);
    let outcome = if STOP.load(Ordering::SeqCst) {
        Err("interrupted".to_string())
    } else {
        run_critest(opts, list, work, cri.ctrd().socket(), &nri)
    };

    // containerd's log (with the shims') stays beside critest's.
    let _ = fs::copy(
        cri.ctrd().dir().join("containerd.log"),
        opts.out_dir.join("containerd.log"),
    );
    let left = leftovers(cri);
    if !left.is_empty() {
        println!("critest tier: the run left things behind (removed): {left:?}");
    }
    drop(registry);
    // critest's HostIpc specs make shared memory segments on the host
    // (`ipcmk -M 1048576`) and never remove them.
    for id in shm_segments().difference(&shm_before) {
        let _ = Command::new("ipcrm").args(["-m", id]).status();
    }
    outcome.map(|ok| ok && left.is_empty())
}

/// Makes the tier's pause image ([`images::SANDBOX_REF`]) the one the CRI
/// configuration names for pod sandboxes.
fn use_sandbox_image(ctrd: &test_support::containerd::Containerd, hosts: &Path) {
    let hosts = hosts.to_string_lossy();
    ctrd.ctr_ok(&["images", "pull", "--hosts-dir", &hosts, images::SANDBOX_REF]);
    ctrd.ctr_ok(&[
        "images",
        "tag",
        "--force",
        images::SANDBOX_REF,
        test_support::image::PAUSE_REF,
    ]);
    ctrd.ctr_ok(&["images", "rm", images::SANDBOX_REF]);
}

/// Removes every pod, then what this run left behind: its shim and runsc
/// processes, shim sockets, runsc state, mounts, containers' cgroups and
/// pods' network namespaces (other CRI runs on the host share the cgroup
/// namespace `k8s.io` and the `cni-` netns names: only those named in this
/// containerd's log count). Dropping `cri` then stops containerd and
/// removes what is left, and the network.
fn leftovers(mut cri: Cri) -> Vec<String> {
    cri.remove_pods();
    let Some(ctrd) = cri.containerd.as_ref() else {
        return Vec::new();
    };
    ctrd.remove_all();
    // A cgroup is ours when its container id is in our containerd's log.
    let ours = |what: &str, log: &str| {
        let id = what.rsplit(['/', ' ']).next().unwrap_or(what);
        !what.starts_with("cgroup ") || log.contains(id)
    };
    // containerd runs `shim delete` and shims exit asynchronously.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut left: Vec<String>;
    loop {
        let log = ctrd.log();
        left = ctrd
            .leftovers()
            .into_iter()
            .filter(|l| ours(l, &log))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    let log = ctrd.log();
    left.extend(
        cri.net
            .new_netns()
            .into_iter()
            .filter(|n| log.contains(n.as_str()))
            .map(|n| format!("netns {n}")),
    );
    drop(cri);
    left
}

/// Ids of the host's shared memory segments of 1 MiB that nothing
/// attaches (what critest's `ipcmk -M 1048576` makes).
fn shm_segments() -> BTreeSet<String> {
    fs::read_to_string("/proc/sysvipc/shm")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // key shmid perms size cpid lpid nattch ...
            (f.len() > 6 && f[3] == "1048576" && f[6] == "0").then(|| f[1].to_string())
        })
        .collect()
}

fn run_critest(
    opts: &Options,
    list: &[report::Entry],
    work: &Path,
    socket: &Path,
    nri: &Path,
) -> Result<bool, String> {
    let report_path = opts.out_dir.join("critest-report.json");
    let log_path = opts.out_dir.join("critest.log");
    let _ = fs::remove_file(&report_path);
    let endpoint = format!("unix://{}", socket.display());
    let tmp = work.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| format!("mkdir {}: {e}", tmp.display()))?;
    let mut cmd = Command::new(&opts.critest);
    cmd.arg(format!("-runtime-endpoint={endpoint}"))
        .arg(format!("-image-endpoint={endpoint}"))
        .arg(format!("-runtime-handler={}", opts.handler))
        .arg(format!("-nri-socket={}", nri.display()))
        .arg("-ginkgo.v")
        .arg("-ginkgo.no-color")
        .arg(format!("-ginkgo.timeout={}s", opts.limit.as_secs()))
        .arg(format!("-ginkgo.json-report={}", report_path.display()));
    for e in list.iter().filter(|e| e.skip) {
        cmd.arg(format!("-ginkgo.skip={}", report::regex_escape(&e.pattern)));
    }
    if let Some(f) = &opts.focus {
        cmd.arg(format!("-ginkgo.focus={f}"));
    }
    // critest keeps its log directories and files in TMPDIR: ours goes
    // with the run.
    cmd.env("TMPDIR", &tmp)
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    println!("critest tier: {cmd:?}");
    let started = Instant::now();
    let status = run_teed(cmd, &log_path, opts.limit + Duration::from_secs(30))?;
    let elapsed = started.elapsed();
    println!(
        "critest tier: critest exited ({status}) after {}s; log {}",
        elapsed.as_secs(),
        log_path.display()
    );
    stopped()?;
    let json = fs::read_to_string(&report_path)
        .map_err(|e| format!("critest wrote no report ({}): {e}", report_path.display()))?;
    let specs = report::parse_report(&json)?;
    let v = report::judge(&specs, list);
    print_verdict(&v);
    let timed_out = elapsed >= opts.limit;
    if timed_out {
        println!(
            "critest tier: FAILED: critest did not finish within {}s",
            opts.limit.as_secs()
        );
    }
    if !status.success() && v.failed() == 0 {
        println!("critest tier: FAILED: critest failed ({status}) without a failed spec");
        return Ok(false);
    }
    Ok(v.unexpected.is_empty() && !timed_out && v.total > 0)
}

/// Runs `cmd`, copying its stdout and stderr to ours and to `log`; after
/// `limit` interrupts it (SIGINT: ginkgo reports what it ran), 30 s later
/// kills it.
fn run_teed(mut cmd: Command, log: &Path, limit: Duration) -> Result<ExitStatus, String> {
    let file = fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let file = Arc::new(Mutex::new(file));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("run {:?}: {e}", cmd.get_program()))?;
    CRITEST_PID.store(child.id(), Ordering::SeqCst);
    let copy = |from: Box<dyn Read + Send>, file: Arc<Mutex<fs::File>>| {
        thread::spawn(move || {
            let mut r = BufReader::new(from);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let _ = std::io::stdout().write_all(&line);
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(&line);
                }
                line.clear();
            }
        })
    };
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        copiers.push(copy(Box::new(out), file.clone()));
    }
    if let Some(err) = child.stderr.take() {
        copiers.push(copy(Box::new(err), file.clone()));
    }
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(200));
            }
            if done.load(Ordering::SeqCst) {
                return;
            }
            eprintln!("critest tier: critest overran its limit: interrupting it");
            signal_critest("INT");
            let deadline = Instant::now() + Duration::from_secs(30);
            while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(200));
            }
            if !done.load(Ordering::SeqCst) {
                signal_critest("KILL");
            }
        })
    };
    let status = child.wait();
    CRITEST_PID.store(0, Ordering::SeqCst);
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    for c in copiers {
        let _ = c.join();
    }
    status.map_err(|e| format!("wait for critest: {e}"))
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("\n      ")
}

fn print_verdict(v: &report::Verdict) {
    println!();
    if !v.expected.is_empty() {
        println!("expected failures (gVisor):");
        for (s, reason) in &v.expected {
            println!("  {}\n    -> {reason}", s.name);
        }
    }
    if !v.fixed.is_empty() {
        println!("listed as failing under gVisor but passed (take them off the list?):");
        for s in &v.fixed {
            println!("  {}", s.name);
        }
    }
    if !v.stale.is_empty() {
        println!("list entries that match no spec of this critest:");
        for e in &v.stale {
            println!("  {}", e.pattern);
        }
    }
    if !v.unexpected.is_empty() {
        println!("UNEXPECTED failures:");
        for s in &v.unexpected {
            println!(
                "  {} [{}]\n      {}",
                s.name,
                s.raw_state,
                first_lines(&s.failure, 8)
            );
        }
    }
    println!(
        "critest: {} passed, {} failed ({} expected: gVisor, {} unexpected), {} skipped, of {} specs",
        v.passed,
        v.failed(),
        v.expected.len(),
        v.unexpected.len(),
        v.skipped,
        v.total
    );
}
