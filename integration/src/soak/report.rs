//! A soak's verdict and its report: containerd-stress's figures, the
//! samples over time, and what the events and the final sweep found.

use serde_json::{json, Value};

use super::{sample::Sample, Mode, Outcome};

/// Whether `s` shows nothing held: no shim, mount, cgroup, runtime state,
/// socket or FIFO left.
pub fn nothing_held(s: &Sample) -> bool {
    s.shims == 0 && s.held().iter().all(|(_, n)| *n == 0)
}

/// What is wrong with an outcome: errors, lost or wrong exits, growth
/// after warm-up, anything left. Empty means it passed.
pub fn problems(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    if let Some(e) = &o.error {
        p.push(e.clone());
    }
    if let Some(why) = &o.stopped_early {
        p.push(why.clone());
    }
    match &o.stress {
        None => p.push("containerd-stress printed no result".into()),
        // A killed shim or sandbox fails the worker's calls: counted in the
        // report, not judged; what is judged is below.
        Some(_) if o.load.faults.is_some() => {}
        Some(r) => {
            for key in ["failures", "execFailures"] {
                let n = r.get(key).and_then(Value::as_u64).unwrap_or(0);
                if n > 0 {
                    p.push(format!("containerd-stress counted {n} {key}"));
                }
            }
        }
    }
    let e = &o.events;
    for (what, list) in [
        ("lost exits", &e.lost),
        ("repeated exits", &e.repeated),
        ("wrong exit statuses", &e.wrong_status),
        ("events out of order", &e.out_of_order),
    ] {
        if !list.is_empty() {
            let some: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
            p.push(format!("{} {what}: {}", list.len(), some.join(", ")));
        }
    }
    p.extend(growth(o));
    if !nothing_held(&o.after) {
        p.push(format!("held after the load: {:?}", o.after));
    }
    let cut_off = cut_off_by_restart(o);
    let left: Vec<&str> = o
        .left
        .iter()
        .map(String::as_str)
        .filter(|l| !cut_off.contains(l))
        .collect();
    if !left.is_empty() {
        let some: Vec<&str> = left.iter().take(5).copied().collect();
        p.push(format!(
            "{} left in the namespace: {}",
            left.len(),
            some.join(", ")
        ));
    }
    p
}

/// Tasks and containers left after containerd was restarted: the
/// client's own calls (a task's or a container's delete) were cut off by
/// the restart, and nothing else deletes them. The sweep deleted them the
/// usual way before resources were counted, so a shim that could not be
/// deleted shows up as held.
fn cut_off_by_restart(o: &Outcome) -> Vec<&str> {
    let restarted = o
        .faults
        .iter()
        .any(|(_, f, _)| *f == super::faults::Fault::RestartContainerd);
    if !restarted {
        return Vec::new();
    }
    o.left.iter().map(String::as_str).collect()
}

/// Growth after warm-up: the samples after the first fifth of the run
/// (the last is taken while workers wind down) compared first to last. In
/// exec mode the same shims live throughout, so their own figures must be
/// flat; in both modes what containers hold must stay within what the
/// workers can have in flight.
fn growth(o: &Outcome) -> Vec<String> {
    let mut p = Vec::new();
    let warm = o.load.duration.as_secs() / 5;
    let end = o.load.duration.as_secs();
    let steady: Vec<&Sample> = o
        .samples
        .iter()
        .filter(|s| s.at_s >= warm && s.at_s < end)
        .collect();
    // A container worker holds one container at a time; the exec mode
    // adds a worker with a long-lived container beside each.
    let containers = match o.load.mode {
        Mode::Plain => o.load.workers,
        Mode::Exec => 2 * o.load.workers,
    };
    let in_flight = 3 * containers;
    for (k, (what, _)) in Sample::default().held().iter().enumerate() {
        let most = steady.iter().max_by_key(|s| s.held()[k].1);
        if let Some(s) = most.filter(|s| s.held()[k].1 > in_flight) {
            p.push(format!(
                "{} {what} at {} s with {} workers",
                s.held()[k].1,
                s.at_s,
                o.load.workers
            ));
        }
    }
    // Under faults the shims are not the same throughout.
    let same_shims = o.load.mode == Mode::Exec && o.load.faults.is_none();
    if let (true, Some(first), Some(last)) = (same_shims, steady.first(), steady.last()) {
        if first.shims == last.shims && first.shims > 0 {
            let (f, l) = (first, last);
            // A shim's descriptors at a sample depend on where its exec is:
            // stdio FIFOs and runsc's pipes, up to 6 more than between
            // execs (13-16 per shim in a 60 s run). A leak per exec grows
            // by hundreds.
            if l.fds > f.fds + 6 * f.shims as u64 {
                p.push(format!("shim descriptors grew {} -> {}", f.fds, l.fds));
            }
            if l.threads > f.threads + 2 * f.shims as u64 {
                p.push(format!("shim threads grew {} -> {}", f.threads, l.threads));
            }
            if l.rss_kib > f.rss_kib + f.rss_kib / 5 + 1024 {
                p.push(format!("shim RSS grew {} -> {} KiB", f.rss_kib, l.rss_kib));
            }
        }
    }
    p
}

fn rate(o: &Outcome, key: &str) -> String {
    o.stress
        .as_ref()
        .and_then(|r| r.get(key))
        .and_then(Value::as_f64)
        .map_or("-".into(), |v| format!("{v:.2}"))
}

fn count(o: &Outcome, key: &str) -> String {
    o.stress
        .as_ref()
        .and_then(|r| r.get(key))
        .and_then(Value::as_u64)
        .map_or("-".into(), |v| v.to_string())
}

/// The markdown report of `outcomes`.
pub fn markdown(outcomes: &[Outcome]) -> String {
    let mut m = String::from(
        "| handler | mode | minutes | containers | containers/s | execs | execs/s | failures | exits checked | verdict |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        let problems = problems(o);
        let execs = count(o, "execTotal");
        let exec_rate = o
            .stress
            .as_ref()
            .and_then(|r| {
                let n = r.get("execTotal")?.as_f64()?;
                let secs = r.get("seconds")?.as_f64()?;
                (secs > 0.0).then(|| format!("{:.2}", n / secs))
            })
            .unwrap_or_else(|| "-".into());
        let failures = format!("{}+{}", count(o, "failures"), count(o, "execFailures"));
        m += &format!(
            "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} of {} | {} |\n",
            o.load.handler.label(),
            mode_label(o),
            // What ran: less than asked if the load was stopped early.
            o.stress
                .as_ref()
                .and_then(|r| r.get("seconds")?.as_f64())
                .unwrap_or(o.load.duration.as_secs_f64())
                / 60.0,
            count(o, "total"),
            rate(o, "containersPerSecond"),
            execs,
            exec_rate,
            failures,
            o.events.exits,
            o.events.started,
            if problems.is_empty() {
                "clean".to_string()
            } else {
                problems.join("; ")
            }
        );
    }
    for o in outcomes {
        m += &format!(
            "\n{}, {} mode: every sample (per shim: RSS and PSS in KiB, descriptors, threads)\n\n| s | shims | RSS/shim | PSS/shim | fds/shim | threads/shim | mounts | cgroups | state | sockets | FIFOs |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
            o.load.handler.label(),
            mode_label(o)
        );
        for s in o.samples.iter().chain(std::iter::once(&o.after)) {
            m += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                s.at_s,
                s.shims,
                s.per_shim(s.rss_kib),
                s.per_shim(s.pss_kib),
                s.per_shim(s.fds),
                s.per_shim(s.threads),
                s.mounts,
                s.cgroups,
                s.state_entries,
                s.sockets,
                s.fifos
            );
        }
        m += &faults(o);
    }
    m
}

fn mode_label(o: &Outcome) -> String {
    match o.load.faults {
        Some(every) => format!(
            "{} + a fault every {} s",
            o.load.mode.label(),
            every.as_secs()
        ),
        None => o.load.mode.label().to_string(),
    }
}

/// The faults landed, as a markdown list.
fn faults(o: &Outcome) -> String {
    let mut m = String::new();
    if !o.faults.is_empty() {
        m += &format!(
            "\nFaults landed ({} of them; exits of processes started before a restart of containerd and not seen after it: {}; inits whose exit containerd published again after their shim was killed: {}; execs running when their shim was killed, whose exit containerd never publishes: {}; tasks and containers whose client's delete a restart cut off: {}; shim sockets containerd stranded, its dial to a just-killed shim failing: {}):\n\n",
            o.faults.len(),
            o.events.unseen_in_gap,
            o.events.again_after_dead_shim,
            o.events.gone_with_shim,
            cut_off_by_restart(o).len(),
            o.stranded.len()
        );
        for (at, fault, what) in &o.faults {
            m += &format!("- {at} s: {}: {what}\n", fault.label());
        }
    }
    m
}

/// The results file's JSON.
pub fn json(outcomes: &[Outcome]) -> Value {
    Value::Array(
        outcomes
            .iter()
            .map(|o| {
                json!({
                    "handler": o.load.handler.label(),
                    "mode": mode_label(o),
                    "seconds": o.load.duration.as_secs(),
                    "workers": o.load.workers,
                    "stress": o.stress,
                    "samples": o.samples.iter().map(Sample::to_json).collect::<Vec<_>>(),
                    "after": o.after.to_json(),
                    "events": {
                        "containers": o.events.containers, "started": o.events.started,
                        "exits": o.events.exits, "lost": o.events.lost,
                        "repeated": o.events.repeated, "wrong_status": o.events.wrong_status,
                        "out_of_order": o.events.out_of_order,
                    },
                    "left": o.left,
                    "stranded_by_containerd": o.stranded,
                    "faults": o.faults.iter().map(|(at, f, what)| json!({"at_s": at, "fault": f.label(), "what": what})).collect::<Vec<_>>(),
                    "stopped_early": o.stopped_early,
                    "unseen_in_gap": o.events.unseen_in_gap,
                    "again_after_dead_shim": o.events.again_after_dead_shim,
                    "gone_with_shim": o.events.gone_with_shim,
                    "problems": problems(o),
                })
            })
            .collect(),
    )
}
