//! `make soak` and its short form in `make test`: containerd's own load
//! generator, `containerd-stress` (N workers creating, starting and deleting
//! containers, or exec'ing in long-lived ones, for a duration), driven
//! through our shim and, beside it, through containerd's Go runc shim
//! driving runsc and through plain runc, each on a private containerd that
//! pulls its image from a registry of the run's own on 127.0.0.1.
//!
//! - [`sample`]: the figures read every few minutes (shims' RSS, PSS,
//!   descriptors and threads; mounts, cgroups, runtime state, sockets,
//!   FIFOs).
//! - [`events`]: every task event, and the check that each process exited
//!   exactly once with a status its command gives, in lifecycle order.
//! - [`faults`]: faults landed during a load (processes killed, containerd
//!   restarted or stalled, a task paused, a runsc call hung).
//! - [`scrub`]: what a load left on the host, removed after it was counted.
//! - [`stress`]: containerd-stress started so that it runs without
//!   CAP_SYS_RESOURCE.
//! - [`report`]: the markdown tables, the JSON, and the verdict: for our
//!   shim no errors, nothing lost, flat figures after warm-up and nothing
//!   left at the end.

pub mod events;
pub mod faults;
pub mod report;
pub mod sample;
pub mod scrub;
pub mod stress;

use std::{
    fs,
    io::Read,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use serde_json::Value;
use test_support::{
    containerd::{shim_dir, Containerd, LogLevel, Removed, RUNTIME},
    host::which,
};

use events::{EventCheck, EventWatch};
use sample::{Places, Sample};

/// The namespace containerd-stress works in.
pub const NAMESPACE: &str = "stress";

/// What drives the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Our shim (`io.containerd.runsc.v1`) with runsc.
    Ours,
    /// containerd's Go shim (`io.containerd.runc.v2`) with runsc as its
    /// `runc` (on `--network=none`).
    GoShimRunsc,
    /// containerd's Go shim with runc: the baseline without gVisor.
    Runc,
}

impl Handler {
    /// Parses `ours`, `go` or `runc`.
    pub fn parse(s: &str) -> Option<Handler> {
        match s {
            "ours" => Some(Handler::Ours),
            "go" => Some(Handler::GoShimRunsc),
            "runc" => Some(Handler::Runc),
            _ => None,
        }
    }

    /// The name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Handler::Ours => "ours + runsc",
            Handler::GoShimRunsc => "Go shim + runsc",
            Handler::Runc => "Go shim + runc",
        }
    }

    fn runtime(self) -> &'static str {
        match self {
            Handler::Ours => RUNTIME,
            Handler::GoShimRunsc | Handler::Runc => "io.containerd.runc.v2",
        }
    }

    fn shim(self) -> &'static str {
        match self {
            Handler::Ours => "containerd-shim-runsc-v1",
            Handler::GoShimRunsc | Handler::Runc => "containerd-shim-runc-v2",
        }
    }

    /// The runtime's state directory for [`NAMESPACE`] (both shims' default
    /// roots: `/run/containerd/runsc` and `/run/containerd/runc`).
    fn runtime_root(self) -> PathBuf {
        match self {
            Handler::Ours => Path::new("/run/containerd/runsc").join(NAMESPACE),
            Handler::GoShimRunsc | Handler::Runc => {
                Path::new("/run/containerd/runc").join(NAMESPACE)
            }
        }
    }
}

/// containerd-stress's two modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Create, start (`true`), wait, delete, over and over.
    Plain,
    /// One long-lived container per worker, `true` exec'd in it over and over.
    Exec,
}

impl Mode {
    /// Parses `plain` or `exec`.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "plain" => Some(Mode::Plain),
            "exec" => Some(Mode::Exec),
            _ => None,
        }
    }

    /// The name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Exec => "exec",
        }
    }

    /// Whether `status` is what `process` of `container` can exit with:
    /// `true` gives 0; the exec mode's long-lived containers are SIGKILLed
    /// at the end. Under faults a process may also be SIGKILLed with its
    /// sandbox (137), lose its shim (255, containerd's code for that) or,
    /// for an exec running in a sandbox that is killed, end with the
    /// shim's 128 (its wait over the control socket fails with the
    /// sandbox; 137 would say more).
    fn status_ok(self, faults: bool, container: &str, process: &str, status: i64) -> bool {
        match self {
            _ if faults => [0, 128, 137, 255].contains(&status),
            Mode::Exec if container == process => status == 0 || status == 137,
            _ => status == 0,
        }
    }
}

/// How long shims get to exit after the load. A shim whose `Forward` was
/// taken by a containerd still starting after a restart waits out that
/// call's 30 s deadline, retries, and only then exits (seen in CI, 35 s
/// after the restart).
const SETTLE: Duration = Duration::from_secs(45);

/// One load: a handler, a mode, how long, how often to sample.
#[derive(Debug, Clone)]
pub struct Load {
    /// What drives the containers.
    pub handler: Handler,
    /// containerd-stress's mode.
    pub mode: Mode,
    /// containerd-stress's `--duration`.
    pub duration: Duration,
    /// Time between samples.
    pub sample_every: Duration,
    /// containerd-stress's `--concurrent` workers.
    pub workers: usize,
    /// Time between faults, if faults are landed.
    pub faults: Option<Duration>,
    /// The faults landed, in turn.
    pub fault_kinds: Vec<faults::Fault>,
}

/// What one load gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The load.
    pub load: Load,
    /// containerd-stress's `--json` result, if it printed one.
    pub stress: Option<Value>,
    /// What went wrong around it (containerd-stress failing to run...).
    pub error: Option<String>,
    /// Samples during the load.
    pub samples: Vec<Sample>,
    /// The sample after the load ended and containerd cleaned up.
    pub after: Sample,
    /// What the events say.
    pub events: EventCheck,
    /// Containers or tasks left in the namespace at the end.
    pub left: Vec<String>,
    /// Shim sockets containerd stranded (see
    /// [`faults::stranded_by_containerd`]): not counted in `after`.
    pub stranded: Vec<PathBuf>,
    /// The faults landed: seconds into the load, which, what it hit.
    pub faults: Vec<(u64, faults::Fault, String)>,
    /// Why the load was stopped before its time (the host running out of
    /// memory: the Go shim leaks every container's sandbox).
    pub stopped_early: Option<String>,
}

/// The directory first on containerd's `PATH` for `handler`: the runtime
/// binary its shim runs, as a wrapper that can be made to hang (see
/// [`faults::runsc_wrapper`]); for the Go shim with runsc, runsc as its
/// `runc`, on no network (the host's namespace is not runsc's to take).
fn runtime_dir(handler: Handler, work: &Path) -> Result<PathBuf, String> {
    let (name, real, extra) = match handler {
        Handler::Ours => ("runsc", "runsc", ""),
        Handler::GoShimRunsc => ("runc", "runsc", "--network=none"),
        Handler::Runc => ("runc", "runc", ""),
    };
    let real = which(real).ok_or_else(|| format!("{real} not on PATH"))?;
    let dir = work.join(format!("bin-{}", handler.shim()));
    let script = faults::runsc_wrapper(&real, extra, &faults::hang_flag(work));
    let wrapper = dir.join(name);
    fs::create_dir_all(&dir)
        .and_then(|()| fs::write(&wrapper, script))
        .and_then(|()| fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("{}: {e}", wrapper.display()))?;
    Ok(dir)
}

/// Runs `load` on a private containerd pulling `image` (from the run's
/// registry), with its files in `work`. Every event seen is written to
/// `keep` (and containerd's log too when the load shows a problem).
pub fn run(load: &Load, image: &str, work: &Path, keep: &Path) -> Outcome {
    let mut outcome = Outcome {
        load: load.clone(),
        stress: None,
        error: None,
        samples: Vec::new(),
        after: Sample::default(),
        events: EventCheck::default(),
        left: Vec::new(),
        stranded: Vec::new(),
        faults: Vec::new(),
        stopped_early: None,
    };
    let runtime = match runtime_dir(load.handler, work) {
        Ok(d) => d,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    let path: Vec<PathBuf> = match load.handler {
        Handler::Ours => vec![runtime, shim_dir()],
        Handler::GoShimRunsc | Handler::Runc => vec![runtime],
    };
    // Rates are measured at containerd's default level; a faults load logs
    // every request and shim message, kept if something went wrong.
    let level = match load.faults {
        Some(_) => LogLevel::Debug,
        None => LogLevel::Info,
    };
    let mut c = Containerd::start_at_level(&path, level);
    let mut places = Places {
        shim: load.handler.shim(),
        socket: c.socket().to_path_buf(),
        containerd_dir: c.dir().to_path_buf(),
        runtime_root: load.handler.runtime_root(),
        namespace: NAMESPACE,
        before: Default::default(),
    };
    places.mark_before();
    let mut ctr_events = c.ctr_cmd();
    ctr_events.args(["-n", NAMESPACE]);
    let watch = match EventWatch::start(ctr_events, NAMESPACE) {
        Ok(w) => w,
        Err(e) => {
            outcome.error = Some(format!("ctr events: {e}"));
            return outcome;
        }
    };
    let log = work.join(format!(
        "stress-{}-{}.log",
        load.handler.shim(),
        load.mode.label()
    ));
    let mut cmd = Command::new("containerd-stress");
    cmd.arg("--address")
        .arg(c.socket())
        .args(["--runtime", load.handler.runtime()])
        .args(["--concurrent", &load.workers.to_string()])
        .args(["--duration", &format!("{}s", load.duration.as_secs())])
        .args(["--image", image, "--json"]);
    if load.mode == Mode::Exec {
        cmd.arg("--exec");
    }
    match stress::limits_unchanged() {
        Ok(filter) => stress::apply_on_exec(&mut cmd, filter),
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    }
    let stderr = fs::File::create(&log)
        .map(Stdio::from)
        .unwrap_or(Stdio::null());
    let mut child = match cmd.stdout(Stdio::piped()).stderr(stderr).spawn() {
        Ok(ch) => ch,
        Err(e) => {
            outcome.error = Some(format!("containerd-stress: {e} (not on PATH?)"));
            return outcome;
        }
    };
    let start = Instant::now();
    let mut next = load.sample_every;
    let mut injector = faults::Injector::new(load.fault_kinds.clone(), faults::hang_flag(work));
    let mut next_fault = load.faults;
    // containerd-stress pulls first, then runs for its duration; a bound
    // well past that catches a hang.
    let bound = load.duration + Duration::from_secs(300);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if let Some(due) = next_fault.filter(|d| start.elapsed() >= *d) {
            // Not in the last seconds: the load must end on its own.
            if start.elapsed() + Duration::from_secs(10) < load.duration {
                injector.land(start.elapsed().as_secs(), &mut c, &places);
            }
            next_fault = load.faults.map(|every| due + every);
        }
        if start.elapsed() >= next {
            outcome
                .samples
                .push(sample::take(&places, start.elapsed().as_secs()));
            next += load.sample_every;
        }
        if outcome.stopped_early.is_none() {
            if let Some(why) = sample::host_short() {
                // containerd-stress ends its run on SIGINT and prints its results.
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
                outcome.stopped_early = Some(format!(
                    "stopped after {} s: {why}",
                    start.elapsed().as_secs()
                ));
            }
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            outcome.error = Some(format!("containerd-stress still running after {bound:?}"));
            break None;
        }
        thread::sleep(Duration::from_millis(250));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(st) = status {
        if !st.success() {
            let tail = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            outcome.error = Some(format!("containerd-stress {st}: {}", tail.join(" | ")));
        }
    }
    outcome.stress = serde_json::from_str(out.trim()).ok();
    // What the client left (a restart cuts its calls off) is deleted the
    // usual way first; what is held after that is the handler's.
    outcome.left = sweep(&c);
    // containerd runs `shim delete` and shims exit after their last task.
    // What containerd stranded is counted apart: it is not the shim's.
    if !injector.dead_shims.is_empty() {
        let left: Vec<PathBuf> = places
            .sockets()
            .difference(&places.before)
            .cloned()
            .collect();
        outcome.stranded = faults::stranded_by_containerd(&c.log(), &left, &injector.dead_shims);
    }
    let settle = Instant::now();
    loop {
        outcome.after = sample::take(&places, start.elapsed().as_secs());
        let stranded = outcome.stranded.iter().filter(|p| p.exists()).count();
        outcome.after.sockets = outcome.after.sockets.saturating_sub(stranded);
        if report::nothing_held(&outcome.after) || settle.elapsed() > SETTLE {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let _ = fs::remove_file(faults::hang_flag(work));
    let faulted = load.faults.is_some();
    let seen = watch.finish();
    outcome.events = events::check(
        &seen,
        |c, p, s| load.mode.status_ok(faulted, c, p, s),
        &injector.dead_shims,
    );
    // Every event, for a look at what the check found.
    let log: String = seen.iter().map(|e| format!("{e:?}\n")).collect();
    let _ = fs::create_dir_all(keep)
        .and_then(|()| fs::write(keep.join(format!("{}.log", file_name(load))), log));
    outcome.faults = injector.log;
    let scrubbed = scrub::scrub(&places);
    if !scrubbed.is_empty() {
        eprintln!("soak: removed what the load left: {}", scrubbed.join(", "));
    }
    // containerd's log (its shims' with it) goes with its directory: kept
    // when there is something to look into.
    if !report::problems(&outcome).is_empty() {
        let path = keep.join(format!("{}-containerd.log", file_name(load)));
        if fs::write(&path, c.log()).is_ok() {
            eprintln!("soak: containerd's log kept in {}", path.display());
        }
    }
    drop(c);
    outcome
}

/// The load's name in file names.
fn file_name(load: &Load) -> String {
    let faults = if load.faults.is_some() { "-faults" } else { "" };
    format!("{}-{}{faults}", load.handler.shim(), load.mode.label())
}

/// Removes what the load left in [`NAMESPACE`] (containers, tasks,
/// images) and says which containers and tasks there were.
fn sweep(c: &Containerd) -> Vec<String> {
    let left = c
        .remove_all_in(NAMESPACE)
        .into_iter()
        .map(|r| match r {
            Removed::Task(id) => format!("task {id}"),
            Removed::Container(id) => format!("container {id}"),
        })
        .collect();
    let ctr = |args: &[&str]| c.ctr_in(NAMESPACE, args);
    for image in ctr(&["images", "list", "-q"]).split_whitespace() {
        ctr(&["images", "remove", "--sync", image]);
    }
    left
}
