//! Failure paths and argv checks against a fake runsc: a shell script
//! written per test that records its argv and stdin, then behaves as told.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

use oci_spec::runtime::{LinuxResources, ProcessBuilder};
use tempfile::TempDir;

use crate::{
    CreateOpts, DeleteOpts, Error, ExecOpts, GlobalOpts, KillOpts, LogFormat, Runsc, Status,
    WaitOpts,
};

struct Fake {
    dir: TempDir,
    runsc: Runsc,
}

impl Fake {
    /// `body` runs after argv/stdin are recorded; `$log` is the --log path.
    fn new(body: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("runsc");
        let text = format!(
            r#"#!/bin/sh
dir=$(dirname "$0")
printf '%s\n' "$@" > "$dir/argv"
log=
for a in "$@"; do case "$a" in --log=*) log="${{a#--log=}}";; esac; done
case " $* " in *" --resources=- "*) cat > "$dir/stdin";; esac
{body}
"#
        );
        test_support::host::write_script(&script, &text);
        let runsc = GlobalOpts::new()
            .command(&script)
            .root(dir.path().join("root"))
            .log(dir.path().join("log.json"))
            .log_format(LogFormat::Json)
            .config("network", "none")
            .build();
        Fake { dir, runsc }
    }

    fn argv(&self) -> Vec<String> {
        fs::read_to_string(self.dir.path().join("argv"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn globals(&self) -> Vec<String> {
        vec![
            format!("--root={}", self.path("root").display()),
            format!("--log={}", self.path("log.json").display()),
            "--log-format=json".into(),
            "--network=none".into(),
        ]
    }
}

const NET_ERR: &str = r#"{"msg":"creating container: cannot run with network enabled in root network namespace","level":"error","time":"2026-11-22T08:11:34Z"}"#;

#[tokio::test]
async fn create_error_comes_from_this_calls_log_lines() {
    let fake = Fake::new(&format!(
        "printf '%s' '{NET_ERR}' >> \"$log\"\necho 'stderr noise' >&2\nexit 128"
    ));
    // An older error in the log must not be blamed on this call.
    fs::write(
        fake.path("log.json"),
        r#"{"msg":"stale failure","level":"error"}"#,
    )
    .unwrap();
    let opts = CreateOpts {
        pid_file: Some("/b/init.pid".into()),
        ..Default::default()
    };
    let err = fake
        .runsc
        .create("c1", "/b".as_ref(), opts)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "runsc create c1 failed: creating container: cannot run with network enabled in root network namespace (exit status 128)"
    );
    let Error::Command { status, argv, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*status, 128);
    let mut want = fake.globals();
    want.extend(["create", "--bundle=/b", "--pid-file=/b/init.pid", "c1"].map(String::from));
    assert_eq!(fake.argv(), want);
    assert_eq!(&argv[1..], &want[..]);
}

#[tokio::test]
async fn capture_error_uses_stderr_and_classifies() {
    let fake = Fake::new("echo 'first' >&2; echo 'sandbox is not running' >&2; exit 128");
    let err = fake
        .runsc
        .kill(
            "c1",
            9,
            KillOpts {
                all: true,
                pid: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "sandbox is not running");
    assert!(err.is_not_running() && err.is_not_found());
    assert_eq!(&fake.argv()[4..], ["kill", "--all", "c1", "9"]);

    let fake = Fake::new("exit 1");
    let err = fake.runsc.pause("c2").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "runsc pause c2 failed: no error output (exit status 1)"
    );
    assert!(!err.is_not_found());
}

#[tokio::test]
async fn update_unsupported_is_detected_once() {
    let fake = Fake::new(
        r#"if [ "$1" = help ]; then echo "$2" >> "$dir/probes"; echo "Subcommand $2 not understood"; exit 128; fi
exit 0"#,
    );
    for _ in 0..2 {
        let err = fake
            .runsc
            .update("c1", &LinuxResources::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
        assert!(err.to_string().ends_with("does not support `update`"));
    }
    let probes = fs::read_to_string(fake.path("probes")).unwrap();
    assert_eq!(probes, "update\n", "probe must be cached");
}

#[tokio::test]
async fn update_supported_sends_json_on_stdin() {
    let fake = Fake::new("exit 0");
    let res: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":10}}"#).unwrap();
    fake.runsc.update("c1", &res).await.unwrap();
    assert_eq!(&fake.argv()[4..], ["update", "--resources=-", "c1"]);
    let stdin: serde_json::Value =
        serde_json::from_slice(&fs::read(fake.path("stdin")).unwrap()).unwrap();
    assert_eq!(stdin["pids"]["limit"], 10);
}

#[tokio::test]
async fn missing_binary_is_a_spawn_error() {
    let r = GlobalOpts::new().command("/nonexistent/runsc").build();
    let err = r.state("c1").await.unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/runsc"));
}

#[tokio::test]
async fn parses_outputs() {
    let fake = Fake::new(
        r#"case "$1$2$3$4$5" in *state*) echo '{"ociVersion":"1.0.2-dev","id":"c1","status":"paused","pid":5,"bundle":"/b"}';;
*list*) echo null;;
*ps*) echo '[1,2]';;
*wait*) echo '{"id":"c1","exitStatus":137}';;
*--version*) printf 'runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n';;
esac
for a in "$@"; do [ "$a" = bad ] && echo 'not json'; done
exit 0"#,
    );
    let r = &fake.runsc;
    let c = r.state("c1").await.unwrap();
    assert_eq!((c.status, c.pid), (Status::Paused, 5));
    assert!(r.list().await.unwrap().is_empty());
    assert_eq!(r.ps("c1").await.unwrap(), [1, 2]);
    assert_eq!(
        r.wait(
            "c1",
            WaitOpts {
                pid: Some(2),
                rootpid: None
            }
        )
        .await
        .unwrap(),
        137
    );
    assert_eq!(&fake.argv()[4..], ["wait", "--pid=2", "c1"]);
    assert_eq!(r.version().await.unwrap(), "0.0~20221219.0");
    let err = r.state("bad").await.unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err:?}");
    r.delete("c1", DeleteOpts { force: true }).await.unwrap();
    assert_eq!(&fake.argv()[4..], ["delete", "--force", "c1"]);
}

#[tokio::test]
async fn exec_and_run_exit_codes() {
    let fake = Fake::new(
        r#"for a in "$@"; do case "$a" in --process=*) cp "${a#--process=}" "$dir/process.json";; --pid-file=*) echo 42 > "${a#--pid-file=}";; esac; done
case " $* " in *" --detach "*) exit 0;; *" logerr "*) printf '%s' '{"msg":"boom","level":"error"}' >> "$log"; exit 128;; esac
exit 3"#,
    );
    let process = ProcessBuilder::default()
        .args(vec!["sh".to_string()])
        .cwd("/")
        .build()
        .unwrap();
    let code = fake
        .runsc
        .exec("c1", &process, ExecOpts::default())
        .await
        .unwrap();
    assert_eq!(code, 3);
    let argv = fake.argv();
    let spec_arg = argv[5].strip_prefix("--process=").unwrap();
    assert!(
        !std::path::Path::new(spec_arg).exists(),
        "temp spec removed"
    );
    let sent: serde_json::Value =
        serde_json::from_slice(&fs::read(fake.path("process.json")).unwrap()).unwrap();
    assert_eq!(sent["args"][0], "sh");

    // Detached without a pid file: one is supplied (runsc 20221219 needs it).
    let opts = ExecOpts {
        detach: true,
        ..Default::default()
    };
    assert_eq!(fake.runsc.exec("c1", &process, opts).await.unwrap(), 0);
    assert!(fake.argv().iter().any(|a| a.starts_with("--pid-file=")));

    // runsc's own failure (logged) is an error, not an exit code.
    let err = fake
        .runsc
        .exec("logerr", &process, ExecOpts::default())
        .await
        .unwrap_err();
    assert_eq!(err.message(), "boom");

    let code = fake
        .runsc
        .run("c1", "/b".as_ref(), CreateOpts::default())
        .await
        .unwrap();
    assert_eq!(code, 3);
    assert_eq!(&fake.argv()[4..], ["run", "--bundle=/b", "c1"]);
}

#[tokio::test]
async fn chatty_output_does_not_deadlock() {
    // Far more than a pipe buffer on both streams.
    let fake = Fake::new(
        "i=0; while [ $i -lt 3000 ]; do echo 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'; echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy >&2; i=$((i+1)); done; exit 0",
    );
    let top = tokio::time::timeout(std::time::Duration::from_secs(30), fake.runsc.top("c1"))
        .await
        .expect("deadlocked")
        .unwrap();
    assert_eq!(top.processes.len(), 2999);
}

/// A client of `fake`'s script with its own log set-up and deadlines.
fn client(fake: &Fake, timeouts: crate::Timeouts) -> Runsc {
    GlobalOpts::new()
        .command(fake.path("runsc"))
        .root(fake.path("root"))
        .log_per_call(fake.path(""))
        .log_format(LogFormat::Json)
        .setpgid(true)
        .timeouts(timeouts)
        .build()
}

fn pid_gone(pid: &str) -> bool {
    (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
    })
}

#[tokio::test]
async fn a_hung_call_is_killed_with_its_tree_at_its_deadline() {
    // Like `runsc create` on a KVM that never boots: a child (the sandbox)
    // in a session of its own, an error logged, then nothing.
    let fake = Fake::new(
        "setsid sleep 1000 & echo $! > \"$dir/child\"\nprintf '%s' '{\"msg\":\"booting: kvm stuck\",\"level\":\"error\"}' >> \"$log\"\nsleep 1000",
    );
    let t = crate::Timeouts::default().set("create", Some(std::time::Duration::from_millis(400)));
    let r = client(&fake, t);
    let started = std::time::Instant::now();
    let err = r
        .create("c1", "/b".as_ref(), CreateOpts::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "runsc create c1 did not finish within 400ms and was killed; runsc had logged: booting: kvm stuck"
    );
    let child = fs::read_to_string(fake.path("child")).unwrap();
    assert!(pid_gone(child.trim()), "the hung call's child survived");
    // Its own log file is gone once read.
    let left: Vec<_> = fs::read_dir(fake.dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("runsc-create-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn an_abandoned_call_is_killed() {
    let fake = Fake::new("sleep 1000 & echo $! > \"$dir/child\"\nsleep 1000");
    let r = client(&fake, crate::Timeouts::none());
    let call = r.start("c1", Default::default());
    let res = tokio::time::timeout(std::time::Duration::from_millis(500), call).await;
    assert!(res.is_err(), "the fake never finishes");
    let child = fs::read_to_string(fake.path("child")).unwrap();
    assert!(pid_gone(child.trim()), "an abandoned call's child survived");
}

#[tokio::test]
async fn each_call_reads_only_its_own_errors() {
    // `kill` fails slowly after logging; `pause` succeeds meanwhile. With
    // one shared log, pause would see kill's error (and vice versa).
    let fake = Fake::new(
        "case \" $* \" in *\" kill \"*) printf '%s' '{\"msg\":\"kill failed: boom\",\"level\":\"error\"}' >> \"$log\"; sleep 0.3; exit 128;; esac\nexit 0",
    );
    let r = client(&fake, crate::Timeouts::default());
    let (kill, pause) = tokio::join!(r.kill("c1", 9, KillOpts::default()), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        r.pause("c1").await
    });
    assert!(pause.is_ok(), "{pause:?}");
    assert_eq!(kill.unwrap_err().message(), "kill failed: boom");
}

#[tokio::test]
async fn flags_are_listed_once_per_binary() {
    let fake = Fake::new(
        "echo run >> \"$dir/flag-calls\"\nprintf '  -debug\\n    \\tdebug.\\n  -network value\\n    \\tnet.\\n  -debug-log string\\n' >&2",
    );
    let r = client(&fake, crate::Timeouts::default());
    let flags = r.flags().await.unwrap();
    assert!(flags.contains("network") && flags.contains("debug-log") && flags.contains("debug"));
    assert_eq!(flags.len(), 3, "{flags:?}");
    r.flags().await.unwrap();
    let calls = fs::read_to_string(fake.path("flag-calls")).unwrap();
    assert_eq!(calls.lines().count(), 1, "asked runsc twice");
}

/// What a new process of a runsc at `fake`, caching in `cache`, knows of
/// its flags: the in-memory cache of this one is dropped first.
async fn flags_in_new_process(fake: &Fake, cache: &Path) -> BTreeSet<String> {
    super::binary::FLAGS_CACHE
        .lock()
        .unwrap()
        .retain(|(p, _), _| !p.starts_with(fake.dir.path()));
    let r = GlobalOpts::new()
        .command(fake.path("runsc"))
        .cache_dir(cache)
        .build();
    r.flags().await.unwrap().as_ref().clone()
}

fn cache_files(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_changed_binary_is_asked_again_and_its_old_answer_dropped() {
    let fake = Fake::new("echo run >> \"$dir/flag-calls\"\nprintf '  -overlay2 value\\n' >&2");
    let cache = tempfile::tempdir().unwrap();
    assert!(flags_in_new_process(&fake, cache.path())
        .await
        .contains("overlay2"));
    assert_eq!(cache_files(cache.path()).len(), 1);
    // An upgrade in place: same path, new modification time.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
    fs::File::options()
        .append(true)
        .open(fake.path("runsc"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert!(flags_in_new_process(&fake, cache.path())
        .await
        .contains("overlay2"));
    let calls = fs::read_to_string(fake.path("flag-calls")).unwrap();
    assert_eq!(
        calls.lines().count(),
        2,
        "the upgraded binary was not asked"
    );
    assert_eq!(cache_files(cache.path()).len(), 1, "the old answer stayed");
}

#[tokio::test]
async fn cache_files_of_binaries_since_removed_are_pruned() {
    let cache = tempfile::tempdir().unwrap();
    // An old-format file (no header) and a removed wrapper's answer.
    fs::write(
        cache.path().join(".runsc-flags-0000000000000000"),
        "debug\n",
    )
    .unwrap();
    let gone = Fake::new("printf '  -debug\\n' >&2");
    flags_in_new_process(&gone, cache.path()).await;
    drop(gone);
    // Not ours: a file another process is still writing, and other files.
    fs::write(cache.path().join(".runsc-flags-1111111111111111.tmp42"), "").unwrap();
    fs::write(cache.path().join("other"), "").unwrap();
    let kept = Fake::new("printf '  -network value\\n' >&2");
    assert!(flags_in_new_process(&kept, cache.path())
        .await
        .contains("network"));
    let files = cache_files(cache.path());
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.contains(&"other".to_string()));
    assert!(files.iter().any(|f| f.ends_with(".tmp42")));
    let entry = files
        .iter()
        .find(|f| f.starts_with(".runsc-flags-") && !f.contains(".tmp"));
    let text = fs::read_to_string(cache.path().join(entry.unwrap())).unwrap();
    assert!(
        text.contains(&kept.path("runsc").display().to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn flags_are_cached_on_disk_for_other_processes() {
    let fake = Fake::new("echo run >> \"$dir/flag-calls\"\nprintf '  -overlay2 value\\n' >&2");
    let cache = fake.path("cache");
    assert!(flags_in_new_process(&fake, &cache)
        .await
        .contains("overlay2"));
    // Another process: the in-memory cache is gone, the file is not.
    assert!(flags_in_new_process(&fake, &cache)
        .await
        .contains("overlay2"));
    let calls = fs::read_to_string(fake.path("flag-calls")).unwrap();
    assert_eq!(calls.lines().count(), 1, "asked runsc twice");
}

// Seen in the soak: containerd removed the bundle (where the per-call logs
// go) just as the shim's `runsc delete` of a Create it had given up
// started; runsc died opening its log and the sandbox was left.
#[tokio::test]
async fn a_delete_whose_log_directory_went_away_under_it_runs_again_without_it() {
    // With a log: remove its directory, then fail as runsc does.
    let fake = Fake::new(
        "echo \"$@\" >> \"$dir/calls\"\ncase \"$*\" in *--log=*) rm -rf \"$dir/bundle\"; exit 128;; esac\nexit 0",
    );
    let logs = fake.path("bundle");
    fs::create_dir(&logs).unwrap();
    let r = GlobalOpts::new()
        .command(fake.path("runsc"))
        .root(fake.path("root"))
        .log_per_call(&logs)
        .build();
    r.delete("c1", DeleteOpts { force: true }).await.unwrap();
    let calls = fs::read_to_string(fake.path("calls")).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].contains("--log="), "{calls:?}");
    assert!(!calls[1].contains("--log"), "{calls:?}");
}
