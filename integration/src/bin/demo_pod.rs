//! `make demo-pod`: a Kubernetes-style pod under gVisor, as the kubelet
//! would run it: containerd's CRI plugin with handler `runsc` (our shim), a
//! private CNI bridge, a pause image and busybox built locally; the pod
//! serves HTTP on its pod IP, fetched from the host.

use integration::cri::{http_get, serve_http_script, Cri, CtrSpec, PodSpec};

fn main() {
    // Built with panic = "abort": a panic must still take down what it made.
    test_support::abort::clean_up_on_panic();
    let mut cri = Cri::start();
    println!(
        "private containerd with the CRI plugin at {}",
        cri.ctrd().socket().display()
    );
    let pod = cri.run_pod(&PodSpec {
        name: "web".into(),
        ..Default::default()
    });
    cri.run_container(
        &pod,
        &CtrSpec::sh("httpd", &serve_http_script("8080")),
        false,
    );
    let ip = cri.pod_ip(&pod.0);
    println!("pod {} runs under gVisor with pod IP {ip}", &pod.0[..12]);
    let reply = http_get(&format!("{ip}:8080"));
    println!("GET http://{ip}:8080/ from the host:\n{reply}");
    let first = cri.container_ids().into_iter().next().expect("a container");
    let kernel = cri.exec_ok(&first, &["sh", "-c", "dmesg | head -2"]);
    println!("the pod's kernel is gVisor's:\n{kernel}");
    cri.stop_and_check();
    println!("pod removed; nothing left behind");
}
