//! The shim's one error type and the one place it becomes a ttrpc status.

use containerd_shim::protos::ttrpc::{self, Code};

/// Everything a task request can fail with. Variants are named after the
/// ttrpc code containerd receives, so the mapping below is the only one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The container, exec process or resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An id is already taken.
    #[error("{0}")]
    AlreadyExists(String),
    /// The process is in a state that does not allow the request.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The request (ids, options, spec) is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request cannot be served by this shim or this runsc.
    #[error("{0}")]
    Unimplemented(String),
    /// runsc failed; the message carries runsc's own error text.
    #[error("{op}: {source}")]
    Runsc {
        /// What the shim was doing.
        op: String,
        /// The failed runsc invocation (boxed: it carries argv and output).
        #[source]
        source: Box<runsc::Error>,
    },
    /// Stdio could not be set up or relayed.
    #[error("{op}: {source}")]
    Io {
        /// What the shim was doing.
        op: String,
        /// The underlying stdio failure.
        #[source]
        source: Box<shim_io::Error>,
    },
    /// A system call or file operation failed.
    #[error("{op}: {source}")]
    Os {
        /// What the shim was doing, naming the path or id.
        op: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The container's executable cannot be found or run in its rootfs,
    /// worded as runc words it (and, as runc's, reported as Unknown).
    #[error("{0}")]
    Executable(String),
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

/// Result alias for the shim.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a runsc failure with what the shim was doing.
    pub fn runsc(op: impl Into<String>, source: runsc::Error) -> Self {
        Error::Runsc {
            op: op.into(),
            source: Box::new(source),
        }
    }

    /// Wraps a stdio failure with what the shim was doing.
    pub fn io(op: impl Into<String>, source: shim_io::Error) -> Self {
        Error::Io {
            op: op.into(),
            source: Box::new(source),
        }
    }

    /// Wraps an OS error with what the shim was doing.
    pub fn os(op: impl Into<String>, source: std::io::Error) -> Self {
        Error::Os {
            op: op.into(),
            source,
        }
    }

    /// The ttrpc code containerd should see.
    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NOT_FOUND,
            Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Error::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Error::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            Error::Unimplemented(_) => Code::UNIMPLEMENTED,
            // runsc's words for a vanished container mean NotFound to
            // containerd; CRI retries other codes forever.
            Error::Runsc { source, .. } if source.is_not_found() => Code::NOT_FOUND,
            Error::Runsc { source, .. } if source.is_timeout() => Code::DEADLINE_EXCEEDED,
            // A call the container's state forbids (exec after it stopped).
            Error::Runsc { source, .. } if source.is_not_running() => Code::FAILED_PRECONDITION,
            // A process spec runsc cannot run, refused before it started.
            Error::Runsc { source, .. }
                if matches!(**source, runsc::Error::InvalidProcess { .. }) =>
            {
                Code::INVALID_ARGUMENT
            }
            Error::Runsc { source, .. } if matches!(**source, runsc::Error::Unsupported { .. }) => {
                Code::UNIMPLEMENTED
            }
            // A stdio URI the client got wrong.
            Error::Io { source, .. } if matches!(**source, shim_io::Error::Uri { .. }) => {
                Code::INVALID_ARGUMENT
            }
            Error::Runsc { .. }
            | Error::Io { .. }
            | Error::Os { .. }
            | Error::Executable(_)
            | Error::Other(_) => Code::UNKNOWN,
        }
    }
}

impl From<Error> for ttrpc::Error {
    fn from(e: Error) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), e.to_string()))
    }
}

/// Checks a container or exec id before any path is built from it.
pub fn validate_id(kind: &str, id: &str) -> Result<()> {
    const MAX: usize = 1024;
    let bad = id.is_empty()
        || id.len() > MAX
        || id == "."
        || id == ".."
        || id.contains('/')
        || id.contains('\0')
        || id.contains("..")
        || id.chars().any(char::is_control);
    if bad {
        return Err(Error::InvalidArgument(format!(
            "invalid {kind} id {id:?}: must be 1-{MAX} characters with no '/', '..', NUL or control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: Error) -> ttrpc::Status {
        match ttrpc::Error::from(e) {
            ttrpc::Error::RpcStatus(s) => s,
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn each_variant_maps_to_its_code() {
        let cases = [
            (Error::NotFound("c1 not found".into()), Code::NOT_FOUND),
            (Error::AlreadyExists("x".into()), Code::ALREADY_EXISTS),
            (
                Error::FailedPrecondition("x".into()),
                Code::FAILED_PRECONDITION,
            ),
            (Error::InvalidArgument("x".into()), Code::INVALID_ARGUMENT),
            (Error::Unimplemented("x".into()), Code::UNIMPLEMENTED),
            (Error::Other("x".into()), Code::UNKNOWN),
            (
                Error::os("open /x", std::io::Error::from_raw_os_error(2)),
                Code::UNKNOWN,
            ),
        ];
        for (e, code) in cases {
            let msg = e.to_string();
            let s = status(e);
            assert_eq!(s.code(), code, "{msg}");
            assert_eq!(s.message, msg);
        }
    }

    #[test]
    fn unsupported_runsc_subcommand_is_unimplemented() {
        let e = Error::runsc(
            "update c1",
            runsc::Error::Unsupported {
                command: "runsc".into(),
                subcommand: "update".into(),
            },
        );
        assert_eq!(status(e).code(), Code::UNIMPLEMENTED);
        let e = Error::runsc(
            "exec e1 in container c1",
            runsc::Error::InvalidProcess {
                id: "c1".into(),
                reason: "unknown capability \"CAP_NEW\"".into(),
            },
        );
        assert_eq!(status(e).code(), Code::INVALID_ARGUMENT);
    }

    #[test]
    fn runsc_failures_map_by_what_failed() {
        let cmd = |msg: &str| runsc::Error::Command {
            subcommand: "kill".into(),
            id: "c1".into(),
            argv: vec![],
            status: 128,
            stderr: String::new(),
            log_error: Some(msg.into()),
        };
        let cases = [
            (cmd("loading container: file does not exist"), Code::NOT_FOUND),
            (cmd("sandbox is not running"), Code::NOT_FOUND),
            (cmd("container is in state stopped"), Code::FAILED_PRECONDITION),
            (
                cmd("starting container: error finding executable \"x\" in PATH [/bin]: no such file or directory"),
                Code::UNKNOWN,
            ),
            (
                runsc::Error::Timeout {
                    subcommand: "create".into(),
                    id: "c1".into(),
                    after: std::time::Duration::from_secs(1),
                    log_error: None,
                },
                Code::DEADLINE_EXCEEDED,
            ),
        ];
        let control = |failure| runsc::Error::Control {
            method: "containerManager.Signal".into(),
            id: "c1".into(),
            failure,
        };
        use runsc::control::ControlFailure as F;
        let gone = || std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let direct = [
            (
                control(F::Refused("container \"c1\" not found".into())),
                Code::NOT_FOUND,
            ),
            (
                control(F::Refused(
                    "signaling process in container \"c1\" PID 5: container \"c1\" not found"
                        .into(),
                )),
                Code::NOT_FOUND,
            ),
            (
                control(F::Refused(
                    "in container \"c1\": executable \"x\" not found".into(),
                )),
                Code::UNKNOWN,
            ),
            (control(F::Gone(gone())), Code::NOT_FOUND),
            (
                control(F::Refused("container \"c1\" has stopped".into())),
                Code::FAILED_PRECONDITION,
            ),
            (
                control(F::Timeout(std::time::Duration::from_secs(1))),
                Code::DEADLINE_EXCEEDED,
            ),
            (
                control(F::Refused("permission denied".into())),
                Code::UNKNOWN,
            ),
            (control(F::Protocol("unknown method".into())), Code::UNKNOWN),
        ];
        for (e, code) in cases.into_iter().chain(direct) {
            let e = Error::runsc("op", e);
            assert_eq!(e.code(), code, "{e}");
        }
        let uri = Error::io(
            "set up stdio of c1",
            shim_io::Error::Uri {
                uri: "bogus://x".into(),
                reason: "unsupported scheme".into(),
            },
        );
        assert_eq!(uri.code(), Code::INVALID_ARGUMENT);
        let missing =
            Error::Executable("exec: \"nope\": executable file not found in $PATH".into());
        assert_eq!(missing.code(), Code::UNKNOWN);
    }

    #[test]
    fn ids_are_validated() {
        for ok in ["c1", "abc-DEF_0.9", "a.b"] {
            assert!(validate_id("container", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", "a\0b", "x..y", "a\nb"] {
            let e = validate_id("container", bad).unwrap_err();
            assert_eq!(e.code(), Code::INVALID_ARGUMENT, "{bad:?}");
        }
        assert!(validate_id("exec", &"x".repeat(2000)).is_err());
    }
}
