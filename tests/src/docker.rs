//! A private Docker Engine per test: `dockerd` with a `daemon.json` of its
//! own (data root, exec root, pidfile and API socket in a temporary
//! directory), its default bridge a Linux bridge the test creates on a
//! private /24, no iptables, forwarding or masquerade changes on the host,
//! and the runtime `runsc` = our shim (`io.containerd.runsc.v1` with a
//! `runsc.toml` whose runsc root is private). dockerd starts its own
//! containerd from its `PATH`: our shim's directory first, then the test's
//! `PATH` (the tier puts containerd 1.7, runsc and Docker's directory
//! there). The busybox image is `docker load`ed as [`IMAGE`]: there is no
//! registry.
//!
//! [`Dockerd::stop_and_check`] removes every container and network, stops
//! dockerd (and so its containerd), and fails on what this daemon left:
//! shims, runsc or docker-proxy processes, containerd, mounts, shim
//! sockets, runsc state, container cgroups, bridges. Dropping it without
//! that cleans up silently.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::{
    containerd::shim_dir,
    host::{output_within, which},
    image,
};

mod teardown;

/// The loaded busybox image, as Docker names it.
pub const IMAGE: &str = "busybox:latest";

/// How long one `docker` call may take: far above any test's need, so only
/// a hang meets it.
pub const DOCKER_LIMIT: Duration = Duration::from_secs(120);

/// The first two octets of the default bridges' subnets (`<NET>.<n>.0/24`).
/// Other tiers keep 10.213 and 10.214.
pub const BRIDGE_NET: &str = "10.215";

/// The first two octets of user-defined networks' subnets.
pub const USER_NET: &str = "10.216";

/// How a test's dockerd is configured beyond the defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct DockerdOptions {
    /// `"live-restore": true`: containers outlive a dockerd restart.
    pub live_restore: bool,
}

/// A running private dockerd.
pub struct Dockerd {
    dir: TempDir,
    child: Option<Child>,
    /// dockerd's `PATH` (our shim's directory first).
    path: OsString,
    /// The `docker` CLI: the one beside `dockerd`, else `docker`.
    cli: PathBuf,
    /// The default bridge's subnet without its last octet, e.g. `10.215.7`.
    prefix: String,
    /// The network number shared by the default bridge and the user network.
    n: u32,
    traces: teardown::Traces,
    _abort: crate::abort::Registered,
    /// Dropped after the daemon stopped (fields drop after `drop`).
    _run_docker: RunDockerGuard,
}

/// dockerd makes `/run/docker/plugins` (where it looks for plugins'
/// sockets) whatever its exec root. When no `/run/docker` was there before
/// this process's first dockerd started, the last one to stop removes it
/// again (if empty): the host keeps no trace of the tests.
struct RunDockerGuard;

/// How many of this process's dockerds may be running, and whether they
/// made `/run/docker`.
static RUN_DOCKER: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

const RUN_DOCKER_DIR: &str = "/run/docker";

impl RunDockerGuard {
    fn new() -> RunDockerGuard {
        let mut state = RUN_DOCKER.lock().unwrap_or_else(|p| p.into_inner());
        if state.0 == 0 {
            state.1 = !Path::new(RUN_DOCKER_DIR).exists();
        }
        state.0 += 1;
        RunDockerGuard
    }
}

impl Drop for RunDockerGuard {
    fn drop(&mut self) {
        let mut state = RUN_DOCKER.lock().unwrap_or_else(|p| p.into_inner());
        state.0 -= 1;
        if state.0 == 0 && state.1 {
            let _ = fs::remove_dir(Path::new(RUN_DOCKER_DIR).join("plugins"));
            let _ = fs::remove_dir(RUN_DOCKER_DIR);
        }
    }
}

/// Panics unless the test runs as root with dockerd, docker, containerd and
/// runsc on `PATH`.
pub fn require_docker() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "Docker tests need root (they run dockerd, containerd and runsc)"
    );
    for bin in [
        "dockerd",
        "docker",
        "docker-proxy",
        "docker-init",
        "containerd",
        "runsc",
    ] {
        assert!(
            which(bin).is_some(),
            "{bin} not found on PATH: run the tier through scripts/docker-tier.sh \
             (it puts scripts/versions.sh's docker-26 and containerd-1.7 directories there)"
        );
    }
}

/// A number no other dockerd of this process uses.
fn next_number() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Runs `ip <args>`, panicking with its stderr on failure.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The OCI image archive `oci` with Docker's own `manifest.json` added
/// (written in `work`): dockerd 26 on a graph driver loads only that
/// (Docker's own saves carry both), not the OCI layout's index alone.
fn docker_archive(oci: &Path, work: &Path) -> PathBuf {
    let layout = work.join("image");
    fs::create_dir_all(&layout).expect("image dir");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(oci)
        .arg("-C")
        .arg(&layout)
        .status()
        .expect("run tar");
    assert!(st.success(), "unpacking {}: {st}", oci.display());
    let json = |path: PathBuf| -> serde_json::Value {
        let text = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let blob = |digest: &serde_json::Value| -> String {
        let digest = digest.as_str().expect("a digest");
        format!("blobs/{}", digest.replacen(':', "/", 1))
    };
    let index = json(layout.join("index.json"));
    let manifest = json(layout.join(blob(&index["manifests"][0]["digest"])));
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| blob(&l["digest"]))
        .collect();
    let docker_manifest = serde_json::json!([{
        "Config": blob(&manifest["config"]["digest"]),
        "RepoTags": [IMAGE],
        "Layers": layers,
    }]);
    fs::write(
        layout.join("manifest.json"),
        serde_json::to_vec(&docker_manifest).expect("json"),
    )
    .expect("write manifest.json");
    let out = work.join("busybox-docker.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&out)
        .args(["oci-layout", "index.json", "manifest.json", "blobs"])
        .status()
        .expect("run tar");
    assert!(st.success(), "packing {}: {st}", out.display());
    let _ = fs::remove_dir_all(&layout);
    out
}

impl Dockerd {
    /// Starts a dockerd with the default options and loads the busybox image.
    pub fn start() -> Dockerd {
        Self::start_with(DockerdOptions::default())
    }

    /// Starts a dockerd configured by `options` and loads the busybox image.
    pub fn start_with(options: DockerdOptions) -> Dockerd {
        require_docker();
        let dir = tempfile::Builder::new()
            .prefix("dkd-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let pid = std::process::id();
        let n = (pid * 7 + next_number()) % 250;
        let prefix = format!("{BRIDGE_NET}.{n}");
        let traces = teardown::Traces {
            dir: d.to_path_buf(),
            bridge: format!("dkrs{}b{n}", pid % 10_000),
            user_bridge: format!("dkrs{}u{n}", pid % 10_000),
            cgroup_parent: format!("dkrs-{pid}-{n}"),
            subnets: vec![format!("{prefix}."), format!("{USER_NET}.{n}.")],
            live_restore: options.live_restore,
        };
        let on_abort = traces.clone();
        let mut path = std::env::join_paths([shim_dir()]).expect("join PATH");
        if let Some(p) = std::env::var_os("PATH") {
            path.push(":");
            path.push(p);
        }
        let cli = match which("dockerd").and_then(|p| p.parent().map(|d| d.join("docker"))) {
            Some(c) if c.is_file() => c,
            _ => PathBuf::from("docker"),
        };
        // From here on, dropping it (a panic included) removes what was made.
        let mut dockerd = Dockerd {
            dir,
            child: None,
            path,
            cli,
            prefix,
            n,
            traces,
            _abort: crate::abort::on_abort(move || on_abort.abort()),
            _run_docker: RunDockerGuard::new(),
        };
        let (d, traces) = (dockerd.dir.path(), &dockerd.traces);

        // The default bridge: Docker takes its subnet from the address on it
        // and never deletes a bridge it did not make.
        ip(&["link", "add", &traces.bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", dockerd.prefix),
            "dev",
            &traces.bridge,
        ]);
        ip(&["link", "set", &traces.bridge, "up"]);

        let runsc_toml = d.join("runsc.toml");
        fs::write(
            &runsc_toml,
            format!("root = \"{}\"\n", traces.runsc_root().display()),
        )
        .expect("write runsc.toml");
        let config = serde_json::json!({
            "data-root": d.join("data"),
            // Short: Docker puts sockets under it (containerd's, libnetwork's).
            "exec-root": traces.exec_root(),
            "pidfile": d.join("dockerd.pid"),
            "hosts": [format!("unix://{}", traces.socket().display())],
            // Nothing on the host's firewall or sysctls: the test's bridge is
            // reached from the host directly, -p through docker-proxy.
            "iptables": false,
            "ip6tables": false,
            "ip-forward": false,
            "ip-masq": false,
            "bridge": traces.bridge,
            // Containers' cgroups apart from every other dockerd's.
            "cgroup-parent": format!("/{}", traces.cgroup_parent),
            "live-restore": options.live_restore,
            // dockerd logs its containerd's (and the shims') debug output,
            // which the teardown reads shim addresses from.
            "debug": true,
            "runtimes": {
                "runsc": {
                    "runtimeType": crate::containerd::RUNTIME,
                    "options": {
                        "TypeUrl": "io.containerd.runsc.v1.options",
                        "ConfigPath": runsc_toml,
                    }
                }
            }
        });
        fs::write(
            traces.config(),
            serde_json::to_vec_pretty(&config).expect("json"),
        )
        .expect("write daemon.json");
        dockerd.spawn();
        let archive = docker_archive(image::busybox_archive(), dockerd.dir.path());
        let archive = archive.to_string_lossy().into_owned();
        let loaded = dockerd.docker_ok(&["load", "-i", &archive]);
        assert!(
            String::from_utf8_lossy(&loaded.stdout).contains(IMAGE),
            "docker load did not name the image {IMAGE}: {}",
            String::from_utf8_lossy(&loaded.stdout)
        );
        dockerd
    }

    /// Starts dockerd (appending to its log) and waits until it answers.
    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.traces.log())
            .expect("dockerd log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(self.traces.config())
            .env("PATH", &self.path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("spawn dockerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.traces.socket().exists() && self.docker(&["version"]).status.success() {
                return;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
                panic!("dockerd exited ({st}):\n{}", self.log_tail(40));
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!("dockerd did not start:\n{}", self.log_tail(40));
    }

    /// Stops dockerd (SIGTERM, as `systemctl restart docker` does) and
    /// starts it again with the same configuration.
    pub fn restart(&mut self) {
        self.stop_daemon();
        self.spawn();
    }

    /// A `docker` command bound to this daemon, with a CLI configuration
    /// directory of its own (nothing under `~/.docker`).
    pub fn docker_cmd(&self) -> Command {
        let mut c = Command::new(&self.cli);
        c.env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .arg("-H")
            .arg(self.host())
            .stdin(Stdio::null());
        c
    }

    /// `unix://<socket>`: this daemon's API address.
    pub fn host(&self) -> String {
        format!("unix://{}", self.traces.socket().display())
    }

    /// Runs `docker <args>`, killed (and failing) after [`DOCKER_LIMIT`].
    pub fn docker(&self, args: &[&str]) -> Output {
        output_within(self.docker_cmd().args(args), DOCKER_LIMIT).expect("run docker")
    }

    /// Runs `docker <args>`, panicking with its output and dockerd's log on
    /// failure.
    pub fn docker_ok(&self, args: &[&str]) -> Output {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndockerd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(30)
        );
        out
    }

    /// `docker <args>`'s stdout, trimmed, panicking on failure.
    pub fn docker_text(&self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.docker_ok(args).stdout)
            .trim()
            .to_string()
    }

    /// `docker inspect -f <format> <id>`, trimmed.
    pub fn inspect(&self, id: &str, format: &str) -> String {
        self.docker_text(&["inspect", "-f", format, id])
    }

    /// `docker <args>` on a terminal of `cols` x `rows` (`script` gives it
    /// one, sized by `stty`), for `-it`. `args` is shell text. Bounded by
    /// [`DOCKER_LIMIT`].
    pub fn docker_in_tty(&self, cols: u16, rows: u16, args: &str) -> Output {
        let line = format!(
            "stty cols {cols} rows {rows}; DOCKER_CONFIG={} {} -H {} {args}",
            self.dir.path().join("cli").display(),
            self.cli.display(),
            self.host(),
        );
        let mut script = Command::new("script");
        script
            .args(["-qec", &line, "/dev/null"])
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        output_within(&mut script, DOCKER_LIMIT).unwrap_or_else(|e| panic!("script {line}: {e}"))
    }

    /// Waits up to `limit` for `f` to hold, panicking with `what` otherwise.
    pub fn wait_until(&self, what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if f() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{what}: not after {limit:?}\ndockerd log:\n{}",
            self.log_tail(30)
        );
    }

    /// The default bridge's subnet without its last octet, e.g. `10.215.7`
    /// (the bridge itself is `.1`).
    pub fn bridge_prefix(&self) -> &str {
        &self.prefix
    }

    /// Creates a user-defined bridge network `name` on a private /24 of its
    /// own and returns that subnet without its last octet. Its bridge has a
    /// name the teardown knows (removed with the network).
    pub fn create_network(&self, name: &str) -> String {
        let prefix = format!("{USER_NET}.{}", self.n);
        let bridge_opt = format!("com.docker.network.bridge.name={}", self.traces.user_bridge);
        self.docker_ok(&[
            "network",
            "create",
            "--driver",
            "bridge",
            "--subnet",
            &format!("{prefix}.0/24"),
            "-o",
            &bridge_opt,
            name,
        ]);
        prefix
    }

    /// The private temporary directory (config, data and exec roots, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cgroup parent of this daemon's containers (without the leading `/`).
    pub fn cgroup_parent(&self) -> &str {
        &self.traces.cgroup_parent
    }

    /// The last `n` lines of dockerd's log (with its containerd's and the shims').
    pub fn log_tail(&self, n: usize) -> String {
        let log = fs::read_to_string(self.traces.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}
