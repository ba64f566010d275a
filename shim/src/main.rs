//! containerd runs `containerd-shim-runsc-v1` for the `io.containerd.runsc.v1` runtime.

use containerd_shim_runsc::{bootstrap, cleanup, cli, RUNTIME_NAME};

fn main() {
    if let Some(code) = cli::answer_if_asked().or_else(cleanup::run_if_asked) {
        std::process::exit(code);
    }
    // One malloc arena: each thread would otherwise get its own, whose
    // touched pages stay after the thread is gone.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    // One thread: a shim mostly waits; this keeps its memory small. So
    // does letting idle blocking-pool threads go after a second rather
    // than tokio's ten (each keeps its stack's touched pages).
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{RUNTIME_NAME}: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(bootstrap::run());
    // As before exit: blocking work still running ends first.
    drop(rt);
    std::process::exit(code);
}
