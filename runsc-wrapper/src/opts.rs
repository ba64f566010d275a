//! Per-subcommand options. Each `args()` returns the flags that go between
//! the subcommand and the container id, always as `--flag=value`.

use std::{os::fd::OwnedFd, path::PathBuf, process, time::Duration};

/// Where one of a child's standard streams comes from / goes to.
#[derive(Debug, Default)]
pub enum StdioSource {
    /// `/dev/null`.
    #[default]
    Null,
    /// The caller's own stream.
    Inherit,
    /// This file descriptor (a FIFO, pipe, file or pty), moved into the child.
    Fd(OwnedFd),
}

impl From<StdioSource> for process::Stdio {
    fn from(src: StdioSource) -> Self {
        match src {
            StdioSource::Null => process::Stdio::null(),
            StdioSource::Inherit => process::Stdio::inherit(),
            StdioSource::Fd(fd) => process::Stdio::from(fd),
        }
    }
}

/// The container's stdio for create/start/exec/run/restore.
///
/// runsc hands these to the sandbox and gofer, which may keep them open for
/// the container's whole life: they are never capture pipes.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Standard input.
    pub stdin: StdioSource,
    /// Standard output.
    pub stdout: StdioSource,
    /// Standard error.
    pub stderr: StdioSource,
}

impl Stdio {
    /// Applies the three streams to `cmd`, consuming them.
    pub(crate) fn apply(self, cmd: &mut process::Command) {
        cmd.stdin(self.stdin)
            .stdout(self.stdout)
            .stderr(self.stderr);
    }
}

fn push_path(args: &mut Vec<String>, flag: &str, path: &Option<PathBuf>) {
    if let Some(p) = path {
        args.push(format!("{flag}={}", p.display()));
    }
}

/// Options for `runsc create` (and `run`).
#[derive(Debug, Default)]
pub struct CreateOpts {
    /// The container's stdio (root container of a sandbox).
    pub stdio: Stdio,
    /// `--console-socket`: receives the pty master when `process.terminal`.
    pub console_socket: Option<PathBuf>,
    /// `--pid-file`: runsc writes the *sandbox* pid here.
    pub pid_file: Option<PathBuf>,
    /// `--user-log`: the application's view of runsc messages.
    pub user_log: Option<PathBuf>,
}

impl CreateOpts {
    /// Flags after `create --bundle=<b>`.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        push_path(&mut a, "--console-socket", &self.console_socket);
        push_path(&mut a, "--pid-file", &self.pid_file);
        push_path(&mut a, "--user-log", &self.user_log);
        a
    }
}

/// Options for `runsc start`.
#[derive(Debug, Default)]
pub struct StartOpts {
    /// Stdio for a sub-container's gofer (it keeps it open).
    pub stdio: Stdio,
    /// How this call sees `/proc/sys/net` (a root container's start sets
    /// up networking).
    pub netns_check: crate::NetnsCheck,
}

impl StartOpts {
    /// `start` takes no flags.
    pub fn args(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Options for `runsc exec`.
#[derive(Debug, Default)]
pub struct ExecOpts {
    /// The process's stdio.
    pub stdio: Stdio,
    /// `--pid-file`: host pid of the `runsc exec` child that waits for the
    /// process (written without a newline).
    pub pid_file: Option<PathBuf>,
    /// `--internal-pid-file`: pid inside the sandbox.
    pub internal_pid_file: Option<PathBuf>,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--detach`: return once the process started.
    pub detach: bool,
}

impl ExecOpts {
    /// Flags after `exec --process=<file>`.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        push_path(&mut a, "--console-socket", &self.console_socket);
        if self.detach {
            a.push("--detach".into());
        }
        push_path(&mut a, "--pid-file", &self.pid_file);
        push_path(&mut a, "--internal-pid-file", &self.internal_pid_file);
        a
    }
}

/// Options for `runsc delete`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeleteOpts {
    /// `--force`: kill a running container; succeed on unknown ids.
    pub force: bool,
}

impl DeleteOpts {
    /// Flags before the id.
    pub fn args(&self) -> Vec<String> {
        if self.force {
            vec!["--force".into()]
        } else {
            Vec::new()
        }
    }
}

/// Options for `runsc kill`.
#[derive(Debug, Default, Clone, Copy)]
pub struct KillOpts {
    /// `--all`: every process of the container.
    pub all: bool,
    /// `--pid`: one process, by its pid inside the sandbox.
    pub pid: Option<i32>,
}

impl KillOpts {
    /// Flags before the id.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.all {
            a.push("--all".into());
        }
        if let Some(pid) = self.pid {
            a.push(format!("--pid={pid}"));
        }
        a
    }
}

/// Options for `runsc wait`.
#[derive(Debug, Default, Clone, Copy)]
pub struct WaitOpts {
    /// `--pid`: a pid in the container's PID namespace.
    pub pid: Option<i32>,
    /// `--rootpid`: a pid in the sandbox's root PID namespace.
    pub rootpid: Option<i32>,
}

impl WaitOpts {
    /// Flags before the id.
    pub fn args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(pid) = self.pid {
            a.push(format!("--pid={pid}"));
        }
        if let Some(pid) = self.rootpid {
            a.push(format!("--rootpid={pid}"));
        }
        a
    }
}

/// Options for `runsc checkpoint`.
#[derive(Debug, Default, Clone)]
pub struct CheckpointOpts {
    /// `--image-path`: directory that receives `checkpoint.img`.
    pub image_path: PathBuf,
    /// `--leave-running`: keep the container running afterwards.
    pub leave_running: bool,
}

impl CheckpointOpts {
    /// Flags before the id.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![format!("--image-path={}", self.image_path.display())];
        if self.leave_running {
            a.push("--leave-running".into());
        }
        a
    }
}

/// Options for `runsc restore`.
#[derive(Debug, Default)]
pub struct RestoreOpts {
    /// The restored container's stdio.
    pub stdio: Stdio,
    /// `--image-path`: directory holding `checkpoint.img`.
    pub image_path: PathBuf,
    /// `--bundle`: defaults to runsc's working directory when unset.
    pub bundle: Option<PathBuf>,
    /// `--detach`: return once restored instead of waiting for the exit.
    pub detach: bool,
    /// `--pid-file`.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--user-log`.
    pub user_log: Option<PathBuf>,
    /// How this call sees `/proc/sys/net` (restore sets up networking).
    pub netns_check: crate::NetnsCheck,
}

impl RestoreOpts {
    /// Flags before the id.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![format!("--image-path={}", self.image_path.display())];
        push_path(&mut a, "--bundle", &self.bundle);
        if self.detach {
            a.push("--detach".into());
        }
        push_path(&mut a, "--pid-file", &self.pid_file);
        push_path(&mut a, "--console-socket", &self.console_socket);
        push_path(&mut a, "--user-log", &self.user_log);
        a
    }
}

/// Options for `runsc events`.
#[derive(Debug, Clone, Copy)]
pub struct EventsOpts {
    /// `--interval`: runsc takes whole seconds; rounded up, at least 1.
    pub interval: Duration,
    /// `--stats`: print one event and exit.
    pub stats: bool,
}

impl Default for EventsOpts {
    fn default() -> Self {
        EventsOpts {
            interval: Duration::from_secs(5),
            stats: false,
        }
    }
}

impl EventsOpts {
    /// Flags before the id.
    pub fn args(&self) -> Vec<String> {
        // runsc parses `--interval` as an int; "1s" is rejected.
        let secs = self.interval.as_secs() + u64::from(self.interval.subsec_nanos() > 0);
        let mut a = vec![format!("--interval={}", secs.max(1))];
        if self.stats {
            a.push("--stats".into());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<PathBuf> {
        Some(PathBuf::from(s))
    }

    #[test]
    fn create_args() {
        assert!(CreateOpts::default().args().is_empty());
        let o = CreateOpts {
            console_socket: p("/s.sock"),
            pid_file: p("/b/init.pid"),
            user_log: p("/l/gvisor.log"),
            ..Default::default()
        };
        assert_eq!(
            o.args(),
            [
                "--console-socket=/s.sock",
                "--pid-file=/b/init.pid",
                "--user-log=/l/gvisor.log"
            ]
        );
    }

    #[test]
    fn start_args() {
        assert!(StartOpts::default().args().is_empty());
    }

    #[test]
    fn exec_args() {
        assert!(ExecOpts::default().args().is_empty());
        let o = ExecOpts {
            pid_file: p("/b/e.pid"),
            internal_pid_file: p("/b/e-internal.pid"),
            console_socket: p("/s"),
            detach: true,
            ..Default::default()
        };
        assert_eq!(
            o.args(),
            [
                "--console-socket=/s",
                "--detach",
                "--pid-file=/b/e.pid",
                "--internal-pid-file=/b/e-internal.pid"
            ]
        );
    }

    #[test]
    fn delete_kill_wait_args() {
        assert!(DeleteOpts::default().args().is_empty());
        assert_eq!(DeleteOpts { force: true }.args(), ["--force"]);
        assert!(KillOpts::default().args().is_empty());
        assert_eq!(
            KillOpts {
                all: true,
                pid: Some(7)
            }
            .args(),
            ["--all", "--pid=7"]
        );
        assert!(WaitOpts::default().args().is_empty());
        assert_eq!(
            WaitOpts {
                pid: Some(2),
                rootpid: Some(3)
            }
            .args(),
            ["--pid=2", "--rootpid=3"]
        );
    }

    #[test]
    fn checkpoint_restore_args() {
        let c = CheckpointOpts {
            image_path: "/img".into(),
            leave_running: true,
        };
        assert_eq!(c.args(), ["--image-path=/img", "--leave-running"]);
        let r = RestoreOpts {
            image_path: "/img".into(),
            ..Default::default()
        };
        assert_eq!(r.args(), ["--image-path=/img"]);
        let r = RestoreOpts {
            image_path: "/img".into(),
            bundle: p("/b"),
            detach: true,
            pid_file: p("/b/pid"),
            console_socket: p("/s"),
            user_log: p("/u"),
            ..Default::default()
        };
        assert_eq!(
            r.args(),
            [
                "--image-path=/img",
                "--bundle=/b",
                "--detach",
                "--pid-file=/b/pid",
                "--console-socket=/s",
                "--user-log=/u"
            ]
        );
    }

    #[test]
    fn events_args() {
        assert_eq!(EventsOpts::default().args(), ["--interval=5"]);
        let e = EventsOpts {
            interval: Duration::from_millis(1500),
            stats: true,
        };
        assert_eq!(e.args(), ["--interval=2", "--stats"]);
        let e = EventsOpts {
            interval: Duration::ZERO,
            stats: false,
        };
        assert_eq!(e.args(), ["--interval=1"]);
    }
}
