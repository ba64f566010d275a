//! The pid files runsc writes (`--pid-file`, `--internal-pid-file`).

use std::path::Path;

use crate::error::{Error, Result};

/// Reads the pid runsc wrote to `path`: a positive number, else an error
/// saying what the file held. Read off the async runtime.
pub async fn read(path: &Path) -> Result<u32> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|source| Error::Io {
            op: "read pid file".into(),
            path: path.to_path_buf(),
            source,
        })?;
    parse(&text).ok_or_else(|| Error::Io {
        op: "read pid file".into(),
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("holds no pid: {:?}", text.trim()),
        ),
    })
}

/// Removes a pid file left by an earlier call (it is rewritten per call).
pub async fn remove(path: &Path) {
    let _ = tokio::fs::remove_file(path).await;
}

pub(crate) fn parse(text: &str) -> Option<u32> {
    text.trim().parse::<u32>().ok().filter(|p| *p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_a_positive_pid_counts() {
        assert_eq!(parse("42\n"), Some(42));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse(""), None);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("init.pid");
        assert!(read(&f).await.is_err(), "missing");
        std::fs::write(&f, "0").unwrap();
        let e = read(&f).await.unwrap_err().to_string();
        assert!(e.contains("holds no pid"), "{e}");
        std::fs::write(&f, "7").unwrap();
        assert_eq!(read(&f).await.unwrap(), 7);
    }
}
