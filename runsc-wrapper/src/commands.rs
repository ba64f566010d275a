//! One async method per runsc subcommand (port of runsccmd's `Runsc`
//! methods). Container lifecycle calls hand runsc the container's stdio;
//! every other call captures runsc's output.

use std::path::Path;

use oci_spec::runtime::{LinuxResources, Process};

use crate::control::{start::RootNetwork, SignalTarget};
use crate::{
    error::{Error, Result},
    exec::CallIo,
    global::Runsc,
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

pub(crate) fn custom_parse_error(msg: &str) -> serde_json::Error {
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
                Err(e) if self.fall_back_on(&e) => {}
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

    /// The command line of `runsc delete` for `id` without `--log`, to run
    /// in a process that is not this client's (one that outlives the
    /// caller): the program, then its arguments.
    pub fn delete_command_line(&self, id: &str, opts: DeleteOpts) -> Vec<std::ffi::OsString> {
        let (cmd, _) = self
            .without_log()
            .command_for("delete", &with_id(opts.args(), id));
        std::iter::once(cmd.get_program().to_os_string())
            .chain(cmd.get_args().map(std::ffi::OsStr::to_os_string))
            .collect()
    }

    /// `runsc delete [--force] <id>`.
    ///
    /// A delete whose log directory went away under it (containerd removes
    /// a bundle it has given up while the shim cleans up after it) is run
    /// again without `--log`: runsc died opening the log, deleting nothing.
    pub async fn delete(&self, id: &str, opts: DeleteOpts) -> Result<()> {
        let args = with_id(opts.args(), id);
        match self.capture("delete", id, &args, None).await {
            Err(_) if self.log_dir_gone() => self
                .without_log()
                .capture("delete", id, &args, None)
                .await
                .map(drop),
            r => r.map(drop),
        }
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
                Err(e) if self.fall_back_on(&e) => {}
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
                Err(e) if self.fall_back_on(&e) => {}
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
                Err(e) if self.fall_back_on(&e) => {}
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
                Err(e) if self.fall_back_on(&e) => {}
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
                Err(e) if self.fall_back_on(&e) => {}
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
                    Err(e) if self.fall_back_on(&e) => {}
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
}

/// For foreground calls whose exit status is the container's: an error
/// only when runsc itself logged one (or the status is not an exit code).
fn exit_code_or_error(out: crate::exec::Outcome) -> Result<i32> {
    if out.status != 0 && (out.log_error.is_some() || out.status < 0) {
        return Err(out.into_error());
    }
    Ok(out.status)
}
