//! containerd runs `containerd-shim-runsc-v1` for the `io.containerd.runsc.v1` runtime.

use containerd_shim_runsc::{bootstrap::RunscShim, RUNTIME_NAME};

fn main() {
    // One thread: a shim mostly waits; this keeps its memory small.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{RUNTIME_NAME}: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let config = containerd_shim::Config {
        // Our logger tees to the options' log_path too.
        no_setup_logger: true,
        ..Default::default()
    };
    rt.block_on(containerd_shim::asynchronous::run::<RunscShim>(
        RUNTIME_NAME,
        Some(config),
    ));
}
