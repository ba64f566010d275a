//! The benchmark's report: a markdown table of medians and ratios, the
//! issue-11 targets with what was measured beside them, and JSON. Targets
//! are printed, never asserted.

use std::collections::BTreeMap;

use serde_json::json;

use super::{
    procs::Cpu,
    scenarios::{Footprint, MetricsCpu, PodMem, RunscCalls, METRICS_COUNTED, POD_MEMBERS},
    Mem, Sample, Stats,
};

/// Scenario name of `ctr run --rm /bin/true`.
pub const START: &str = "start: ctr run --rm /bin/true (ms)";
/// Scenario name of `ctr task exec /bin/true`.
pub const EXEC: &str = "exec: ctr task exec /bin/true (ms)";

/// Everything one run measured.
pub struct Report {
    /// `runsc --version` of the runsc on `PATH`.
    pub runsc_version: String,
    /// Iterations per scenario.
    pub iterations: usize,
    /// Load before.
    pub load_before: f64,
    /// Load after.
    pub load_after: f64,
    /// Seconds spent waiting for an idle machine before the timed
    /// scenarios, summed.
    pub settle_s: f64,
    /// Timed scenarios: [ours, Go shim, bare runsc].
    pub results: BTreeMap<&'static str, [Stats; 3]>,
    /// Shim memory, one container per shim: [ours, Go].
    pub mem_single: [Vec<Mem>; 2],
    /// A pod of a sandbox and five members through our shim.
    pub pod_ours: PodMem,
    /// The same six containers through the Go shim (one shim each).
    pub pod_go: Footprint,
    /// 20 concurrent starts: (wall ms, failures) per round, [ours, Go].
    pub concurrent: [Vec<(f64, usize)>; 2],
    /// CPU per exec (ms): [our shim, Go shim] own and reaped children,
    /// and \[bare\] `runsc exec` as the benchmark's own reaped child.
    pub exec_cpu: [Cpu; 3],
    /// Metrics calls on a running container: [ours, Go].
    pub metrics: [MetricsCpu; 2],
    /// runsc invocations through our shim.
    pub runsc_calls: RunscCalls,
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a".into()
    }
}

fn cell(s: &Stats) -> String {
    let f = if s.failures > 0 {
        format!(" ({} failed)", s.failures)
    } else {
        String::new()
    };
    format!("{:.1} ({:.1}-{:.1}){f}", s.median, s.min, s.max)
}

/// One target row: what it is, the measured value (`None`: not measured)
/// as shown, and the bound it must not exceed.
struct Target {
    name: String,
    value: Option<f64>,
    shown: String,
    bound: Option<f64>,
    bound_shown: String,
}

impl Target {
    fn met(&self) -> &'static str {
        match (self.value, self.bound) {
            (Some(v), Some(b)) if v.is_finite() => {
                if v <= b {
                    "yes"
                } else {
                    "**no**"
                }
            }
            (_, None) => "-",
            _ => "n/a",
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({"target": self.name, "value": self.value, "shown": self.shown,
               "bound": self.bound, "met": self.met().trim_matches('*')})
    }
}

fn calls(v: &[String], per: usize) -> String {
    let n = v.len() as f64 / per as f64;
    if v.is_empty() {
        return "0".into();
    }
    let mut verbs: BTreeMap<&str, usize> = BTreeMap::new();
    for s in v {
        *verbs.entry(s).or_default() += 1;
    }
    let list: Vec<String> = verbs
        .iter()
        .map(|(k, c)| {
            if *c == per {
                k.to_string()
            } else {
                format!("{k} x{}", *c as f64 / per as f64)
            }
        })
        .collect();
    format!("{n} ({})", list.join(", "))
}

impl Report {
    fn median(&self, scenario: &str, k: usize) -> f64 {
        self.results
            .get(scenario)
            .map(|r| r[k].median)
            .unwrap_or(0.0)
    }

    fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let mut ratio_target = |name: &str, scenario: &str, k: usize, bound: f64| {
            let (a, b) = (self.median(scenario, 0), self.median(scenario, k));
            let value = (a > 0.0 && b > 0.0).then(|| a / b);
            t.push(Target {
                name: name.into(),
                value,
                shown: format!("{} ({a:.1} / {b:.1} ms)", ratio(a, b)),
                bound: Some(bound),
                bound_shown: format!("≤ {bound}x"),
            });
        };
        ratio_target(
            "`ctr run --rm /bin/true`: ours / bare `runsc run`",
            START,
            2,
            1.35,
        );
        ratio_target("`ctr run --rm /bin/true`: ours / Go shim", START, 1, 0.75);
        ratio_target(
            "`ctr task exec /bin/true`: ours / bare `runsc exec`",
            EXEC,
            2,
            1.5,
        );
        ratio_target("`ctr task exec /bin/true`: ours / Go shim", EXEC, 1, 0.4);
        let pod = &self.pod_ours;
        t.push(Target {
            name: format!("pod of 1 sandbox + {POD_MEMBERS} members: PSS of the shim + its kept processes"),
            value: Some(pod.pod.pss_kb as f64),
            shown: format!(
                "{} kB (USS {} kB; {} shim, {} kept, {} shims of ours alive; sandbox alone {} kB; Go shim, the {} containers apart: {} kB in {} shims + {} kept)",
                pod.pod.pss_kb,
                pod.pod.private_kb,
                pod.shims,
                pod.pod.kept.len(),
                pod.shims_alive,
                pod.sandbox_only.pss_kb,
                POD_MEMBERS + 1,
                self.pod_go.pss_kb,
                self.pod_go.shims.len(),
                self.pod_go.kept.len()
            ),
            bound: Some(3072.0),
            bound_shown: "≤ 3 MB (3072 kB)".into(),
        });
        let mut kept: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &pod.pod.kept {
            *kept.entry(p.verb().unwrap_or("?")).or_default() += 1;
        }
        let kinds: Vec<String> = kept.iter().map(|(k, n)| format!("{n} {k}")).collect();
        t.push(Target {
            name: "pod: processes the shim keeps per member".into(),
            value: Some(pod.kept_per_member()),
            shown: format!(
                "{:.1} (sandbox alone: {}; with members: {}{})",
                pod.kept_per_member(),
                pod.sandbox_only.kept.len(),
                pod.pod.kept.len(),
                if kinds.is_empty() {
                    String::new()
                } else {
                    format!(": {}", kinds.join(", "))
                }
            ),
            bound: Some(0.0),
            bound_shown: "0".into(),
        });
        let [m, g] = &self.metrics;
        t.push(Target {
            name: format!(
                "Metrics (Tasks.Metrics over gRPC, {} calls): CPU per call, shim + what it spawned and reaped",
                m.calls
            ),
            value: (m.calls > 0 && m.ok > 0).then(|| m.per_call()),
            shown: format!(
                "{:.2} ms (self {:.2} + children {:.2}; {} failed; sandbox {:.2} ms/call, not counted; Go shim {:.2} ms)",
                m.per_call(),
                m.shim.own / m.calls.max(1) as f64,
                m.shim.children / m.calls.max(1) as f64,
                m.calls - m.ok,
                m.sandbox_ms / m.calls.max(1) as f64,
                g.per_call()
            ),
            bound: Some(1.0),
            bound_shown: "≤ 1 ms".into(),
        });
        let rc = &self.runsc_calls;
        for (name, v, per) in [
            (
                "runsc invocations per `ctr run --rm /bin/true`",
                &rc.lifecycle,
                1,
            ),
            (
                "runsc invocations per `ctr task exec /bin/true`",
                &rc.exec,
                1,
            ),
            (
                "runsc invocations per Metrics call",
                &rc.metrics,
                METRICS_COUNTED,
            ),
            (
                "runsc invocations of the first `ctr run --rm` + exec with a runsc binary (then cached on disk)",
                &rc.first_use,
                1,
            ),
        ] {
            t.push(Target {
                name: name.into(),
                value: Some(v.len() as f64 / per as f64),
                shown: calls(v, per),
                bound: None,
                bound_shown: "- (reported)".into(),
            });
        }
        t
    }

    /// The markdown tables.
    pub fn markdown(&self) -> String {
        let mut o = format!(
            "## runsc-shim benchmark (runsc {}, {} iterations, load {:.2} -> {:.2}, {:.0} s waiting for idle CPUs before timed scenarios; containerd at log level info)\n\n| scenario | ours | Go shim + runsc | bare runsc | ours/Go | ours/bare |\n|---|---|---|---|---|---|\n",
            self.runsc_version, self.iterations, self.load_before, self.load_after, self.settle_s
        );
        for (name, [a, b, c]) in &self.results {
            o += &format!(
                "| {name} | {} | {} | {} | {} | {} |\n",
                cell(a),
                cell(b),
                cell(c),
                ratio(a.median, b.median),
                ratio(a.median, c.median)
            );
        }
        let conc: Vec<Stats> = self
            .concurrent
            .iter()
            .map(|v| {
                let s: Vec<Sample> = v
                    .iter()
                    .map(|(ms, f)| Sample {
                        ms: *ms,
                        ok: *f == 0,
                    })
                    .collect();
                Stats::of(&s)
            })
            .collect();
        if let [a, b] = conc.as_slice() {
            o += &format!(
                "| 20 concurrent ctr run --rm (ms) | {} | {} | - | {} | - |\n",
                cell(a),
                cell(b),
                ratio(a.median, b.median)
            );
        }
        let [ec, eg, eb] = &self.exec_cpu;
        o += &format!(
            "| exec: CPU per exec, shim + reaped children (ms) | {:.1} ({:.1} + {:.1}) | {:.1} ({:.1} + {:.1}) | {:.1} | {} | {} |\n",
            ec.total(), ec.own, ec.children, eg.total(), eg.own, eg.children, eb.total(),
            ratio(ec.total(), eg.total()),
            ratio(ec.total(), eb.total())
        );
        let mem = |v: &Vec<Mem>| {
            let mut rss: Vec<u64> = v.iter().map(|m| m.rss).collect();
            rss.sort_unstable();
            let med = rss.get(rss.len() / 2).copied().unwrap_or(0);
            let anon = v.iter().map(|m| m.anon).max().unwrap_or(0);
            let pss = v.iter().map(|m| m.pss).max().unwrap_or(0);
            (v.len(), med, anon, pss)
        };
        let (n0, m0, a0, p0) = mem(&self.mem_single[0]);
        let (n1, m1, a1, p1) = mem(&self.mem_single[1]);
        o += &format!(
            "| shim memory, 1 container (kB VmRSS median / RssAnon / Pss) | {m0} / {a0} / {p0} ({n0} shims) | {m1} / {a1} / {p1} ({n1} shims) | - | {} | - |\n",
            ratio(m0 as f64, m1 as f64)
        );
        let (po, pg) = (self.pod_ours.pod.pss_kb, self.pod_go.pss_kb);
        o += &format!(
            "| pod of 1 sandbox + {POD_MEMBERS} members (Go: 6 containers), PSS of shims + kept processes (kB) | {po} | {pg} | - | {} | - |\n",
            ratio(po as f64, pg as f64)
        );
        o +=
            "\n### Targets (issue 11)\n\n| target | measured | target | met |\n|---|---|---|---|\n";
        for t in self.targets() {
            o += &format!(
                "| {} | {} | {} | {} |\n",
                t.name,
                t.shown,
                t.bound_shown,
                t.met()
            );
        }
        if self.metrics[0].calls < 1000 {
            o += &format!(
                "\nMetrics CPU from {} calls, not 1000: a 1-iteration (smoke) run.\n",
                self.metrics[0].calls
            );
        }
        o += "\nCPU is read from /proc/<pid>/stat: utime+stime of the shim and the cutime+cstime of the runsc processes it reaped. The exec CPU row checks that accounting: a shim that runs `runsc exec` (the Go shim; ours only when sandbox control goes through the CLI) shows it in its children's time, close to bare `runsc exec` reaped by the benchmark itself.\n";
        o
    }

    /// The JSON document.
    pub fn json(&self) -> String {
        let stats = |s: &Stats| json!({"median_ms": s.median, "min_ms": s.min, "max_ms": s.max, "failures": s.failures});
        let mems = |v: &Vec<Mem>| {
            v.iter().map(|m| json!({"pid": m.pid, "vmrss_kb": m.rss, "rss_anon_kb": m.anon, "pss_kb": m.pss})).collect::<Vec<_>>()
        };
        let cpu =
            |c: &Cpu| json!({"own_ms": c.own, "children_ms": c.children, "total_ms": c.total()});
        let metrics = |m: &MetricsCpu| {
            json!({"calls": m.calls, "ok": m.ok, "wall_ms": m.wall_ms, "shim": cpu(&m.shim),
                   "per_call_ms": m.per_call(), "sandbox_ms": m.sandbox_ms})
        };
        let results: serde_json::Map<String, serde_json::Value> = self
            .results
            .iter()
            .map(|(k, [a, b, c])| {
                (
                    k.to_string(),
                    json!({"ours": stats(a), "go_shim": stats(b), "bare_runsc": stats(c)}),
                )
            })
            .collect();
        let rc = &self.runsc_calls;
        let v = json!({
            "runsc_version": self.runsc_version,
            "iterations": self.iterations,
            "loadavg_before": self.load_before,
            "loadavg_after": self.load_after,
            "settle_seconds": self.settle_s,
            "results": results,
            "memory_single": {"ours": mems(&self.mem_single[0]), "go_shim": mems(&self.mem_single[1])},
            "pod": {
                "members": POD_MEMBERS,
                "ours": {"shims": self.pod_ours.shims, "shims_alive": self.pod_ours.shims_alive, "sandbox_only": self.pod_ours.sandbox_only.json(),
                         "with_members": self.pod_ours.pod.json(), "kept_per_member": self.pod_ours.kept_per_member()},
                "go_shim_separate_containers": self.pod_go.json(),
            },
            "concurrent_20": {"ours": self.concurrent[0], "go_shim": self.concurrent[1]},
            "exec_cpu_per_exec": {"ours": cpu(&self.exec_cpu[0]), "go_shim": cpu(&self.exec_cpu[1]), "bare_runsc": cpu(&self.exec_cpu[2])},
            "metrics": {"ours": metrics(&self.metrics[0]), "go_shim": metrics(&self.metrics[1])},
            "runsc_calls": {"first_lifecycle_and_exec": rc.first_use, "lifecycle": rc.lifecycle, "exec": rc.exec,
                            "metrics": rc.metrics, "metrics_calls": METRICS_COUNTED},
            "runsc_calls_per_lifecycle": rc.lifecycle.len(),
            "targets": self.targets().iter().map(Target::json).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}
