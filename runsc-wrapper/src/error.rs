//! The crate's single error type and the rules for turning runsc's output
//! into a readable message.

use std::{io, path::PathBuf};

use crate::control::ControlFailure;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Text used when runsc failed without saying why.
const NO_OUTPUT: &str = "no error output";

/// Everything that can go wrong while driving runsc.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// runsc ran and exited non-zero (or, for `run`/attached `exec`, logged an
    /// error of its own).
    #[error(
        "runsc {subcommand}{} failed: {} (exit status {status})",
        id_suffix(.id),
        command_message(.stderr, .log_error)
    )]
    Command {
        /// The runsc subcommand, e.g. `create`.
        subcommand: String,
        /// Container id the call was about (empty for `list`, `version`...).
        id: String,
        /// Full argv, program first.
        argv: Vec<String>,
        /// Exit code, or 128 + signal.
        status: i32,
        /// Captured stderr (empty for commands whose stdio is the container's).
        stderr: String,
        /// Last `"level":"error"` message runsc appended to its `--log` file
        /// during this call.
        log_error: Option<String>,
    },
    /// runsc could not be started at all.
    #[error("cannot spawn `{command}` for {subcommand}: {source}")]
    Spawn {
        /// The runsc subcommand.
        subcommand: String,
        /// The command line that was attempted.
        command: String,
        /// Why `spawn` failed.
        #[source]
        source: io::Error,
    },
    /// runsc succeeded but printed something we could not parse.
    #[error("runsc {subcommand}{}: cannot parse output {output:?}: {source}", id_suffix(.id))]
    Parse {
        /// The runsc subcommand.
        subcommand: String,
        /// Container id the call was about.
        id: String,
        /// The offending output.
        output: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The installed runsc lacks a subcommand.
    #[error("this {command} does not support `{subcommand}`")]
    Unsupported {
        /// The runsc binary, as configured.
        command: String,
        /// The missing subcommand.
        subcommand: String,
    },
    /// A local file operation around a runsc call failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What we were doing, e.g. "write process spec".
        op: String,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A call to the sandbox's control server failed.
    #[error("sandbox call {method}{}: {failure}", id_suffix(.id))]
    Control {
        /// The urpc method (or step, e.g. `open`).
        method: String,
        /// Container id the call was about.
        id: String,
        /// What went wrong.
        #[source]
        failure: ControlFailure,
    },
    /// A process spec runsc cannot run (an unknown capability...).
    #[error("invalid process for container {id}: {reason}")]
    InvalidProcess {
        /// The container it was to run in.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// runsc did not finish within its deadline; its process tree was killed.
    #[error(
        "runsc {subcommand}{} did not finish within {after:?} and was killed{}",
        id_suffix(.id),
        .log_error.as_deref().map(|m| format!("; runsc had logged: {m}")).unwrap_or_default()
    )]
    Timeout {
        /// The runsc subcommand.
        subcommand: String,
        /// Container id the call was about.
        id: String,
        /// The deadline that passed.
        after: std::time::Duration,
        /// The last error runsc logged before it was killed.
        log_error: Option<String>,
    },
}

fn id_suffix(id: &str) -> String {
    if id.is_empty() {
        String::new()
    } else {
        format!(" {id}")
    }
}

/// The log file's own error beats stderr: for create/start/exec stderr is the
/// container's and never captured.
fn command_message(stderr: &str, log_error: &Option<String>) -> String {
    if let Some(msg) = log_error.as_deref().filter(|m| !m.trim().is_empty()) {
        return msg.trim().to_string();
    }
    // A Go panic ends with a stack trace; its first line says what happened.
    if let Some(p) = stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("panic: "))
    {
        return format!("runsc crashed: {p}");
    }
    stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(NO_OUTPUT)
        .to_string()
}

/// How runsc says a container id names nothing: `runsc <verb>` fails with
/// `loading container: <why>` (or `loading sandbox`), and only these whys
/// mean the id is unknown. A process or file missing *inside* the container
/// ("executable file not found") is not a missing container.
const LOAD_PREFIXES: &[&str] = &["loading container", "loading sandbox"];
const LOAD_NOT_FOUND: &[&str] = &[
    "file does not exist",
    "no such file or directory",
    "not found",
];

/// runsc's words for a container whose sandbox has stopped.
const NOT_RUNNING: &[&str] = &[
    "sandbox is not running",
    "no longer running",
    "is not running",
    "in state stopped",
];

impl Error {
    /// The runsc-side text of a failed command (log error, else last stderr
    /// line, else "no error output"); the full Display for other variants.
    pub fn message(&self) -> String {
        match self {
            Error::Command {
                stderr, log_error, ..
            } => command_message(stderr, log_error),
            other => other.to_string(),
        }
    }

    /// Whether runsc said the container does not exist (or its sandbox is
    /// gone, which a shim must treat the same way).
    pub fn is_not_found(&self) -> bool {
        match self {
            // The sandbox's words for an id it does not know, alone or
            // wrapped (Signal to a process: "signaling process in
            // container ...: container \"c1\" not found").
            Error::Control {
                failure: ControlFailure::Refused(m),
                id,
                ..
            } => return m.contains(&format!("container {id:?} not found")),
            // As runsc's "sandbox is not running".
            Error::Control {
                failure: ControlFailure::Gone(_),
                ..
            } => return true,
            _ => {}
        }
        if !matches!(self, Error::Command { .. }) {
            return false;
        }
        let msg = self.message().to_lowercase();
        let loading = LOAD_PREFIXES.iter().any(|p| msg.starts_with(p));
        (loading && LOAD_NOT_FOUND.iter().any(|n| msg.contains(n)))
            || msg.contains("sandbox is not running")
    }

    /// Whether the call overran its deadline.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::Control {
                    failure: ControlFailure::Timeout(_),
                    ..
                }
        )
    }

    /// Whether runsc (or the sandbox) said the container's sandbox or
    /// process is not running.
    pub fn is_not_running(&self) -> bool {
        match self {
            Error::Control {
                failure: ControlFailure::Gone(_),
                ..
            } => true,
            Error::Control {
                failure: ControlFailure::Refused(m),
                ..
            } => {
                m.contains("no such process")
                    || m.contains("not started")
                    || m.contains("has stopped")
            }
            _ => self.command_says(NOT_RUNNING),
        }
    }

    fn command_says(&self, needles: &[&str]) -> bool {
        if !matches!(self, Error::Command { .. }) {
            return false;
        }
        let msg = self.message().to_lowercase();
        needles.iter().any(|n| msg.contains(n))
    }
}

/// Last `"level":"error"` message in a chunk of runsc's JSON log.
///
/// runsc writes JSON objects back to back without newlines, and a concurrent
/// write may leave the tail cut off, so this streams objects and stops at the
/// first that does not parse. Both `json` (`msg`) and `json-k8s` (`log`)
/// layouts are understood.
pub fn last_log_error(chunk: &[u8]) -> Option<String> {
    let mut last = None;
    let stream = serde_json::Deserializer::from_slice(chunk).into_iter::<serde_json::Value>();
    for value in stream {
        let Ok(value) = value else { break };
        if value.get("level").and_then(|l| l.as_str()) != Some("error") {
            continue;
        }
        let msg = value
            .get("msg")
            .or_else(|| value.get("log"))
            .and_then(|m| m.as_str());
        if let Some(msg) = msg {
            last = Some(msg.trim().to_string());
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from runsc 0.0~20221219 (`--log-format=json`): no newlines
    // between objects.
    const SAMPLE_LOG: &str = concat!(
        r#"{"msg":"Version 0.0~20221219.0","level":"info","time":"2026-11-22T08:11:34.4Z"}"#,
        r#"{"msg":"starting container: setting up network: creating interfaces from net namespace \"/proc/8995/ns/net\": cannot run with network enabled in root network namespace","level":"error","time":"2026-11-22T08:11:34.458540145Z"}"#,
        r#"{"msg":"loading container: file does not exist","level":"error","time":"2026-11-22T08:11:34.529747159Z"}"#,
        r#"{"msg":"trailing info","level":"info","time":"2026-11-22T08:11:34.6Z"}"#,
    );

    #[test]
    fn go_panic_names_the_panic() {
        let e = cmd_err(
            "panic: invalid state transition: paused => stopped\n\ngoroutine 1 [running]:\nmain.main()\n\tgvisor.dev/gvisor/runsc/main.go:23 +0x27\n",
            None,
        );
        assert_eq!(
            e.message(),
            "runsc crashed: panic: invalid state transition: paused => stopped"
        );
    }

    fn cmd_err(stderr: &str, log_error: Option<&str>) -> Error {
        Error::Command {
            subcommand: "create".into(),
            id: "c1".into(),
            argv: vec!["runsc".into(), "create".into(), "c1".into()],
            status: 128,
            stderr: stderr.into(),
            log_error: log_error.map(str::to_string),
        }
    }

    #[test]
    fn last_error_from_concatenated_json() {
        assert_eq!(
            last_log_error(SAMPLE_LOG.as_bytes()).as_deref(),
            Some("loading container: file does not exist")
        );
        let first_two = &SAMPLE_LOG[..SAMPLE_LOG.find("{\"msg\":\"loading").unwrap()];
        assert!(last_log_error(first_two.as_bytes())
            .unwrap()
            .ends_with("cannot run with network enabled in root network namespace"));
    }

    #[test]
    fn truncated_and_k8s_logs() {
        let cut = &SAMPLE_LOG[..SAMPLE_LOG.len() - 10];
        assert_eq!(
            last_log_error(cut.as_bytes()).as_deref(),
            Some("loading container: file does not exist")
        );
        let k8s = "{\"log\":\"boom\",\"level\":\"error\",\"stream\":\"stderr\"}\n";
        assert_eq!(last_log_error(k8s.as_bytes()).as_deref(), Some("boom"));
        assert_eq!(last_log_error(b""), None);
        assert_eq!(last_log_error(b"not json"), None);
    }

    #[test]
    fn display_prefers_log_then_stderr() {
        let e = cmd_err(
            "junk\n",
            Some("cannot run with network enabled in root network namespace"),
        );
        assert_eq!(
            e.to_string(),
            "runsc create c1 failed: cannot run with network enabled in root network namespace (exit status 128)"
        );
        let e = cmd_err("first\nlast line\n\n", None);
        assert_eq!(e.message(), "last line");
        let e = cmd_err("", None);
        assert_eq!(
            e.to_string(),
            "runsc create c1 failed: no error output (exit status 128)"
        );
    }

    #[test]
    fn classification() {
        assert!(cmd_err("", Some("loading container: file does not exist")).is_not_found());
        assert!(cmd_err("", Some("sandbox is not running")).is_not_found());
        assert!(cmd_err("", Some("sandbox is not running")).is_not_running());
        assert!(cmd_err(
            "",
            Some("waiting on container \"x\": sandbox no longer running and its exit status is unavailable")
        )
        .is_not_running());
        assert!(!cmd_err("", Some("permission denied")).is_not_found());
        // A binary missing inside the container is not a missing container.
        assert!(!cmd_err(
            "",
            Some("starting container: exec: \"nope\": executable file not found in $PATH")
        )
        .is_not_found());
        assert!(!cmd_err("", Some("open /x: no such file or directory")).is_not_found());
        let u = Error::Unsupported {
            command: "runsc".into(),
            subcommand: "update".into(),
        };
        assert_eq!(u.to_string(), "this runsc does not support `update`");
        assert!(!u.is_not_found());
    }
}
