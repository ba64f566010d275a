//! `make bench`'s CRI pod scenario: a pod of a sandbox and 3 members, run
//! as the kubelet runs it (RunPodSandbox, then CreateContainer and
//! StartContainer for each member until all are Running) and torn down
//! (StopPodSandbox, RemovePodSandbox), through one containerd's CRI plugin
//! with two handlers: our shim on task API v3 (the default on containerd
//! 2.3+: the members come over the sandbox's connection) and our shim kept
//! on v2 (`task_api = "v2"`: a `shim start` per container, as before 2.3).
//! Both run runsc with `--network=none`, the pod's CNI namespace unused.
//! containerd's Go runc shim driving runsc is not a third handler: under
//! it the first member's StartContainer never returns (containerd 1.6 and
//! 2.3, runsc 0.0~20240729, on this host), so `make bench`'s `ctr`
//! scenarios are where it is compared. Medians in ms; `containerd` is the
//! first on `PATH`.
//!
//! Usage: bench_pods [--iterations N] [--shim-dir D] [--out F]

use std::{fs, time::Instant};

use integration::{
    bench::{settle, settle_max, Sample, Stats},
    cri::{Cri, CriExtras, CtrSpec, PodSpec, RecordingShim},
};
use k8s_cri::v1::ContainerState;
use serde_json::json;
use test_support::{configured::containerd_version, containerd::which};

/// The handlers, in report order.
const HANDLERS: [(&str, &str); 2] = [
    ("runsc", "ours, task API v3"),
    ("runsc-v2", "ours, task API v2"),
];
const MEMBERS: usize = 3;

fn main() {
    // Built with panic = "abort": a panic must still take down what it made.
    test_support::abort::clean_up_on_panic();
    let mut iterations = 10;
    let mut out = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--iterations" => iterations = v.parse().unwrap_or(10).max(1),
            "--shim-dir" => std::env::set_var("RUNSC_SHIM_DIR", v),
            "--out" => out = Some(v),
            other => eprintln!("bench_pods: ignoring unknown argument {other}"),
        }
    }
    let containerd = which("containerd").expect("containerd on PATH");
    let version = containerd_version(containerd.parent().expect("containerd's directory"));
    eprintln!("bench_pods: containerd {version}, {iterations} pods per handler");

    let work = tempfile::Builder::new()
        .prefix("bench-pods-")
        .tempdir()
        .expect("tempdir");
    let v2_toml = work.path().join("runsc-v2.toml");
    fs::write(
        &v2_toml,
        format!(
            "root = \"{}\"\ntask_api = \"v2\"\n[runsc_config]\nnetwork = \"none\"\n",
            work.path().join("runsc-root").display()
        ),
    )
    .expect("write runsc-v2.toml");
    let table =
        |h: &str| format!(r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{h}]"#);
    let opts = |h: &str| {
        format!(r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{h}.options]"#)
    };
    let extra_config = format!(
        "{}\n  runtime_type = \"io.containerd.runsc.v1\"\n{}\n  TypeUrl = \"io.containerd.runsc.v1.options\"\n  ConfigPath = \"{}\"\n",
        table("runsc-v2"),
        opts("runsc-v2"),
        v2_toml.display(),
    );
    let shim = RecordingShim::new();
    let mut cri = Cri::start_with(CriExtras {
        path_first: vec![shim.dir()],
        extra_config,
        runsc_toml: "[runsc_config]\nnetwork = \"none\"\n".into(),
    });

    let mut up: [Vec<Sample>; 2] = Default::default();
    let mut down: [Vec<Sample>; 2] = Default::default();
    let mut starts = [0usize; 2];
    let settle_max = settle_max(iterations);
    let mut settle_s = settle(settle_max);
    // One unmeasured round first: images, snapshots and caches warm up.
    for i in 0..=iterations {
        // Alternate which handler goes first.
        for k in [i % 2, (i + 1) % 2] {
            let before = shim.count("start");
            let (u, d) = pod_cycle(&mut cri, HANDLERS[k].0, &format!("p{i}-{k}"));
            if i > 0 {
                up[k].push(u);
                down[k].push(d);
                starts[k] += shim.count("start") - before;
            }
        }
        if i == 0 {
            settle_s += settle(settle_max);
        }
    }
    let up = up.map(|s| Stats::of(&s));
    let down = down.map(|s| Stats::of(&s));

    println!("\n### CRI pod of a sandbox + {MEMBERS} members, containerd {version} (ms, median of {iterations}; {settle_s:.0} s spent waiting for idle CPUs)\n");
    println!("| handler | RunPodSandbox → all Running | teardown | shim starts per pod | failed |");
    println!("|---|---|---|---|---|");
    for (k, (_, name)) in HANDLERS.iter().enumerate() {
        println!(
            "| {name} | {:.1} ({:.1}–{:.1}) | {:.1} ({:.1}–{:.1}) | {:.1} | {} |",
            up[k].median,
            up[k].min,
            up[k].max,
            down[k].median,
            down[k].min,
            down[k].max,
            starts[k] as f64 / iterations as f64,
            up[k].failures + down[k].failures
        );
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "\nv3 / v2: pod up {:.2}×, teardown {:.2}×",
        ratio(up[0].median, up[1].median),
        ratio(down[0].median, down[1].median),
    );
    if let Some(out) = out {
        let per = |k: usize| {
            json!({
                "handler": HANDLERS[k].0,
                "up_ms": up[k].median, "up_min": up[k].min, "up_max": up[k].max,
                "down_ms": down[k].median, "down_min": down[k].min, "down_max": down[k].max,
                "failed": up[k].failures + down[k].failures,
                "shim_starts": starts[k],
            })
        };
        let report = json!({
            "containerd": version,
            "iterations": iterations,
            "members": MEMBERS,
            "results": [per(0), per(1)],
        });
        fs::write(&out, report.to_string()).expect("write results");
        eprintln!("results written to {out}");
    }
    cri.stop_and_check();
}

/// One pod through `handler`: (up, teardown).
fn pod_cycle(cri: &mut Cri, handler: &str, name: &str) -> (Sample, Sample) {
    let t0 = Instant::now();
    let pod = cri.run_pod(&PodSpec {
        name: name.into(),
        handler: handler.into(),
        ..Default::default()
    });
    let ids: Vec<String> = (0..MEMBERS)
        .map(|m| {
            cri.run_container(
                &pod,
                &CtrSpec::sh(&format!("m{m}"), "exec sleep 100000"),
                false,
            )
        })
        .collect();
    let running = ids
        .iter()
        .all(|id| cri.status(id).state == ContainerState::ContainerRunning as i32);
    let up = Sample {
        ms: t0.elapsed().as_secs_f64() * 1000.0,
        ok: running,
    };
    let t1 = Instant::now();
    let removed = cri.remove_pod(&pod.0);
    if let Err(e) = &removed {
        eprintln!("bench_pods: removing pod {name} ({handler}): {e}");
    }
    let down = Sample {
        ms: t1.elapsed().as_secs_f64() * 1000.0,
        ok: removed.is_ok(),
    };
    (up, down)
}
