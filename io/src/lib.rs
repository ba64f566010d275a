//! Container stdio for a containerd runtime-v2 shim that runs containers in
//! gVisor's `runsc`.
//!
//! One [`ProcessIo`] per init or exec process connects the runtime's stdio
//! to what the client asked for:
//!
//! * nothing (all empty, no terminal): null IO, the runtime gets `/dev/null`;
//! * FIFOs created by the client (plain path or `fifo://`);
//! * `file:///abs/path`: output appended to that file (created if missing);
//! * `binary:///abs/path?k=v`: containerd's logging-binary protocol;
//! * a terminal: a console socket runsc sends the pty master to.
//!
//! FIFOs are relayed in one of two [`RelayMode`]s:
//!
//! * **Direct**: runsc gets the FIFOs themselves; the shim keeps its own
//!   references (an `O_RDWR` one on each output, an `O_WRONLY` one on stdin,
//!   dropped on CloseIO) and drains by polling `FIONREAD`.
//! * **Copy**: runsc gets fresh pipes and the shim splices between pipes and
//!   FIFOs; used when runsc helpers that outlive the process would inherit
//!   the runtime's descriptors. Draining is bounded by a copy-after-exit
//!   timeout so a grandchild holding a pipe cannot hang the shim.
//!
//! No operation blocks a thread: every FIFO open is non-blocking and all
//! waiting happens on tokio's reactor, so a client that never opens its end
//! wedges nothing. Children (the logging binary) are spawned only through
//! the caller's [`ProcessMonitor`](process_monitor::ProcessMonitor) (crate
//! `process-monitor`; this crate does not depend on the `runsc` client).
//!
//! Modules: [`error`] (the error type), [`uri`] (stdio URI parsing),
//! [`fifo`] (non-blocking opens, `FIONREAD`), [`direct`] (Direct mode),
//! [`copy`] (splice/buffer relays, Copy mode), [`binary`] (logging
//! binary), [`console`] (console socket, `SCM_RIGHTS`, resize) and
//! [`process_io`] ([`ProcessIo`]).
#![deny(missing_docs)]

pub mod binary;
pub mod console;
pub mod copy;
pub mod direct;
pub mod error;
pub mod fifo;
pub mod process_io;
pub mod uri;

pub use error::{Error, Result};
pub use process_io::{IoConfig, ProcessIo, RelayMode, RuntimeStdio};
