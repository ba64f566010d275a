//! A private containerd per test: its own config, root, state and sockets in
//! a temporary directory, our shim first on its `PATH`. Dropping it removes
//! every task and container, stops containerd, unmounts what it mounted and
//! reports (then kills) any shim or runsc process it left behind.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::{cri::cri_config, image};

mod teardown;

pub use teardown::Removed;

/// Where shim sockets live (fixed by the shim protocol).
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// A running private containerd.
pub struct Containerd {
    dir: TempDir,
    child: Option<Child>,
    /// Its socket, namespace and runsc root: where its leftovers would be.
    traces: teardown::Traces,
    /// containerd's `PATH` (our shim's directory first).
    path: std::ffi::OsString,
    /// The containerd binary (`containerd`: looked up on `PATH`).
    program: PathBuf,
    /// The teardown a panic in a binary that aborts still runs.
    _abort: crate::abort::Registered,
}

/// The gRPC socket's name in a private containerd's directory.
pub(crate) const SOCKET_NAME: &str = "containerd.sock";

/// Starts containerd with the configuration in `dir`, appending to its log.
fn spawn_containerd(program: &Path, dir: &Path, path: &std::ffi::OsStr) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .expect("log file");
    Command::new(program)
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("PATH", path)
        // containerd 1.6 makes each checkpoint's image directory under
        // XDG_RUNTIME_DIR (else /tmp) and never removes it: keep them in
        // the test's own directory, which goes with it.
        .env("XDG_RUNTIME_DIR", dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("spawn containerd")
}

/// containerd's log level. containerd also passes `-debug` to its shims at
/// `Debug`, so the level sets how much both of them log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    /// What tests run at: every request and shim message lands in
    /// containerd.log for diagnosing a failure.
    Debug,
    /// containerd's default, as nodes run it: what benchmarks measure.
    Info,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
        }
    }
}

/// A namespace no other test (or earlier run) uses: runsc keeps its state
/// under `/run/containerd/runsc/<namespace>`.
fn unique_namespace() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// runsc's state root for a namespace under the shim's default root.
pub fn runsc_root(namespace: &str) -> PathBuf {
    Path::new("/run/containerd/runsc").join(namespace)
}

/// Panics unless the test runs as root with containerd, ctr and runsc on PATH.
pub fn require_e2e() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "end-to-end tests need root (they run containerd and runsc)"
    );
    for bin in ["containerd", "ctr", "runsc"] {
        assert!(
            which(bin).is_some(),
            "{bin} not found on PATH: run `make deps`"
        );
    }
}

/// Directory holding the built `containerd-shim-runsc-v1` (`$RUNSC_SHIM_DIR`,
/// else the cargo target directory of the running test binary).
pub fn shim_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RUNSC_SHIM_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> or target/<profile>/<bin>
    let candidates = exe.ancestors().skip(1).take(2);
    for dir in candidates {
        if dir.join("containerd-shim-runsc-v1").is_file() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "containerd-shim-runsc-v1 not found near {}: build the shim first (`make build`) or set RUNSC_SHIM_DIR",
        exe.display()
    );
}

impl Containerd {
    /// Starts containerd with our shim's directory first on `PATH` and imports
    /// the busybox image as [`image::IMAGE_REF`].
    pub fn start() -> Containerd {
        Self::start_with_path(&[shim_dir()])
    }

    /// Like [`Containerd::start`] with extra directories prepended to `PATH`.
    pub fn start_with_path(path_dirs: &[PathBuf]) -> Containerd {
        Self::launch(path_dirs, None, LogLevel::Debug)
    }

    /// Like [`Containerd::start_with_path`] at log level `level`.
    pub fn start_at_level(path_dirs: &[PathBuf], level: LogLevel) -> Containerd {
        Self::launch(path_dirs, None, level)
    }

    /// A containerd whose CRI plugin runs pods through our shim (handler
    /// and default runtime `runsc`), with the busybox and pause images.
    pub fn start_cri(setup: &CriSetup) -> Containerd {
        let mut path = setup.path_first.clone();
        path.push(shim_dir());
        let c = Self::launch(&path, Some(setup), LogLevel::Debug);
        let archive = image::pause_archive().to_string_lossy();
        c.ctr_ok(&["images", "import", &archive]);
        c
    }

    fn launch(path_dirs: &[PathBuf], cri: Option<&CriSetup>, level: LogLevel) -> Containerd {
        require_e2e();
        let dir = tempfile::Builder::new()
            .prefix("ctrd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let socket = d.join(SOCKET_NAME);
        let (plugins, namespace, runsc_root) = match cri {
            None => {
                let ns = unique_namespace();
                let root = runsc_root(&ns);
                (
                    r#"disabled_plugins = ["io.containerd.grpc.v1.cri"]"#.to_string(),
                    ns,
                    root,
                )
            }
            Some(setup) => {
                let base = d.join("runsc-root");
                let toml = d.join("runsc.toml");
                fs::write(
                    &toml,
                    crate::cri::with_runsc_config(
                        &format!("root = \"{}\"\n{}\n", base.display(), setup.runsc_toml),
                        crate::cri::CgroupDriver::from_env().runsc_config_lines(),
                    ),
                )
                .expect("write runsc.toml");
                (
                    cri_config(&toml, &setup.cni_conf_dir) + &setup.extra_config,
                    CRI_NAMESPACE.to_string(),
                    base.join(CRI_NAMESPACE),
                )
            }
        };
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
{plugins}
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "{level}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            level = level.as_str(),
        );
        let program = Path::new("containerd");
        let c = Self::boot(dir, program, &config, namespace, runsc_root, path_dirs);
        let archive = image::busybox_archive().to_string_lossy();
        c.ctr_ok(&["images", "import", &archive]);
        c
    }

    /// Starts `program` with `config` (written to `dir`/config.toml; its
    /// gRPC socket must be `dir`/[`SOCKET_NAME`]), `path_dirs` first on its
    /// `PATH`, and waits until it answers.
    pub(crate) fn boot(
        dir: TempDir,
        program: &Path,
        config: &str,
        namespace: String,
        runsc_root: PathBuf,
        path_dirs: &[PathBuf],
    ) -> Containerd {
        fs::write(dir.path().join("config.toml"), config).expect("write config");
        let mut path = std::env::join_paths(path_dirs).expect("join PATH");
        if let Some(p) = std::env::var_os("PATH") {
            path.push(":");
            path.push(p);
        }
        let traces = teardown::Traces {
            dir: dir.path().to_path_buf(),
            socket: dir.path().join(SOCKET_NAME),
            namespace,
            runsc_root,
        };
        let on_abort = traces.clone();
        let c = Containerd {
            child: Some(spawn_containerd(program, dir.path(), &path)),
            dir,
            traces,
            path,
            program: program.to_path_buf(),
            _abort: crate::abort::on_abort(move || on_abort.abort()),
        };
        c.wait_ready();
        c
    }

    /// Stops containerd (SIGTERM; its shims and their containers go on) and
    /// starts it again with the same configuration, as an upgrade or a
    /// crash-restart of the node's containerd does.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        self.child = Some(spawn_containerd(&self.program, self.dir.path(), &self.path));
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.traces.socket.exists() && self.ctr(&["version"]).status.success() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("containerd did not start:\n{}", self.log_tail(40));
    }

    /// containerd's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// runsc's state root for this containerd's namespace.
    pub fn runsc_state_root(&self) -> &Path {
        &self.traces.runsc_root
    }

    /// The gRPC socket path.
    pub fn socket(&self) -> &Path {
        &self.traces.socket
    }

    /// The containerd namespace tests use.
    pub fn namespace(&self) -> &str {
        &self.traces.namespace
    }

    /// The private temporary directory (config, root, state, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `ctr` of this containerd's release: the one beside its binary
    /// (a newer ctr's image import does not work on containerd 1.7), else
    /// the one on `PATH`.
    fn ctr_program(&self) -> PathBuf {
        match self.program.parent() {
            Some(d) if !d.as_os_str().is_empty() && d.join("ctr").is_file() => d.join("ctr"),
            _ => PathBuf::from("ctr"),
        }
    }

    /// A `ctr` command bound to this containerd and namespace.
    pub fn ctr_cmd(&self) -> Command {
        let mut c = Command::new(self.ctr_program());
        c.env(QUIET_DEPRECATIONS.0, QUIET_DEPRECATIONS.1)
            .arg("-a")
            .arg(&self.traces.socket)
            .arg("-n")
            .arg(&self.traces.namespace)
            .stdin(Stdio::null());
        c
    }

    /// Runs `ctr <args>` and returns its output. A call that takes longer
    /// than [`CTR_LIMIT`] is killed and fails (see [`output_within`]).
    pub fn ctr(&self, args: &[&str]) -> Output {
        output_within(self.ctr_cmd().args(args), CTR_LIMIT).expect("run ctr")
    }

    /// Runs `ctr <args>`, panicking with its stderr and containerd's log on failure.
    pub fn ctr_ok(&self, args: &[&str]) -> Output {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}):\nstdout: {}\nstderr: {}\ncontainerd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(30)
        );
        out
    }

    /// The last `n` lines of containerd's log (which includes the shims' logs).
    pub fn log_tail(&self, n: usize) -> String {
        let log = fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Full containerd log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

pub use crate::{
    cri::{CriSetup, CRI_NAMESPACE},
    host::{mounts_under, output_within, pids_matching, which, OutputExt},
};

/// containerd 2.2 and later print a deprecation warning (cgroup v1) on
/// every `ctr` call on this host unless told not to.
pub const QUIET_DEPRECATIONS: (&str, &str) = ("CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS", "1");

/// How long one `ctr` call may take: far above any test's need (the
/// longest, 512 MiB through stdout, takes seconds), so only a hang meets it.
pub const CTR_LIMIT: Duration = Duration::from_secs(180);

/// The runtime name of our shim.
pub const RUNTIME: &str = "io.containerd.runsc.v1";

impl Containerd {
    /// `ctr run --rm --runtime io.containerd.runsc.v1 [extra...] busybox <id> <cmd...>`.
    pub fn run(&self, id: &str, extra: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
        args.extend_from_slice(extra);
        args.push(crate::image::IMAGE_REF);
        args.push(id);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }

    /// `ctr <args>` on a terminal of `cols` x `rows` (`script` gives it one,
    /// sized by `stty`), for `-t` runs and execs. `args` is shell text, so
    /// a command may carry its own quoting. Bounded by [`CTR_LIMIT`].
    pub fn ctr_in_tty(&self, cols: u16, rows: u16, args: &str) -> Output {
        let line = format!(
            "stty cols {cols} rows {rows}; {}={} {} -a {} -n {} {args}",
            QUIET_DEPRECATIONS.0,
            QUIET_DEPRECATIONS.1,
            self.ctr_program().display(),
            self.traces.socket.display(),
            self.traces.namespace,
        );
        let mut script = Command::new("script");
        script
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::null());
        output_within(&mut script, CTR_LIMIT).unwrap_or_else(|e| panic!("script {line}: {e}"))
    }

    /// A FIFO directory for ctr's `--fifo-dir` that goes with this
    /// containerd. ctr leaves its FIFOs behind when the task or process it
    /// waits on disappears under it (its `Delete` then fails before closing
    /// them), so tests that race that keep them here rather than in
    /// /run/containerd/fifo.
    pub fn fifo_dir(&self) -> String {
        self.dir.path().join("fifo").to_string_lossy().into_owned()
    }

    /// Starts a detached container running `cmd`.
    pub fn run_detached(&self, id: &str, extra: &[&str], cmd: &[&str]) {
        // ctr leaves a detached task's FIFOs for whoever deletes the task;
        // when its shim was killed nobody does. Keep them in our directory,
        // which goes with us, not in /run/containerd/fifo.
        let fifo_dir = self.fifo_dir();
        let mut args = vec!["run", "-d", "--fifo-dir", &fifo_dir, "--runtime", RUNTIME];
        args.extend_from_slice(extra);
        args.push(crate::image::IMAGE_REF);
        args.push(id);
        args.extend_from_slice(cmd);
        self.ctr_ok(&args);
    }

    /// The pid column of `ctr task ls` for `id` (the sandbox's host pid).
    pub fn task_pid(&self, id: &str) -> u32 {
        let out = self.ctr_ok(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no task {id} in ctr task ls"))
    }

    /// The task status column of `ctr task ls` for `id` (e.g. RUNNING).
    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = self.ctr(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .skip(1)
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
    }

    /// Waits until `id`'s task has `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.task_status(id).as_deref() == Some(status) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "task {id} never reached {status}: {:?}",
            self.task_status(id)
        );
    }
}
