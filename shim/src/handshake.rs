//! containerd's `shim start` handshake: what containerd writes to `start`'s
//! standard input, and the reply it reads from standard output.
//!
//! - containerd 1.6 to 2.2 write the runtime options as a bare
//!   `google.protobuf.Any` (or nothing), and read the socket address as
//!   text: task API v2.
//! - containerd 2.3 and later write a `BootstrapParams` (the options among
//!   its extensions, its version, the log level, the socket directory) and
//!   read a `BootstrapResult` before anything else. They get task API v3,
//!   with which containerd reuses a pod's connection for the pod's other
//!   containers instead of running `start` and `delete` for each.
//!
//! Both inputs parse as an `Any` (fields 1 and 2 are strings in both), so
//! they are told apart by what only `BootstrapParams` carries: fields 3 to
//! 9 (containerd always sends its version and addresses there).

use std::path::PathBuf;

use log::LevelFilter;
use protobuf::{well_known_types::any::Any, Message};

use crate::{
    options::{Options, TaskApiChoice},
    Error, Result,
};

#[allow(clippy::unwrap_used, missing_docs)]
mod proto {
    include!(concat!(env!("OUT_DIR"), "/proto/mod.rs"));
}

pub use proto::bootstrap::{BootstrapParams, BootstrapResult, Extension};

/// The task API a server speaks to its containerd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskApi {
    /// `containerd.task.v2.Task`, all that containerd up to 1.7 accepts.
    V2,
    /// `containerd.task.v3.Task` (the same messages): containerd 2.x.
    V3,
}

impl TaskApi {
    /// The version number containerd's start reply carries.
    pub fn version(self) -> i32 {
        match self {
            TaskApi::V2 => 2,
            TaskApi::V3 => 3,
        }
    }
}

/// Which protocol the caller spoke, with what only the new one tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// containerd up to 2.2: options as a bare `Any`, the address as text.
    Legacy,
    /// containerd 2.3 and later: `BootstrapParams` in, `BootstrapResult` out.
    Bootstrap {
        /// containerd's own version, for the log.
        containerd_version: String,
        /// The level containerd asks its shims to log at.
        log_level: LevelFilter,
        /// Where to put the shim's socket, when containerd says.
        socket_dir: Option<PathBuf>,
    },
}

/// What `start` learnt from its standard input.
#[derive(Debug, Clone, PartialEq)]
pub struct Handshake {
    /// The protocol containerd spoke.
    pub caller: Caller,
    /// The runtime options containerd passed, if any.
    pub options: Option<Any>,
}

impl Handshake {
    /// Reads `start`'s standard input, as any supported containerd writes it.
    pub fn parse(raw: &[u8]) -> Result<Handshake> {
        if raw.is_empty() {
            return Ok(Handshake {
                caller: Caller::Legacy,
                options: None,
            });
        }
        let bad = |what: &str, e: protobuf::Error| {
            Error::InvalidArgument(format!("decode {what} from containerd on stdin: {e}"))
        };
        let any = Any::parse_from_bytes(raw).map_err(|e| bad("runtime options", e))?;
        if any.special_fields.unknown_fields().iter().next().is_none() {
            return Ok(Handshake {
                caller: Caller::Legacy,
                options: Some(any),
            });
        }
        let params =
            BootstrapParams::parse_from_bytes(raw).map_err(|e| bad("BootstrapParams", e))?;
        let options = params
            .extensions
            .iter()
            .filter_map(|e| e.value.as_ref())
            .find(|a| Options::is_runtime_options(&a.type_url))
            .cloned();
        Ok(Handshake {
            caller: Caller::Bootstrap {
                containerd_version: params.containerd_version,
                log_level: level_filter(params.log_level),
                socket_dir: params
                    .socket_dir
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from),
            },
            options,
        })
    }

    /// The task API to offer this containerd as the options allow: v3 only
    /// to one that says it takes it (containerd 1.7 refuses any version
    /// above 2, and 2.0 to 2.2 cannot be told from 1.7 by what they send).
    pub fn task_api(&self, choice: TaskApiChoice) -> TaskApi {
        match (&self.caller, choice) {
            (Caller::Bootstrap { .. }, TaskApiChoice::Auto) => TaskApi::V3,
            _ => TaskApi::V2,
        }
    }

    /// The reply for a server listening at `address` that offers `api`, in
    /// the form this caller reads.
    pub fn reply(&self, address: &str, api: TaskApi) -> Result<Vec<u8>> {
        match self.caller {
            Caller::Legacy => Ok(address.as_bytes().to_vec()),
            Caller::Bootstrap { .. } => BootstrapResult {
                version: api.version(),
                address: address.to_string(),
                protocol: "ttrpc".to_string(),
                ..Default::default()
            }
            .write_to_bytes()
            .map_err(|e| Error::Other(format!("encode BootstrapResult for {address}: {e}"))),
        }
    }

    /// The socket of the server for the pod `key` of `namespace`: named as
    /// containerd's own shims name theirs (a hash of containerd's address,
    /// the namespace and the pod), in the directory containerd chose, else
    /// containerd's default one.
    pub fn socket_address(&self, containerd: &str, namespace: &str, key: &str) -> String {
        let default = containerd_shim::socket_address(containerd, namespace, key);
        let dir = match &self.caller {
            Caller::Bootstrap {
                socket_dir: Some(d),
                ..
            } => d,
            _ => return default,
        };
        match default.rsplit_once('/') {
            Some((_, hash)) => format!("unix://{}", dir.join(hash).display()),
            None => default,
        }
    }
}

/// containerd's open log-level enum (logrus levels: 0 is info, more
/// verbose below, more severe above) as the nearest level of ours.
pub fn level_filter(level: i32) -> LevelFilter {
    match level {
        i32::MIN..=-8 => LevelFilter::Trace,
        -7..=-4 => LevelFilter::Debug,
        -3..=3 => LevelFilter::Info,
        4..=7 => LevelFilter::Warn,
        _ => LevelFilter::Error,
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
