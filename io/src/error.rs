//! The crate's single error type.

use std::io;

/// Errors returned by this crate. Every message names the operation and,
/// where there is one, the path it was applied to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stdio URI could not be parsed or names an unsupported scheme.
    #[error("invalid stdio uri {uri:?}: {reason}")]
    Uri {
        /// The URI as given by the client.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An operating-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, e.g. `open stdout fifo`.
        op: String,
        /// The path (or other object) it was applied to.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A bounded wait ran out.
    #[error("{op} {path}: timed out after {secs} s")]
    Timeout {
        /// The operation that was waited for.
        op: String,
        /// The path (or other object) involved.
        path: String,
        /// The bound, in seconds.
        secs: u64,
    },
    /// The combination of options is not supported.
    #[error("unsupported stdio configuration: {0}")]
    Unsupported(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an [`Error::Io`] from anything convertible into `io::Error`
    /// (including `nix::Errno`).
    pub(crate) fn io(
        op: impl Into<String>,
        path: impl Into<String>,
        e: impl Into<io::Error>,
    ) -> Error {
        Error::Io {
            op: op.into(),
            path: path.into(),
            source: e.into(),
        }
    }
}
