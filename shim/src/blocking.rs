//! The one way the shim runs blocking work (file systems, cgroup files,
//! `/proc`, D-Bus) from its single runtime thread.

use crate::error::{Error, Result};

/// Runs `work` on tokio's blocking pool and waits for it.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(Error::Other(format!("blocking task failed: {e}"))))
}
