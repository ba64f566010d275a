//! `make soak` (and `make soak-smoke` in `make test`): containerd-stress
//! through each handler and mode in turn (see `integration::soak`), then
//! through our shim with faults landing (exec mode, which runs container
//! and exec workers together), a markdown report on stdout, JSON in
//! `--out`. Fails if our shim had an error (faults aside), lost or
//! repeated an exit, hung, grew after warm-up or left anything; the other
//! handlers are measured, not judged.
//!
//! `--seconds N` per load (default 1800), `--sample-every N` (300),
//! `--workers N` (4), `--handlers ours,go,runc`, `--modes plain,exec`,
//! `--faults-every N` (60; 0: no faults load), `--fault-seconds N` (the
//! faults load's length, default `--seconds`), `--fault-kinds
//! sandbox,gofer,shim,restart,stall,pause,hang,log` (default all, in turn),
//! `--out FILE`, `--keep DIR` (each load's events, and containerd's log of
//! a load with a problem; default `soak-events` beside `--out`, or in the
//! working directory without it).

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use integration::soak::{self, faults::Fault, report, Handler, Load, Mode};
use test_support::{image::write_image_layout, registry::Registry};

fn main() {
    // Built with panic = "abort": a panic must still take down what it made.
    test_support::abort::clean_up_on_panic();
    let mut seconds = 1800;
    let mut sample_every = 300;
    let mut workers = 4;
    let mut handlers = vec![Handler::Ours, Handler::GoShimRunsc, Handler::Runc];
    let mut modes = vec![Mode::Plain, Mode::Exec];
    let mut out: Option<String> = None;
    let mut keep = None;
    let mut faults_every = 60;
    let mut fault_seconds = None;
    let mut fault_kinds = Fault::ALL.to_vec();
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--seconds" => seconds = v.parse().unwrap_or(seconds),
            "--sample-every" => sample_every = v.parse().unwrap_or(sample_every),
            "--workers" => workers = v.parse().unwrap_or(workers),
            "--handlers" => handlers = v.split(',').filter_map(Handler::parse).collect(),
            "--modes" => modes = v.split(',').filter_map(Mode::parse).collect(),
            "--out" => out = Some(v),
            "--keep" => keep = Some(PathBuf::from(v)),
            "--faults-every" => faults_every = v.parse().unwrap_or(faults_every),
            "--fault-seconds" => fault_seconds = v.parse().ok(),
            "--fault-kinds" => fault_kinds = v.split(',').filter_map(Fault::parse).collect(),
            other => eprintln!("soak: ignoring unknown argument {other}"),
        }
    }

    let keep = keep.unwrap_or_else(|| {
        let beside = out.as_deref().and_then(|o| Path::new(o).parent());
        beside.unwrap_or(Path::new("")).join("soak-events")
    });
    let work = tempfile::Builder::new()
        .prefix("soak-")
        .tempdir()
        .expect("tempdir");
    let layout = write_image_layout(work.path(), "soak", &["/bin/sh"]).expect("image layout");
    let registry = Registry::serve(layout, "runsc-shim/busybox").expect("registry");

    let mut loads = Vec::new();
    for &mode in &modes {
        for &handler in &handlers {
            loads.push(Load {
                handler,
                mode,
                duration: Duration::from_secs(seconds),
                sample_every: Duration::from_secs(sample_every),
                workers,
                faults: None,
                fault_kinds: Vec::new(),
            });
        }
    }
    if faults_every > 0 {
        loads.push(Load {
            handler: Handler::Ours,
            mode: Mode::Exec,
            duration: Duration::from_secs(fault_seconds.unwrap_or(seconds)),
            sample_every: Duration::from_secs(sample_every),
            workers,
            faults: Some(Duration::from_secs(faults_every)),
            fault_kinds: fault_kinds.clone(),
        });
    }
    let mut outcomes = Vec::new();
    for load in &loads {
        eprintln!(
            "soak: {} in {} mode, {} s, {workers} workers{}",
            load.handler.label(),
            load.mode.label(),
            load.duration.as_secs(),
            if load.faults.is_some() {
                ", faults"
            } else {
                ""
            }
        );
        let o = soak::run(load, &registry.reference(), work.path(), &keep);
        eprintln!("soak: {:?}", report::problems(&o));
        outcomes.push(o);
    }
    println!("{}", report::markdown(&outcomes));
    if let Some(path) = out {
        let text = serde_json::to_string_pretty(&report::json(&outcomes)).unwrap_or_default();
        if let Err(e) = fs::write(&path, text) {
            eprintln!("soak: write {path}: {e}");
        }
        println!("results written to {path}");
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.load.handler == Handler::Ours && !report::problems(o).is_empty())
        .collect();
    drop(registry);
    drop(work);
    if !failed.is_empty() {
        eprintln!("soak: our shim failed in {} load(s)", failed.len());
        std::process::exit(1);
    }
}
