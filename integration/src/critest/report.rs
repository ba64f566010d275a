//! critest's results against the checked-in list of the specs that fail
//! under gVisor for gVisor's reasons (`integration/critest/expected-failures.txt`).
//!
//! The list has one spec per line: a substring of the spec's full name
//! (its containers' texts and its own, joined by spaces, as critest prints
//! it), then ` # ` and the reason in one line. A line starting with
//! `skip: ` names a spec that is not run at all (the reason says why it
//! cannot run here). Blank lines and lines starting with `#` are comments.

use std::fmt::Write as _;

/// One line of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// A substring of the spec's full name.
    pub pattern: String,
    /// Why it fails (or cannot run) under gVisor.
    pub reason: String,
    /// Not run at all (`skip: `), rather than run and expected to fail.
    pub skip: bool,
}

/// Parses the list.
pub fn parse_list(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (skip, line) = match line.strip_prefix("skip:") {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let Some((pattern, reason)) = line.split_once(" # ") else {
            return Err(format!(
                "line {}: expected `<spec name substring> # <reason>`",
                n + 1
            ));
        };
        let (pattern, reason) = (pattern.trim(), reason.trim());
        if pattern.is_empty() || reason.is_empty() {
            return Err(format!("line {}: empty spec name or reason", n + 1));
        }
        out.push(Entry {
            pattern: pattern.to_string(),
            reason: reason.to_string(),
            skip,
        });
    }
    Ok(out)
}

/// `s` as a regular expression matching itself (for `-ginkgo.skip`).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A spec's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Ran and passed.
    Passed,
    /// Failed, panicked, timed out, or was interrupted or aborted.
    Failed,
    /// Skipped (by the skip list, by critest's own conditions) or pending.
    Skipped,
}

/// One spec (or suite node) from critest's JSON report.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Containers' texts and its own, joined by spaces.
    pub name: String,
    /// What happened.
    pub state: State,
    /// Ginkgo's word for it (`failed`, `timedout`, ...).
    pub raw_state: String,
    /// The failure message and where, for a failed spec.
    pub failure: String,
}

/// The specs in ginkgo's JSON report (`-ginkgo.json-report`), suite nodes
/// (BeforeSuite, ...) included when they did not pass.
pub fn parse_report(json: &str) -> Result<Vec<Spec>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("critest's JSON report: {e}"))?;
    let mut out = Vec::new();
    for suite in v.as_array().into_iter().flatten() {
        for r in suite["SpecReports"].as_array().into_iter().flatten() {
            let kind = r["LeafNodeType"].as_str().unwrap_or("");
            let raw_state = r["State"].as_str().unwrap_or("").to_string();
            let state = match raw_state.as_str() {
                "passed" => State::Passed,
                "skipped" | "pending" => State::Skipped,
                _ => State::Failed,
            };
            if kind != "It" && state != State::Failed {
                continue;
            }
            let mut parts: Vec<&str> = r["ContainerHierarchyTexts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .collect();
            let leaf = r["LeafNodeText"].as_str().unwrap_or("");
            if kind != "It" {
                parts.push(kind);
            }
            if !leaf.is_empty() {
                parts.push(leaf);
            }
            let f = &r["Failure"];
            let mut failure = String::new();
            if state == State::Failed {
                let _ = write!(
                    failure,
                    "{} ({}:{})",
                    f["Message"].as_str().unwrap_or("").trim(),
                    f["Location"]["FileName"].as_str().unwrap_or("?"),
                    f["Location"]["LineNumber"].as_i64().unwrap_or(0)
                );
            }
            out.push(Spec {
                name: parts.join(" "),
                state,
                raw_state,
                failure,
            });
        }
    }
    Ok(out)
}

/// critest's results judged against the list.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Specs in the report.
    pub total: usize,
    /// Passed specs.
    pub passed: usize,
    /// Skipped specs.
    pub skipped: usize,
    /// Failed specs the list expects, with the reason.
    pub expected: Vec<(Spec, String)>,
    /// Failed specs the list does not name: each fails the run.
    pub unexpected: Vec<Spec>,
    /// Specs the list expects to fail that passed.
    pub fixed: Vec<Spec>,
    /// Entries that matched no spec in the report.
    pub stale: Vec<Entry>,
}

impl Verdict {
    /// Failed specs, expected or not.
    pub fn failed(&self) -> usize {
        self.expected.len() + self.unexpected.len()
    }
}

/// Judges `specs` against `list`.
pub fn judge(specs: &[Spec], list: &[Entry]) -> Verdict {
    let mut v = Verdict {
        total: specs.len(),
        ..Verdict::default()
    };
    let entry_for = |name: &str| list.iter().find(|e| name.contains(&e.pattern));
    for s in specs {
        match (s.state, entry_for(&s.name)) {
            (State::Passed, Some(e)) if !e.skip => {
                v.passed += 1;
                v.fixed.push(s.clone());
            }
            (State::Passed, _) => v.passed += 1,
            (State::Skipped, _) => v.skipped += 1,
            (State::Failed, Some(e)) if !e.skip => v.expected.push((s.clone(), e.reason.clone())),
            (State::Failed, _) => v.unexpected.push(s.clone()),
        }
    }
    v.stale = list
        .iter()
        .filter(|e| !specs.iter().any(|s| s.name.contains(&e.pattern)))
        .cloned()
        .collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_lines_name_a_spec_and_a_reason() {
        let list = parse_list(
            "# comment\n\nA spec [Conformance] # gVisor has its own stack\n\
             skip: with digest # cannot be rebuilt offline\n",
        )
        .unwrap();
        assert_eq!(
            list,
            [
                Entry {
                    pattern: "A spec [Conformance]".into(),
                    reason: "gVisor has its own stack".into(),
                    skip: false
                },
                Entry {
                    pattern: "with digest".into(),
                    reason: "cannot be rebuilt offline".into(),
                    skip: true
                }
            ]
        );
        assert!(parse_list("no reason here\n").is_err());
        assert!(parse_list("skip: # reason only\n").is_err());
    }

    #[test]
    fn escaped_names_are_literal_regexes() {
        assert_eq!(regex_escape("a [b] (c).d"), r"a \[b\] \(c\)\.d");
    }

    #[test]
    fn only_unlisted_failures_are_unexpected() {
        let report = r#"[{"SpecReports": [
          {"LeafNodeType": "It", "ContainerHierarchyTexts": ["[k8s.io] Net", "ctx"],
           "LeafNodeText": "portforward", "State": "failed",
           "Failure": {"Message": "refused", "Location": {"FileName": "a.go", "LineNumber": 3}}},
          {"LeafNodeType": "It", "ContainerHierarchyTexts": ["[k8s.io] Net"],
           "LeafNodeText": "dns", "State": "failed", "Failure": {"Message": "x"}},
          {"LeafNodeType": "It", "ContainerHierarchyTexts": ["[k8s.io] Net"],
           "LeafNodeText": "ok", "State": "passed"},
          {"LeafNodeType": "It", "ContainerHierarchyTexts": null,
           "LeafNodeText": "bench", "State": "skipped"},
          {"LeafNodeType": "ReportAfterSuite", "LeafNodeText": "", "State": "passed"}
        ]}]"#;
        let specs = parse_report(report).unwrap();
        assert_eq!(specs.len(), 4);
        assert_eq!(specs[0].name, "[k8s.io] Net ctx portforward");
        assert_eq!(specs[0].failure, "refused (a.go:3)");
        let list =
            parse_list("ctx portforward # netstack\nNet ok # was broken\ngone # x\n").unwrap();
        let v = judge(&specs, &list);
        assert_eq!((v.total, v.passed, v.skipped, v.failed()), (4, 1, 1, 2));
        assert_eq!(v.expected.len(), 1);
        assert_eq!(v.unexpected[0].name, "[k8s.io] Net dns");
        assert_eq!(v.fixed[0].name, "[k8s.io] Net ok");
        assert_eq!(v.stale[0].pattern, "gone");
    }
}
