//! Pods under gVisor that behave like runc pods.

use std::time::{Duration, Instant};

use integration::cri::{http_get, Cri, CtrSpec, PodSpec};

fn serve(port: &str) -> String {
    integration::cri::serve_http_script(port)
}

#[test]
fn the_pod_ip_answers_from_the_host() {
    let mut cri = Cri::start();
    let pod = cri.run_pod(&PodSpec {
        name: "web".into(),
        ..Default::default()
    });
    cri.run_container(&pod, &CtrSpec::sh("httpd", &serve("8080")), false);
    let ip = cri.pod_ip(&pod.0);
    assert!(
        ip.starts_with(&cri.net.prefix),
        "pod ip {ip:?} not on {}",
        cri.net.prefix
    );
    let body = http_get(&format!("{ip}:8080"));
    assert!(body.contains("hello-from-gvisor"), "{body}");
    cri.stop_and_check();
}

#[test]
fn containers_of_a_pod_share_loopback_dev_shm_and_the_pid_namespace() {
    let mut cri = Cri::start();
    let pod = cri.run_pod(&PodSpec {
        name: "shared".into(),
        share_pid: true,
        ..Default::default()
    });
    let script = "echo from-a > /dev/shm/a && mkdir -p /www && echo loopback-ok > /www/index.html && exec httpd -f -p 127.0.0.1:9090 -h /www";
    cri.run_container(&pod, &CtrSpec::sh("a", script), true);
    let b = cri.run_container(&pod, &CtrSpec::sh("b", "exec sleep 1000"), true);
    let deadline = Instant::now() + Duration::from_secs(15);
    let got = loop {
        let r = cri
            .exec_sync(&b, &["sh", "-c", "wget -qO- http://127.0.0.1:9090/"], 10)
            .unwrap();
        let out = String::from_utf8_lossy(&r.stdout).into_owned();
        if out.contains("loopback-ok") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(got.contains("loopback-ok"), "{got}");
    assert_eq!(cri.exec_ok(&b, &["cat", "/dev/shm/a"]), "from-a\n");
    // The pause process is PID 1 for every member.
    let init = cri.exec_ok(&b, &["sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"]);
    assert_eq!(init.trim(), "/bin/sleep 2147483647");
    cri.stop_and_check();
}

#[test]
fn a_host_network_pod_listens_on_the_host() {
    let mut cri = Cri::start();
    let pod = cri.run_pod(&PodSpec {
        name: "hostnet".into(),
        host_network: true,
        ..Default::default()
    });
    let port = 21_000 + std::process::id() % 20_000;
    cri.run_container(
        &pod,
        &CtrSpec::sh("httpd", &serve(&format!("127.0.0.1:{port}"))),
        false,
    );
    let body = http_get(&format!("127.0.0.1:{port}"));
    assert!(body.contains("hello-from-gvisor"), "{body}");
    cri.stop_and_check();
}

#[test]
fn a_host_port_reaches_the_pod() {
    let mut cri = Cri::start();
    let host_port = 22_000 + (std::process::id() % 20_000) as i32;
    let pod = cri.run_pod(&PodSpec {
        name: "hostport".into(),
        port_mappings: vec![(8080, host_port)],
        ..Default::default()
    });
    cri.run_container(&pod, &CtrSpec::sh("httpd", &serve("8080")), false);
    // portmap DNATs locally generated traffic to a local address.
    let gateway = format!("{}.1", cri.net.prefix);
    let body = http_get(&format!("{gateway}:{host_port}"));
    assert!(body.contains("hello-from-gvisor"), "{body}");
    cri.stop_and_check();
}

#[test]
fn a_privileged_container_runs() {
    let mut cri = Cri::start();
    let pod = cri.run_pod(&PodSpec {
        name: "priv".into(),
        privileged: true,
        ..Default::default()
    });
    let spec = CtrSpec {
        privileged: true,
        ..CtrSpec::sh("p", "exec sleep 1000")
    };
    let id = cri.run_container(&pod, &spec, false);
    let caps = cri.exec_ok(&id, &["grep", "CapEff", "/proc/self/status"]);
    assert!(caps.contains("CapEff"), "{caps}");
    cri.stop_and_check();
}

#[test]
fn host_path_volumes_are_shared_by_the_pods_containers() {
    let mut cri = Cri::start();
    let vol = cri.logs.path().join("volume");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("from-host"), "host-data\n").unwrap();
    let pod = cri.run_pod(&PodSpec {
        name: "vols".into(),
        ..Default::default()
    });
    let mount = vec![(vol.to_string_lossy().into_owned(), "/data".to_string())];
    let a = cri.run_container(
        &pod,
        &CtrSpec {
            mounts: mount.clone(),
            ..CtrSpec::sh("a", "exec sleep 1000")
        },
        false,
    );
    let b = cri.run_container(
        &pod,
        &CtrSpec {
            mounts: mount,
            ..CtrSpec::sh("b", "exec sleep 1000")
        },
        false,
    );
    assert_eq!(cri.exec_ok(&a, &["cat", "/data/from-host"]), "host-data\n");
    cri.exec_ok(&a, &["sh", "-c", "echo from-a > /data/a"]);
    assert_eq!(cri.exec_ok(&b, &["cat", "/data/a"]), "from-a\n");
    assert_eq!(std::fs::read_to_string(vol.join("a")).unwrap(), "from-a\n");
    cri.stop_and_check();
}

#[test]
fn an_empty_dir_with_a_mount_hint_is_one_tmpfs_for_the_pod() {
    // The kubelet's emptyDir for this pod (made and removed here).
    let uid = Cri::pod_uid("emptydir");
    let kubelet = std::path::Path::new("/var/lib/kubelet");
    let made_kubelet = !kubelet.exists();
    let pod_dir = kubelet.join("pods").join(&uid);
    let vol = pod_dir.join("volumes/kubernetes.io~empty-dir/cache");
    std::fs::create_dir_all(&vol).unwrap();
    let mut cri = Cri::start();
    let hint = |k: &str, v: &str| (format!("dev.gvisor.spec.mount.cache.{k}"), v.to_string());
    let pod = cri.run_pod(&PodSpec {
        name: "emptydir".into(),
        annotations: vec![
            hint("type", "tmpfs"),
            hint("share", "pod"),
            hint("options", "rw"),
        ],
        ..Default::default()
    });
    let mounts = vec![(vol.to_string_lossy().into_owned(), "/cache".to_string())];
    let spec = |name: &str| CtrSpec {
        mounts: mounts.clone(),
        ..CtrSpec::sh(name, "exec sleep 1000")
    };
    let a = cri.run_container(&pod, &spec("a"), false);
    let b = cri.run_container(&pod, &spec("b"), false);
    cri.exec_ok(&a, &["sh", "-c", "echo from-a > /cache/a"]);
    assert_eq!(cri.exec_ok(&b, &["cat", "/cache/a"]), "from-a\n");
    // One tmpfs inside the sandbox: nothing reached the host directory.
    let on_host = std::fs::read_dir(&vol).unwrap().count();
    cri.stop_and_check();
    let _ = std::fs::remove_dir_all(&pod_dir);
    if made_kubelet {
        let _ = std::fs::remove_dir_all(kubelet);
    }
    assert_eq!(on_host, 0, "the emptyDir was written through to the host");
}

#[test]
fn a_pod_survives_a_containerd_restart() {
    let mut cri = Cri::start();
    let pod = cri.run_pod(&PodSpec {
        name: "restart".into(),
        ..Default::default()
    });
    let id = cri.run_container(&pod, &CtrSpec::sh("c", "exec sleep 1000"), false);
    cri.restart_containerd();
    assert_eq!(
        cri.exec_ok(&id, &["echo", "after-restart"]),
        "after-restart\n"
    );
    // Still the shim's: StopContainer's TERM ends it and its exit comes back.
    cri.stop_container(&id, 10);
    assert_eq!(cri.wait_exited(&id).exit_code, 128 + 15);
    cri.stop_and_check();
}
