//! The [`Runsc`] client and its [`GlobalOpts`] builder: everything that goes
//! before the subcommand on runsc's command line.

use std::{
    collections::BTreeMap,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use nix::sys::signal::Signal;
use process_monitor::{DefaultMonitor, LogMonitor, ProcessMonitor};
use tokio::sync::OnceCell;

use crate::deadline::Timeouts;

/// The command used when none is configured (looked up on `PATH`).
pub const DEFAULT_COMMAND: &str = "runsc";

/// `--root`: directory holding runsc's container state.
pub const FLAG_ROOT: &str = "--root";
/// `--log`: runsc's own log file.
pub const FLAG_LOG: &str = "--log";
/// `--log-format`: text, json or json-k8s.
pub const FLAG_LOG_FORMAT: &str = "--log-format";
/// `--panic-log`: where the sandbox writes Go panics.
pub const FLAG_PANIC_LOG: &str = "--panic-log";

/// Environment variable stripped from every runsc child: systemd's
/// notification socket belongs to the shim's parent, not to runsc.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Format of runsc's `--log` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Plain text (runsc's default).
    #[default]
    Text,
    /// One JSON object per message with `msg`, `level`, `time`.
    Json,
    /// Kubernetes-style JSON (`log`, `level`, `stream`, `time`).
    JsonK8s,
}

impl LogFormat {
    /// The value runsc expects after `--log-format=`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
            LogFormat::JsonK8s => "json-k8s",
        }
    }
}

/// Client for the runsc command line (port of runsccmd's `Runsc`).
///
/// Cheap to clone; clones share the monitor and the cached capability probe.
#[derive(Debug, Clone)]
pub struct Runsc {
    pub(crate) command: PathBuf,
    pub(crate) root: Option<PathBuf>,
    pub(crate) log: Option<LogTarget>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) panic_log: Option<PathBuf>,
    pub(crate) pdeath_signal: Option<Signal>,
    pub(crate) setpgid: bool,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) monitor: Arc<dyn ProcessMonitor>,
    pub(crate) timeouts: Timeouts,
    /// Where facts about the binary (its flags) are cached across processes.
    pub(crate) cache_dir: Option<PathBuf>,
    /// Whether this runsc has `update`; asked once, on first use.
    pub(crate) has_update: Arc<OnceCell<bool>>,
    /// Direct sandbox calls or the CLI.
    pub(crate) sandbox_control: crate::direct::SandboxControl,
    /// Whether the direct path fell back, and its handshake.
    pub(crate) direct: Arc<crate::direct::DirectState>,
}

impl Default for Runsc {
    fn default() -> Self {
        GlobalOpts::new().build()
    }
}

/// Builder for [`Runsc`]; every setter takes and returns `self`.
#[derive(Debug, Clone)]
pub struct GlobalOpts {
    inner: Runsc,
}

impl Default for GlobalOpts {
    fn default() -> Self {
        Self::new()
    }
}

impl GlobalOpts {
    /// Defaults: command `runsc`, no global flags, logging monitor over
    /// [`DefaultMonitor`].
    pub fn new() -> Self {
        GlobalOpts {
            inner: Runsc {
                command: PathBuf::from(DEFAULT_COMMAND),
                root: None,
                log: None,
                log_format: None,
                panic_log: None,
                pdeath_signal: None,
                setpgid: false,
                config: BTreeMap::new(),
                monitor: Arc::new(LogMonitor::new(Arc::new(DefaultMonitor))),
                timeouts: Timeouts::default(),
                cache_dir: None,
                has_update: Arc::new(OnceCell::new()),
                sandbox_control: crate::direct::SandboxControl::default(),
                direct: crate::direct::new_state(),
            },
        }
    }

    /// The runsc binary to run.
    pub fn command(mut self, command: impl Into<PathBuf>) -> Self {
        self.inner.command = command.into();
        self
    }

    /// `--root`.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.inner.root = Some(root.into());
        self
    }

    /// `--log`. Errors are read back from this file, so set it (with
    /// [`LogFormat::Json`]) to get runsc's own words in [`crate::Error`].
    pub fn log(mut self, log: impl Into<PathBuf>) -> Self {
        self.inner.log = Some(LogTarget::File(log.into()));
        self
    }

    /// `--log` with a file of its own for every call, in `dir`: a call
    /// reads only its own errors, never those of a concurrent call, and
    /// removes the file afterwards.
    pub fn log_per_call(mut self, dir: impl Into<PathBuf>) -> Self {
        self.inner.log = Some(LogTarget::PerCall(dir.into()));
        self
    }

    /// A directory where facts about the binary (`runsc flags`) are cached
    /// for other processes.
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.inner.cache_dir = Some(dir.into());
        self
    }

    /// Deadlines per subcommand (default: [`Timeouts::default`]).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.inner.timeouts = timeouts;
        self
    }

    /// `--log-format`.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.inner.log_format = Some(format);
        self
    }

    /// `--panic-log`.
    pub fn panic_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.inner.panic_log = Some(path.into());
        self
    }

    /// Signal each runsc child receives when the calling thread dies.
    pub fn pdeath_signal(mut self, signal: Signal) -> Self {
        self.inner.pdeath_signal = Some(signal);
        self
    }

    /// Start each runsc child in its own process group.
    pub fn setpgid(mut self, setpgid: bool) -> Self {
        self.inner.setpgid = setpgid;
        self
    }

    /// Adds one extra global flag, passed as `--key=value`.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.inner.config.insert(key.into(), value.into());
        self
    }

    /// Replaces all extra global flags.
    pub fn config_map(mut self, config: BTreeMap<String, String>) -> Self {
        self.inner.config = config;
        self
    }

    /// The monitor that spawns runsc and reports its exits.
    pub fn monitor(mut self, monitor: Arc<dyn ProcessMonitor>) -> Self {
        self.inner.monitor = monitor;
        self
    }

    /// Whether running sandboxes are called directly or through the CLI.
    pub fn sandbox_control(mut self, control: crate::direct::SandboxControl) -> Self {
        self.inner.sandbox_control = control;
        self
    }

    /// Finishes the client.
    pub fn build(self) -> Runsc {
        self.inner
    }
}

impl Runsc {
    /// A client with default options (same as [`GlobalOpts::new`]`.build()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// The runsc binary.
    pub fn command(&self) -> &Path {
        &self.command
    }

    /// `--root`, if set.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Whether this runsc's root holds state for container `id` (see
    /// [`crate::control::state::exists`]); false without a root. The
    /// directory is read off the async runtime.
    pub async fn has_state(&self, id: &str) -> bool {
        let Some(root) = self.root.clone() else {
            return false;
        };
        let id = id.to_string();
        tokio::task::spawn_blocking(move || crate::control::state::exists(&root, &id))
            .await
            .unwrap_or(false)
    }

    /// The same client without `--log`: for a call that may outlive the
    /// directory the per-call logs go to (a cleanup after the bundle is
    /// removed). Clones share the monitor and the direct path's state.
    pub fn without_log(&self) -> Runsc {
        Runsc {
            log: None,
            ..self.clone()
        }
    }

    /// Where `--log` goes, if set.
    pub fn log(&self) -> Option<&LogTarget> {
        self.log.as_ref()
    }

    /// Whether `--log` is set to a directory that is no longer there.
    pub(crate) fn log_dir_gone(&self) -> bool {
        match &self.log {
            Some(LogTarget::File(p)) => p.parent().is_some_and(|d| !d.is_dir()),
            Some(LogTarget::PerCall(dir)) => !dir.is_dir(),
            None => false,
        }
    }

    /// The deadlines in force.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Extra `--key=value` flags.
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.config
    }

    /// The process monitor in use.
    pub fn monitor(&self) -> &Arc<dyn ProcessMonitor> {
        &self.monitor
    }

    /// Global flags in a fixed order: root, log, log-format, panic-log, then
    /// extra config in key order (so argv is reproducible in tests and logs).
    pub fn global_args(&self) -> Vec<String> {
        let log = match &self.log {
            Some(LogTarget::File(p)) => Some(p.clone()),
            Some(LogTarget::PerCall(dir)) => Some(dir.join("<call>.json")),
            None => None,
        };
        self.global_args_with_log(log.as_deref())
    }

    fn global_args_with_log(&self, log: Option<&Path>) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(root) = &self.root {
            args.push(format!("{FLAG_ROOT}={}", root.display()));
        }
        if let Some(log) = log {
            args.push(format!("{FLAG_LOG}={}", log.display()));
        }
        if let Some(format) = self.log_format {
            args.push(format!("{FLAG_LOG_FORMAT}={}", format.as_str()));
        }
        if let Some(panic_log) = &self.panic_log {
            args.push(format!("{FLAG_PANIC_LOG}={}", panic_log.display()));
        }
        for (k, v) in &self.config {
            args.push(format!("--{k}={v}"));
        }
        args
    }

    /// `runsc <global flags> <subcommand> <args>`, with the child set-up all
    /// runsc calls share, and the log this call writes. Stdio is left to
    /// the caller.
    ///
    /// A log whose directory is gone is left out: runsc refuses to run when
    /// it cannot open its log, and a cleanup (a force delete) may run after
    /// containerd removed the bundle the logs go to.
    pub(crate) fn command_for(&self, subcommand: &str, args: &[String]) -> (Command, CallLog) {
        let log = match &self.log {
            _ if self.log_dir_gone() => CallLog::None,
            Some(LogTarget::File(p)) => CallLog::Shared(p.clone()),
            Some(LogTarget::PerCall(dir)) => {
                let n = CALL_SEQ.fetch_add(1, Ordering::Relaxed);
                let pid = std::process::id();
                CallLog::Own(dir.join(format!("runsc-{subcommand}-{pid}-{n}.json")))
            }
            None => CallLog::None,
        };
        let mut cmd = Command::new(&self.command);
        cmd.args(self.global_args_with_log(log.path()))
            .arg(subcommand)
            .args(args);
        cmd.env_remove(NOTIFY_SOCKET);
        if self.setpgid {
            cmd.process_group(0);
        }
        if let Some(sig) = self.pdeath_signal {
            let sig = sig as libc::c_ulong;
            // SAFETY: prctl is async-signal-safe and touches no memory of
            // the parent; it is the only thing done between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        (cmd, log)
    }
}

/// Numbers per-call log files within this process.
static CALL_SEQ: AtomicU64 = AtomicU64::new(0);

/// Where runsc's `--log` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    /// One file for every call; a call reads what was appended while it ran.
    File(PathBuf),
    /// A file per call in this directory, removed once read.
    PerCall(PathBuf),
}

/// The log one call writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallLog {
    /// No `--log`.
    None,
    /// A file other calls also append to.
    Shared(PathBuf),
    /// A file of this call's own.
    Own(PathBuf),
}

impl CallLog {
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            CallLog::None => None,
            CallLog::Shared(p) | CallLog::Own(p) => Some(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_has_no_flags() {
        let r = Runsc::new();
        assert_eq!(r.command(), Path::new("runsc"));
        assert!(r.global_args().is_empty());
    }

    #[test]
    fn global_args_order() {
        let r = GlobalOpts::new()
            .command("/usr/bin/runsc")
            .config("network", "none")
            .config("debug", "true")
            .panic_log("/b/panic.log")
            .log_format(LogFormat::Json)
            .log("/b/log.json")
            .root("/run/runsc")
            .build();
        assert_eq!(
            r.global_args(),
            [
                "--root=/run/runsc",
                "--log=/b/log.json",
                "--log-format=json",
                "--panic-log=/b/panic.log",
                "--debug=true",
                "--network=none",
            ]
        );
    }

    #[test]
    fn partial_flags_and_formats() {
        let r = GlobalOpts::new()
            .log_format(LogFormat::JsonK8s)
            .config_map(BTreeMap::from([("platform".into(), "ptrace".into())]))
            .build();
        assert_eq!(
            r.global_args(),
            ["--log-format=json-k8s", "--platform=ptrace"]
        );
        let r = GlobalOpts::new()
            .root("/r")
            .log_format(LogFormat::Text)
            .build();
        assert_eq!(r.global_args(), ["--root=/r", "--log-format=text"]);
    }

    #[test]
    fn command_line_and_env() {
        let r = GlobalOpts::new()
            .root("/r")
            .pdeath_signal(Signal::SIGKILL)
            .setpgid(true)
            .build();
        let (cmd, log) = r.command_for("state", &["c1".into()]);
        assert_eq!(log, CallLog::None);
        assert_eq!(process_monitor::describe(&cmd), "runsc --root=/r state c1");
        assert!(cmd
            .get_envs()
            .any(|(k, v)| k == NOTIFY_SOCKET && v.is_none()));
    }

    // Seen in the soak: containerd removed the bundle under a Create it
    // had given up, and the undo's `runsc delete --force` died at once
    // ("error opening log file"), leaving the sandbox running.
    #[test]
    fn a_log_whose_directory_is_gone_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let per_call = GlobalOpts::new()
            .root("/r")
            .log_per_call(dir.path())
            .build();
        let shared = GlobalOpts::new()
            .root("/r")
            .log(dir.path().join("runsc.log"))
            .build();
        let (_, log) = per_call.command_for("delete", &[]);
        assert!(matches!(log, CallLog::Own(_)), "{log:?}");
        let (_, log) = shared.command_for("delete", &[]);
        assert!(matches!(log, CallLog::Shared(_)), "{log:?}");
        drop(dir);
        let (cmd, log) = per_call.command_for("delete", &["c1".into()]);
        assert_eq!(log, CallLog::None);
        assert_eq!(process_monitor::describe(&cmd), "runsc --root=/r delete c1");
        assert_eq!(shared.command_for("delete", &[]).1, CallLog::None);
    }
}
