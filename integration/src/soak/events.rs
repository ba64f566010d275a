//! Every task event of a soak, read from `ctr events` as it happens, and
//! the check that nothing was lost: each started process (a container's
//! init or an exec) exits exactly once, with the code its command gives,
//! and each container's events come in lifecycle order.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use serde_json::Value;

/// `ctr events`, running, with what it has printed so far.
pub struct EventWatch {
    current: Arc<Mutex<Option<Child>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    events: Arc<Mutex<Vec<Event>>>,
}

/// The topic of the marker put where `ctr events` was restarted.
pub const GAP: &str = "gap";

/// One task event of the watched namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `/tasks/create`, `/tasks/exit`, ...
    pub topic: String,
    /// The container.
    pub container: String,
    /// The process: the exec id, or the container id for its init.
    pub process: String,
    /// The exit status of an exit.
    pub exit_status: Option<i64>,
}

impl Event {
    fn gap() -> Event {
        Event {
            topic: GAP.into(),
            container: String::new(),
            process: String::new(),
            exit_status: None,
        }
    }

    /// Parses a `ctr events` line (`<time> <namespace> <topic> <json>`) of
    /// `namespace`.
    pub fn parse(line: &str, namespace: &str) -> Option<Event> {
        let mut words = line.split_whitespace();
        let topic_at = words.position(|w| w.starts_with("/tasks/"))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        if topic_at == 0 || words[topic_at - 1] != namespace {
            return None;
        }
        let topic = words[topic_at].to_string();
        let json: Value = serde_json::from_str(&line[line.find('{')?..]).ok()?;
        let container = json.get("container_id")?.as_str()?.to_string();
        let process = json
            .get("exec_id")
            .or_else(|| json.get("id"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(&container)
            .to_string();
        let exit_status = (topic == "/tasks/exit")
            .then(|| json.get("exit_status").and_then(Value::as_i64).unwrap_or(0));
        Some(Event {
            topic,
            container,
            process,
            exit_status,
        })
    }
}

impl EventWatch {
    /// Starts watching with `ctr` (a command already pointed at the
    /// containerd, to which `events` is added) for events of `namespace`.
    /// When `ctr events` ends (containerd restarted), it is started again
    /// and a [`GAP`] event marks what it may have missed.
    pub fn start(ctr: Command, namespace: &'static str) -> std::io::Result<EventWatch> {
        let spawn = move || -> std::io::Result<Child> {
            let mut cmd = Command::new(ctr.get_program());
            cmd.args(ctr.get_args()).arg("events");
            for (k, v) in ctr.get_envs() {
                if let Some(v) = v {
                    cmd.env(k, v);
                }
            }
            cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()
        };
        let first = spawn()?;
        let current = Arc::new(Mutex::new(Some(first)));
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, child, stopped) = (events.clone(), current.clone(), stop.clone());
        let reader = thread::spawn(move || loop {
            let out = lock(&child).as_mut().and_then(|c| c.stdout.take());
            if let Some(out) = out {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(e) = Event::parse(&line, namespace) {
                        lock(&sink).push(e);
                    }
                }
            }
            if let Some(mut c) = lock(&child).take() {
                let _ = c.wait();
            }
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            lock(&sink).push(Event::gap());
            thread::sleep(Duration::from_millis(200));
            *lock(&child) = spawn().ok();
        });
        Ok(EventWatch {
            current,
            stop,
            reader: Some(reader),
            events,
        })
    }

    /// Stops watching and returns every event seen.
    pub fn finish(mut self) -> Vec<Event> {
        self.end();
        std::mem::take(&mut *lock(&self.events))
    }

    fn end(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = lock(&self.current).as_mut() {
            let _ = c.kill();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        self.end();
    }
}

/// What the events say about the run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventCheck {
    /// Containers whose task was created.
    pub containers: usize,
    /// Processes started (inits and execs).
    pub started: usize,
    /// Exits seen.
    pub exits: usize,
    /// Started processes that never exited: lost exits.
    pub lost: Vec<String>,
    /// Started processes with no exit seen, but started before the watch
    /// had a gap (containerd restarted): their exit may be in the gap.
    pub unseen_in_gap: usize,
    /// Processes that exited more than once.
    pub repeated: Vec<String>,
    /// Inits whose exit containerd published again, as 137, when it
    /// cleaned up after their killed shim (containerd's `shim delete` path
    /// publishes an exit for any task not yet deleted): not counted in
    /// [`EventCheck::repeated`].
    pub again_after_dead_shim: usize,
    /// Execs still running when their shim was killed: containerd
    /// publishes an exit for the task's init only, so theirs never comes.
    /// Not counted in [`EventCheck::lost`].
    pub gone_with_shim: usize,
    /// Exits whose status the command cannot give.
    pub wrong_status: Vec<String>,
    /// Containers whose events came out of lifecycle order.
    pub out_of_order: Vec<String>,
}

impl EventCheck {
    /// Whether nothing was lost, repeated, wrong or out of order.
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.repeated.is_empty()
            && self.wrong_status.is_empty()
            && self.out_of_order.is_empty()
    }
}

/// Checks `events`; `status_ok(container, process, status)` says whether
/// an exit status is one that process's command can give; `dead_shims`
/// are the containers whose shim was killed during the run.
pub fn check(
    events: &[Event],
    status_ok: impl Fn(&str, &str, i64) -> bool,
    dead_shims: &[String],
) -> EventCheck {
    let mut c = EventCheck::default();
    // (container, process) -> (started, exit statuses, a gap since the start)
    let mut procs: BTreeMap<(&str, &str), (bool, Vec<i64>, bool)> = BTreeMap::new();
    let mut order: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    // After a restart or a killed shim, containerd's cleanup after a shim
    // it takes for dead publishes an exit and a delete of its own, which
    // may follow the shim's delete: order is judged up to that delete.
    let mut restarted = !dead_shims.is_empty();
    let mut deleted: BTreeSet<&str> = BTreeSet::new();
    for e in events {
        let key = (e.container.as_str(), e.process.as_str());
        match e.topic.as_str() {
            GAP => {
                restarted = true;
                for p in procs.values_mut() {
                    p.2 = true;
                }
                // Order is judged within what one watch saw.
                out_of_order(&order, &mut c.out_of_order);
                order.clear();
                continue;
            }
            "/tasks/create" => c.containers += 1,
            "/tasks/start" | "/tasks/exec-started" => {
                c.started += 1;
                procs.entry(key).or_default().0 = true;
            }
            "/tasks/exit" => {
                c.exits += 1;
                let status = e.exit_status.unwrap_or(0);
                procs.entry(key).or_default().1.push(status);
                if !status_ok(&e.container, &e.process, status) {
                    c.wrong_status
                        .push(format!("{}/{}: {status}", e.container, e.process));
                }
            }
            _ => {}
        }
        if key.0 == key.1 && !(restarted && deleted.contains(key.0)) {
            order.entry(key.0).or_default().push(e.topic.as_str());
        }
        if e.topic == "/tasks/delete" {
            deleted.insert(key.0);
        }
    }
    for ((container, process), (started, exits, gap)) in procs {
        let name = format!("{container}/{process}");
        let shim_killed = dead_shims.iter().any(|d| d == container);
        let by_containerd =
            shim_killed && container == process && exits.iter().skip(1).all(|s| *s == 137);
        if started && exits.is_empty() && gap {
            c.unseen_in_gap += 1;
        } else if started && exits.is_empty() && shim_killed && container != process {
            c.gone_with_shim += 1;
        } else if started && exits.is_empty() {
            c.lost.push(name);
        } else if exits.len() > 1 && by_containerd {
            c.again_after_dead_shim += 1;
        } else if exits.len() > 1 {
            c.repeated.push(name);
        }
    }
    out_of_order(&order, &mut c.out_of_order);
    c
}

/// Adds the containers of `order` whose topics are out of lifecycle order.
fn out_of_order(order: &BTreeMap<&str, Vec<&str>>, found: &mut Vec<String>) {
    let rank = |t: &str| match t {
        "/tasks/create" => 0,
        "/tasks/start" => 1,
        "/tasks/exit" => 2,
        "/tasks/delete" => 3,
        _ => 1,
    };
    for (container, topics) in order {
        if topics.windows(2).any(|w| rank(w[0]) > rank(w[1]))
            && !found.iter().any(|f| f == container)
        {
            found.push(container.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(topic: &str, container: &str, process: &str, status: Option<i64>) -> Event {
        Event {
            topic: topic.into(),
            container: container.into(),
            process: process.into(),
            exit_status: status,
        }
    }

    #[test]
    fn ctr_event_lines_parse() {
        let line = r#"2026-12-06 22:00:00.1 +0000 UTC stress /tasks/exit {"container_id":"0-1","id":"0-1","pid":42,"exit_status":137}"#;
        assert_eq!(
            Event::parse(line, "stress"),
            Some(ev("/tasks/exit", "0-1", "0-1", Some(137)))
        );
        let exec = r#"2026-12-06 22:00:00.1 +0000 UTC stress /tasks/exec-started {"container_id":"c","exec_id":"1-2","pid":7}"#;
        assert_eq!(
            Event::parse(exec, "stress"),
            Some(ev("/tasks/exec-started", "c", "1-2", None))
        );
        assert_eq!(Event::parse(line, "other"), None);
        assert_eq!(Event::parse("garbage", "stress"), None);
    }

    #[test]
    fn lost_repeated_wrong_and_disordered_exits_are_named() {
        let events = [
            ev("/tasks/create", "a", "a", None),
            ev("/tasks/start", "a", "a", None),
            ev("/tasks/exit", "a", "a", Some(0)),
            ev("/tasks/delete", "a", "a", None),
            ev("/tasks/create", "b", "b", None),
            ev("/tasks/start", "b", "b", None),
            ev("/tasks/exec-started", "b", "x", None),
            ev("/tasks/exit", "b", "x", Some(1)),
            ev("/tasks/exit", "b", "x", Some(0)),
            ev("/tasks/create", "c", "c", None),
            ev("/tasks/exit", "c", "c", Some(0)),
            ev("/tasks/start", "c", "c", None),
        ];
        let c = check(&events, |_, _, s| s == 0, &[]);
        assert_eq!(c.unseen_in_gap, 0);
        assert_eq!(c.containers, 3);
        assert_eq!(c.lost, ["b/b"]);
        assert_eq!(c.repeated, ["b/x"]);
        assert_eq!(c.wrong_status, ["b/x: 1"]);
        assert_eq!(c.out_of_order, ["c"]);
        assert!(!c.clean());
    }

    #[test]
    fn containerds_events_after_the_shims_delete_are_not_judged_for_order_after_faults() {
        let events = [
            ev("/tasks/delete", "a", "a", None),
            ev("/tasks/exit", "a", "a", Some(137)),
            ev("/tasks/delete", "a", "a", None),
        ];
        assert_eq!(check(&events, |_, _, _| true, &[]).out_of_order, ["a"]);
        let mut restarted = vec![Event::gap()];
        restarted.extend(events.iter().cloned());
        assert!(check(&restarted, |_, _, _| true, &[])
            .out_of_order
            .is_empty());
    }

    #[test]
    fn an_exit_missing_across_a_gap_is_unseen_not_lost() {
        let events = [
            ev("/tasks/start", "a", "a", None),
            Event::gap(),
            ev("/tasks/start", "b", "b", None),
        ];
        let c = check(&events, |_, _, _| true, &[]);
        assert_eq!(c.unseen_in_gap, 1);
        assert_eq!(c.lost, ["b/b"]);
    }

    #[test]
    fn containerds_exit_after_a_dead_shim_is_told_apart() {
        let events = [
            ev("/tasks/start", "a", "a", None),
            ev("/tasks/exit", "a", "a", Some(0)),
            ev("/tasks/exit", "a", "a", Some(137)),
            ev("/tasks/start", "a", "x", None),
            ev("/tasks/exit", "a", "x", Some(0)),
            ev("/tasks/exit", "a", "x", Some(137)),
            ev("/tasks/start", "a", "y", None),
            ev("/tasks/start", "b", "b", None),
            ev("/tasks/start", "b", "z", None),
        ];
        let c = check(&events, |_, _, _| true, &["a".to_string()]);
        assert_eq!(c.again_after_dead_shim, 1);
        assert_eq!(c.repeated, ["a/x"]);
        // An exec running when its shim died gets no exit from containerd;
        // one in a container whose shim lives is lost.
        assert_eq!(c.gone_with_shim, 1);
        assert_eq!(c.lost, ["b/b", "b/z"]);
        let none = check(&events, |_, _, _| true, &[]);
        assert_eq!(none.repeated.len(), 2);
        assert_eq!(none.lost, ["a/y", "b/b", "b/z"]);
    }
}
