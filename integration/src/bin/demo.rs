//! `make demo`: a private containerd with our shim registered, a busybox
//! image built from the host's static busybox, and one container run under
//! gVisor through `io.containerd.runsc.v1`.

use test_support::{containerd::Containerd, image::IMAGE_REF};

fn main() {
    // Built with panic = "abort": a panic must still take down what it made.
    test_support::abort::clean_up_on_panic();
    let ctrd = Containerd::start();
    println!("private containerd at {}", ctrd.socket().display());
    let script = "echo Hello from busybox inside gVisor; uname -a; dmesg | head -3";
    let out = ctrd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runsc.v1",
        IMAGE_REF,
        "demo",
        "sh",
        "-c",
        script,
    ]);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let ok = out.status.success();
    if !ok {
        eprintln!(
            "ctr run failed ({}); containerd log:\n{}",
            out.status,
            ctrd.log_tail(40)
        );
    }
    ctrd.stop_and_check();
    std::process::exit(if ok { 0 } else { 1 });
}
