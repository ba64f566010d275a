//! Looking at the host: processes by command line, mounts under a
//! directory, and what a command printed.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Output,
};

/// Pids whose command line (NUL-separated args joined by spaces) satisfies `f`.
pub fn pids_matching(f: impl Fn(&str) -> bool) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if f(&cmd) {
            out.push(pid);
        }
    }
    out
}

/// The first `bin` on the test's `PATH`.
pub fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.is_file())
    })
}

/// Mount points at or below `dir`.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// Output helpers for assertions.
pub trait OutputExt {
    /// stdout as text.
    fn out(&self) -> String;
    /// stderr as text.
    fn err(&self) -> String;
    /// Exit code (-1 if killed by a signal).
    fn code(&self) -> i32;
}

impl OutputExt for Output {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}
