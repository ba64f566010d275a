//! Looking at the host: processes by command line, mounts under a
//! directory, and what a command printed; running a command with a bound.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Writes an executable script at `path` (mode 0755). A child process
/// writes it, so this process never holds the file open for writing: a
/// test thread forking meanwhile would carry that descriptor until its
/// exec, and executing the script in that window fails with ETXTBSY.
pub fn write_script(path: &Path, text: &str) {
    use std::io::Write;
    let mut child = Command::new("sh")
        .args([
            "-c",
            "cat > \"$0\" && chmod 755 \"$0\"",
            &path.to_string_lossy(),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run sh to write a script");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("write the script");
    }
    match child.wait() {
        Ok(st) => assert!(st.success(), "writing {} failed: {st}", path.display()),
        // A test's own reaper took it: the file says whether it worked.
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
            let written = fs::read(path).unwrap_or_default();
            assert_eq!(
                written,
                text.as_bytes(),
                "writing {} failed",
                path.display()
            );
        }
        Err(e) => panic!("wait for sh writing {}: {e}", path.display()),
    }
}

/// Runs `cmd` like `Command::output`, but kills it once `limit` has
/// passed: a hung shim then fails the test that met it, with what the
/// command printed so far and a note on stderr, instead of hanging the
/// whole suite.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::io::Result<Output> {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        // A message or a hang-up means the command ended in time.
        let expired = matches!(
            finished.recv_timeout(limit),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        if expired {
            // Not yet reaped (the waiter has not returned): the pid is its.
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        expired
    });
    let out = child.wait_with_output();
    let _ = done.send(());
    let expired = watchdog.join().unwrap_or(false);
    let mut out = out?;
    if expired {
        let note = format!("\n[killed after {limit:?}: the command did not finish]\n");
        out.stderr.extend_from_slice(note.as_bytes());
    }
    Ok(out)
}

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
