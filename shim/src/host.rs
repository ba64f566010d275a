//! Facts about host processes, read from `/proc` (the shim's PID
//! namespace is the host's).

/// Whether `pid` names a live (not zombie) process.
pub fn process_alive(pid: u32) -> bool {
    pid != 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

/// The host processes with `arg` among their arguments.
pub fn pids_with_arg(arg: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
        })
        .collect()
}

/// Whether a process with this pid runs on the host.
pub fn has_pid(pid: i32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Gives the shim server an OOM score one above its parent's, so the kernel
/// picks the shim before containerd. Lowering a score needs CAP_SYS_RESOURCE,
/// which hosts often lack: failures are warnings.
pub fn adjust_oom_score(pid: u32) {
    let parent = std::os::unix::process::parent_id();
    let score = std::fs::read_to_string(format!("/proc/{parent}/oom_score_adj"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let target = (score + 1).min(1000);
    if let Err(e) = std::fs::write(format!("/proc/{pid}/oom_score_adj"), target.to_string()) {
        log::warn!("cannot set oom_score_adj of {pid} to {target}: {e}");
    }
}
