//! Reaching a port in a sandbox's network stack from the host
//! ([`Runsc::connect_port`]).

use std::os::{fd::AsFd, unix::net::UnixStream};

use crate::{error::Error, global::Runsc, Result};

impl Runsc {
    /// A stream connected to `port` on 127.0.0.1 in container `id`'s
    /// network stack, through the sandbox (runsc 0.0~20240729's
    /// `PortForward`: the sandbox copies between the stream and its own
    /// connection). None where this runsc or this client cannot: the
    /// caller reaches the pod another way.
    pub async fn connect_port(&self, id: &str, port: u16) -> Result<Option<UnixStream>> {
        let Some(sb) = self.sandbox(id).await else {
            return Ok(None);
        };
        let (ours, theirs) = UnixStream::pair().map_err(|source| Error::Io {
            op: "make a stream pair to forward a port of".into(),
            path: id.into(),
            source,
        })?;
        match sb.port_forward(port, theirs.as_fd()).await {
            Ok(()) => Ok(Some(ours)),
            Err(e) if self.fall_back_on(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
