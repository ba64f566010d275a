//! One async method per runsc subcommand (port of runsccmd's `Runsc`
//! methods). Container lifecycle calls hand runsc the container's stdio;
//! every other call captures runsc's output.

use std::{
    collections::{BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex},
};

use oci_spec::runtime::{LinuxResources, Process};

use crate::control::{start::RootNetwork, SignalTarget};
use crate::{
    error::{Error, Result},
    exec::CallIo,
    global::{CallLog, Runsc},
    opts::{
        CheckpointOpts, CreateOpts, DeleteOpts, ExecOpts, KillOpts, RestoreOpts, StartOpts,
        WaitOpts,
    },
    types::{Container, Event, Stats, TopResults, WaitResult},
};

/// Name of the pid file made up for `exec --detach` without one.
const DETACH_PID_FILE: &str = "exec.pid";

fn with_id(mut args: Vec<String>, id: &str) -> Vec<String> {
    args.push(id.to_string());
    args
}

fn bundle_flag(bundle: &Path) -> String {
    format!("--bundle={}", bundle.display())
}

fn custom_parse_error(msg: &str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(msg)
}

impl Runsc {
    /// `runsc create --bundle=<bundle> [opts] <id>`.
    pub async fn create(&self, id: &str, bundle: &Path, opts: CreateOpts) -> Result<()> {
        let mut args = vec![bundle_flag(bundle)];
        args.extend(opts.args());
        let cmd = self.command_for("create", &with_id(args, id));
        self.execute(
            "create",
            id,
            cmd,
            CallIo::Container(opts.stdio),
            self.timeouts.get("create"),
        )
        .await?
        .check()
        .map(drop)
    }

    /// `runsc start <id>`.
    /// A root container created with `--network=none` or `host` is started
    /// over the sandbox's control socket when it can be.
    pub async fn start(&self, id: &str, opts: StartOpts) -> Result<()> {
        let network = RootNetwork::from_flag(self.config.get("network").map(String::as_str));
        if let (Some(network), Some(sb)) = (network, self.sandbox(id).await) {
            let deadline = self
                .timeouts
                .get("start")
                .unwrap_or(std::time::Duration::from_secs(60));
            match sb.start_root(network, deadline).await {
                Err(e) if self.falls_back(&e) => {}
                r => return r,
            }
        }
        let mut cmd = self.command_for("start", &with_id(opts.args(), id));
        opts.netns_check.apply(&mut cmd.0);
        self.execute(
            "start",
            id,
            cmd,
            CallIo::Container(opts.stdio),
            self.timeouts.get("start"),
        )
        .await?
        .check()
        .map(drop)
    }

    /// `runsc run --bundle=<bundle> [opts] <id>` in the foreground: creates,
    /// starts, waits and deletes. Returns the container's exit code; a
    /// non-zero code is an error only if runsc logged one during the call
    /// (without `--log` a runsc failure looks like exit code 128).
    pub async fn run(&self, id: &str, bundle: &Path, opts: CreateOpts) -> Result<i32> {
        let mut args = vec![bundle_flag(bundle)];
        args.extend(opts.args());
        let cmd = self.command_for("run", &with_id(args, id));
        let out = self
            .execute(
                "run",
                id,
                cmd,
                CallIo::Container(opts.stdio),
                self.timeouts.get("run"),
            )
            .await?;
        exit_code_or_error(out)
    }

    /// `runsc delete [--force] <id>`.
    pub async fn delete(&self, id: &str, opts: DeleteOpts) -> Result<()> {
        self.capture("delete", id, &with_id(opts.args(), id), None)
            .await
            .map(drop)
    }

    /// `runsc exec --process=<tmp.json> [opts] <id>`.
    ///
    /// Attached: returns the process's exit code (non-zero is not an error
    /// unless runsc logged one). Detached: returns 0 once it started. runsc
    /// 20221219 fails `exec --detach` without `--pid-file` ("a container-id
    /// is required"), so one is supplied in a temp dir when missing.
    pub async fn exec(&self, id: &str, process: &Process, opts: ExecOpts) -> Result<i32> {
        let dir = tempfile::Builder::new()
            .prefix("runsc-exec-")
            .tempdir()
            .map_err(|source| Error::Io {
                op: "create temp dir for".into(),
                path: std::env::temp_dir(),
                source,
            })?;
        let spec_path = dir.path().join("process.json");
        let json = serde_json::to_vec(process).map_err(|source| Error::Parse {
            subcommand: "exec".into(),
            id: id.into(),
            output: format!("{process:?}"),
            source,
        })?;
        tokio::fs::write(&spec_path, json)
            .await
            .map_err(|source| Error::Io {
                op: "write process spec".into(),
                path: spec_path.clone(),
                source,
            })?;
        let mut opts = opts;
        if opts.detach && opts.pid_file.is_none() {
            opts.pid_file = Some(dir.path().join(DETACH_PID_FILE));
        }
        let mut args = vec![format!("--process={}", spec_path.display())];
        args.extend(opts.args());
        let cmd = self.command_for("exec", &with_id(args, id));
        // Attached, the call lasts as long as the process: no deadline.
        let deadline = self
            .timeouts
            .get(if opts.detach { "exec-detach" } else { "exec" });
        let out = self
            .execute("exec", id, cmd, CallIo::Container(opts.stdio), deadline)
            .await?;
        // `dir` (and the spec) lives until here: the detached child has
        // read it by the time runsc wrote the pid file and exited.
        drop(dir);
        if opts.detach {
            out.check().map(|_| 0)
        } else {
            exit_code_or_error(out)
        }
    }

    /// `runsc kill [opts] <id> <sig>`.
    pub async fn kill(&self, id: &str, sig: i32, opts: KillOpts) -> Result<()> {
        if let Some(sb) = self.sandbox(id).await {
            let target = match (opts.all, opts.pid) {
                (true, _) => SignalTarget::All,
                (false, Some(pid)) => SignalTarget::Pid(pid),
                (false, None) => SignalTarget::Init,
            };
            match sb.signal(sig, target).await {
                Err(e) if self.falls_back(&e) => {}
                r => return r,
            }
        }
        let mut args = with_id(opts.args(), id);
        args.push(sig.to_string());
        self.capture("kill", id, &args, None).await.map(drop)
    }

    /// `runsc list --format=json` (runsc prints `null` for none).
    pub async fn list(&self) -> Result<Vec<Container>> {
        let out = self
            .capture("list", "", &["--format=json".into()], None)
            .await?;
        Ok(out.parse::<Option<Vec<Container>>>()?.unwrap_or_default())
    }

    /// `runsc pause <id>`.
    pub async fn pause(&self, id: &str) -> Result<()> {
        if let Some(sb) = self.sandbox(id).await {
            match sb.set_paused(true).await {
                Err(e) if self.falls_back(&e) => {}
                r => return r,
            }
        }
        self.capture("pause", id, &[id.into()], None)
            .await
            .map(drop)
    }

    /// `runsc resume <id>`.
    pub async fn resume(&self, id: &str) -> Result<()> {
        if let Some(sb) = self.sandbox(id).await {
            match sb.set_paused(false).await {
                Err(e) if self.falls_back(&e) => {}
                r => return r,
            }
        }
        self.capture("resume", id, &[id.into()], None)
            .await
            .map(drop)
    }

    /// `runsc ps --format=json <id>`: pids *inside* the sandbox.
    pub async fn ps(&self, id: &str) -> Result<Vec<i32>> {
        if let Some(sb) = self.sandbox(id).await {
            match sb.processes().await {
                Err(e) if self.falls_back(&e) => {}
                r => return r.map(|ps| ps.into_iter().map(|p| p.pid).collect()),
            }
        }
        let args = ["--format=json".to_string(), id.to_string()];
        let out = self.capture("ps", id, &args, None).await?;
        Ok(out.parse::<Option<Vec<i32>>>()?.unwrap_or_default())
    }

    /// `runsc ps --format=table <id>`, parsed.
    pub async fn top(&self, id: &str) -> Result<TopResults> {
        let args = ["--format=table".to_string(), id.to_string()];
        let out = self.capture("ps", id, &args, None).await?;
        Ok(TopResults::parse(&out.stdout_text()))
    }

    /// `runsc state <id>`.
    pub async fn state(&self, id: &str) -> Result<Container> {
        self.capture("state", id, &[id.into()], None).await?.parse()
    }

    /// `runsc events --stats <id>`: one `stats` event. (runsc 20221219
    /// panics with exit 2 on a created-but-not-started container.)
    pub async fn stats(&self, id: &str) -> Result<Stats> {
        if let Some(sb) = self.sandbox(id).await {
            match sb.stats().await {
                Err(e) if self.falls_back(&e) => {}
                r => return r,
            }
        }
        let args = ["--stats".to_string(), id.to_string()];
        let out = self.capture("events", id, &args, None).await?;
        let first = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<Event>()
            .next()
            .unwrap_or_else(|| Err(custom_parse_error("no event printed")))
            .map_err(|e| out.parse_error(e))?;
        if first.kind != "stats" {
            let msg = format!("expected a stats event, got type {:?}", first.kind);
            return Err(out.parse_error(custom_parse_error(&msg)));
        }
        first
            .stats()
            .ok_or_else(|| out.parse_error(custom_parse_error("stats event without data")))
    }

    /// `runsc wait [opts] <id>`: exit code or 128 + signal.
    pub async fn wait(&self, id: &str, opts: WaitOpts) -> Result<i32> {
        // `--pid` counts in the container's PID namespace, which only the
        // CLI translates.
        if opts.pid.is_none() {
            if let Some(sb) = self.sandbox(id).await {
                let waited = match opts.rootpid {
                    Some(pid) => sb.wait_pid(pid).await,
                    None => sb.wait().await,
                };
                match waited {
                    Err(e) if self.falls_back(&e) => {}
                    r => return r.map(|w| w.code()),
                }
            }
        }
        let out = self
            .capture("wait", id, &with_id(opts.args(), id), None)
            .await?;
        Ok(out.parse::<WaitResult>()?.exit_status)
    }

    /// `runsc checkpoint --image-path=… [--leave-running] <id>`. Without
    /// `leave_running` the container ends up `stopped`.
    pub async fn checkpoint(&self, id: &str, opts: CheckpointOpts) -> Result<()> {
        self.capture("checkpoint", id, &with_id(opts.args(), id), None)
            .await
            .map(drop)
    }

    /// `runsc restore --image-path=… [opts] <id>`: `id` may be new; the
    /// bundle must describe the same container as the checkpointed one.
    pub async fn restore(&self, id: &str, opts: RestoreOpts) -> Result<()> {
        let mut cmd = self.command_for("restore", &with_id(opts.args(), id));
        opts.netns_check.apply(&mut cmd.0);
        self.execute(
            "restore",
            id,
            cmd,
            CallIo::Container(opts.stdio),
            self.timeouts.get("restore"),
        )
        .await?
        .check()
        .map(drop)
    }

    /// `runsc update --resources=- <id>` with the resources as JSON on
    /// stdin; [`Error::Unsupported`] when this runsc has no `update`.
    pub async fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        if !self.supports_update().await? {
            return Err(Error::Unsupported {
                command: self.command.display().to_string(),
                subcommand: "update".into(),
            });
        }
        let json = serde_json::to_vec(resources).map_err(|source| Error::Parse {
            subcommand: "update".into(),
            id: id.into(),
            output: format!("{resources:?}"),
            source,
        })?;
        let args = ["--resources=-".to_string(), id.to_string()];
        self.capture("update", id, &args, Some(json))
            .await
            .map(drop)
    }

    /// Whether this runsc has `update`, asked once per client via
    /// `runsc help update` (exit 0 only for known subcommands).
    pub async fn supports_update(&self) -> Result<bool> {
        self.has_update
            .get_or_try_init(|| async {
                let out = self.ask_binary("help", &["help", "update"]).await?;
                Ok::<bool, Error>(out.status == 0)
            })
            .await
            .copied()
    }

    /// `runsc --version`: the version token, e.g. `0.0~20221219.0`; asked
    /// once per binary (path and modification time), cached on disk.
    pub async fn version(&self) -> Result<String> {
        self.per_binary(
            "version",
            &VERSION_CACHE,
            |text| Some(text.trim().to_string()).filter(|v| !v.is_empty()),
            |v| v.clone(),
            self.ask_version(),
        )
        .await
    }

    /// A question about the binary itself (no `--root`, no `--log`).
    async fn ask_binary(&self, verb: &str, args: &[&str]) -> Result<crate::exec::Outcome> {
        let mut cmd = std::process::Command::new(&self.command);
        cmd.args(args);
        let deadline = self.timeouts.get(verb);
        self.execute(
            verb,
            "",
            (cmd, CallLog::None),
            CallIo::Capture(None),
            deadline,
        )
        .await
    }

    async fn ask_version(&self) -> Result<String> {
        let out = self.ask_binary("version", &["--version"]).await?.check()?;
        let text = out.stdout_text();
        let first = text.lines().next().unwrap_or_default().trim();
        Ok(first
            .strip_prefix("runsc version ")
            .unwrap_or(first)
            .to_string())
    }
}

impl Runsc {
    /// The global flags this runsc binary knows (`runsc flags`), asked once
    /// per binary (path and modification time), cached on disk.
    pub async fn flags(&self) -> Result<Arc<BTreeSet<String>>> {
        self.per_binary(
            "flags",
            &FLAGS_CACHE,
            |text| {
                let flags: BTreeSet<String> = text.lines().map(str::to_string).collect();
                (!flags.is_empty()).then(|| Arc::new(flags))
            },
            |flags| flags.iter().map(|f| format!("{f}\n")).collect(),
            self.ask_flags(),
        )
        .await
    }

    async fn ask_flags(&self) -> Result<Arc<BTreeSet<String>>> {
        let out = self.ask_binary("flags", &["flags"]).await?.check()?;
        // Go's flag usage: one `  -name [type]` line per flag, help below.
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &out.stderr;
        let flags: BTreeSet<String> = parse_flag_names(&text);
        if flags.is_empty() {
            return Err(out.parse_error(custom_parse_error("no flags listed")));
        }
        Ok(Arc::new(flags))
    }

    /// A fact about the binary, asked once: kept per binary in this process
    /// and as text in the cache directory across processes (each pod's shim
    /// is a process of its own, and every runsc call costs a Go start).
    async fn per_binary<T: Clone>(
        &self,
        what: &str,
        memory: &Mutex<HashMap<BinaryKey, T>>,
        from_text: fn(&str) -> Option<T>,
        to_text: fn(&T) -> String,
        ask: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let key = binary_key(&self.command);
        let remember = |v: &T| {
            memory
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone(), v.clone());
        };
        let cached = memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        if let Some(v) = cached {
            return Ok(v);
        }
        let disk = self
            .cache_dir
            .as_ref()
            .map(|d| d.join(disk_cache_name(what, &key)));
        let stored = disk
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| from_text(&text));
        if let Some(v) = stored {
            remember(&v);
            return Ok(v);
        }
        let v = ask.await?;
        if let Some(path) = &disk {
            write_cache(path, &to_text(&v));
        }
        remember(&v);
        Ok(v)
    }
}

/// The file a binary's fact is kept in across processes.
fn disk_cache_name(what: &str, key: &BinaryKey) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    format!(".runsc-{what}-{:016x}", h.finish())
}

/// Writes a cache file atomically; a failure only costs a later runsc call.
fn write_cache(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        log::debug!("cannot cache in {}: {e}", path.display());
        let _ = std::fs::remove_file(&tmp);
    }
}

/// A runsc binary as found on disk: what is cached per binary is keyed by
/// its path and modification time, so an upgrade is asked again.
type BinaryKey = (PathBuf, Option<std::time::SystemTime>);

fn binary_key(command: &Path) -> BinaryKey {
    let path = resolve_binary(command);
    let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
    (path, mtime)
}

pub(crate) static FLAGS_CACHE: LazyLock<Mutex<HashMap<BinaryKey, Arc<BTreeSet<String>>>>> =
    LazyLock::new(Default::default);

static VERSION_CACHE: LazyLock<Mutex<HashMap<BinaryKey, String>>> = LazyLock::new(Default::default);

/// The release date in a runsc version (`0.0~20221219.0`,
/// `release-20240729.0`) as `yyyymmdd`, if it has one.
pub fn release_date(version: &str) -> Option<u32> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 8)
        .and_then(|d| d.parse().ok())
}

/// The binary a bare command name runs (first match on `PATH`).
fn resolve_binary(command: &Path) -> PathBuf {
    if command.components().count() > 1 {
        return command.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(command))
        .find(|p| p.is_file())
        .unwrap_or_else(|| command.to_path_buf())
}

/// Flag names from Go's `flag` usage text (`  -name type` lines).
pub(crate) fn parse_flag_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("  -"))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// For foreground calls whose exit status is the container's: an error
/// only when runsc itself logged one (or the status is not an exit code).
fn exit_code_or_error(out: crate::exec::Outcome) -> Result<i32> {
    if out.status != 0 && (out.log_error.is_some() || out.status < 0) {
        return Err(out.into_error());
    }
    Ok(out.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates() {
        assert_eq!(release_date("0.0~20221219.0"), Some(20221219));
        assert_eq!(release_date("release-20240729.0"), Some(20240729));
        assert_eq!(release_date("0.0~20240729.0-1~bpo12+1"), Some(20240729));
        assert_eq!(release_date("devel"), None);
    }

    #[test]
    fn flag_names_from_usage() {
        let text = "  -debug\n    \tenable debug.\n  -network value\n    \tnet\nUsage: x\n";
        let f = parse_flag_names(text);
        assert_eq!(f.into_iter().collect::<Vec<_>>(), ["debug", "network"]);
    }
}
