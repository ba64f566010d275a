//! Direct mode: the runtime gets the client's FIFOs themselves, no copy.
//!
//! Output: the shim holds an `O_RDWR` reference (so a consumer that goes
//! away and comes back never makes the container see `EPIPE`) and gives the
//! runtime a separate blocking `O_WRONLY` descriptor. Input: the runtime gets
//! a blocking `O_RDONLY` descriptor and the shim holds an `O_WRONLY`
//! reference that is dropped on CloseIO, so the container sees EOF only
//! after CloseIO and after the client closed its side.
//!
//! [`Sink`] is also the drain/close handle for the other output kinds.

use std::{os::fd::OwnedFd, path::Path};

use tokio::time::Instant;

use crate::{
    copy::Relay,
    error::Result,
    fifo::{open_output, wait_empty},
};

/// The shim's handle on one output destination.
#[derive(Debug)]
pub enum Sink {
    /// Direct mode: the shim's `O_RDWR` reference on the client's FIFO.
    Fifo {
        /// `stdout`/`stderr`, for logs.
        name: String,
        /// The reference.
        fd: OwnedFd,
    },
    /// Copy or terminal mode: a relay into the client's FIFO.
    Relay(Relay),
}

impl Sink {
    /// Waits (until `deadline`) for everything to reach the consumer, then
    /// releases the shim's references so the consumer sees EOF.
    pub async fn finish(self, deadline: Instant) {
        match self {
            Sink::Fifo { name, fd } => {
                if !wait_empty(&fd, deadline).await {
                    log::warn!("{name}: consumer did not read everything before the drain timeout");
                }
            }
            Sink::Relay(mut r) => r.finish(deadline).await,
        }
    }

    /// Releases everything now.
    pub async fn stop(self) {
        if let Sink::Relay(mut r) = self {
            r.stop().await;
        }
    }
}

/// Opens an output FIFO for Direct mode: `(runtime end, sink)`.
pub fn output(path: &Path, name: &str) -> Result<(OwnedFd, Sink)> {
    let f = open_output(path, name, true)?;
    let runtime = f.runtime.ok_or_else(|| {
        crate::Error::Unsupported(format!("no runtime descriptor for {}", path.display()))
    })?;
    Ok((
        runtime,
        Sink::Fifo {
            name: name.to_string(),
            fd: f.shim,
        },
    ))
}
