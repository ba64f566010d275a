//! Log URIs, runtime options files, and bad input.

use std::fs;

use crate::{Containerd, OutputExt};

#[test]
fn log_uri_file() {
    let c = Containerd::start();
    let log = c.dir().join("out.log");
    let uri = format!("file://{}", log.display());
    let out = c.run(
        "lf1",
        &["--log-uri", &uri],
        &["sh", "-c", "echo to-file; echo err-to-file >&2"],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    let out = c.run("lf2", &["--log-uri", &uri], &["echo", "second"]);
    assert_eq!(out.code(), 0, "{}", out.err());
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("to-file\n") && text.contains("err-to-file\n"),
        "{text}"
    );
    assert!(text.ends_with("second\n"), "appends: {text}");
    c.stop_and_check();
}

#[test]
fn log_uri_binary() {
    let c = Containerd::start();
    let dir = c.dir().join("blog");
    fs::create_dir_all(&dir).unwrap();
    let logger = dir.join("logger.sh");
    test_support::host::write_script(
        &logger,
        "#!/bin/sh\n# containerd logging binary: stdout on fd 3, stderr on fd 4, ready = close fd 5\nout=\"$2\"\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE\" > \"$out/env\"\nexec 5>&-\ncat <&3 > \"$out/stdout\" &\ncat <&4 > \"$out/stderr\" &\nwait\n",
    );
    let uri = format!("binary://{}?dir={}", logger.display(), dir.display());
    let out = c.run(
        "lb1",
        &["--log-uri", &uri],
        &["sh", "-c", "echo via-binary; echo err-binary >&2"],
    );
    assert_eq!(out.code(), 0, "{}", out.err());
    // The logger may still be flushing when ctr returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read_to_string(dir.join("stderr"))
        .unwrap_or_default()
        .is_empty()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        fs::read_to_string(dir.join("stdout")).unwrap(),
        "via-binary\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("stderr")).unwrap(),
        "err-binary\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("env")).unwrap().trim(),
        format!("lb1 {}", c.namespace())
    );
    c.stop_and_check();
}

#[test]
fn runtime_config_path_with_runsc_config_and_id() {
    let c = Containerd::start();
    let logs = c.dir().join("runsc-logs");
    let cfg = c.dir().join("runsc.toml");
    fs::write(
        &cfg,
        format!(
            "log_level = \"debug\"\nlog_path = \"{}/shim/\"\n[runsc_config]\ndebug = \"true\"\ndebug-log = \"{}/%ID%/\"\n",
            logs.display(),
            logs.display()
        ),
    )
    .unwrap();
    let out = c.run(
        "cfg1",
        &["--runtime-config-path", cfg.to_str().unwrap()],
        &["echo", "configured"],
    );
    assert_eq!(out.code(), 0, "{}\n{}", out.err(), c.log_tail(20));
    assert_eq!(out.out(), "configured\n");
    let per_id = logs.join("cfg1");
    let n = fs::read_dir(&per_id).map(|d| d.count()).unwrap_or(0);
    assert!(n > 0, "no runsc debug logs in {}", per_id.display());
    // log_path ending in '/' gets runsc-shim-<id>.log, as gVisor's shim does.
    let shim_log = fs::read_to_string(logs.join("shim/runsc-shim-cfg1.log")).unwrap_or_default();
    assert!(shim_log.contains("id=cfg1"), "shim log: {shim_log:?}");
    c.stop_and_check();
}

#[test]
fn bad_input_is_refused_cleanly() {
    let c = Containerd::start();
    // containerd itself rejects such ids; the shim validates them again.
    let out = c.run("../evil", &[], &["true"]);
    assert_ne!(out.code(), 0);

    let bad = c.dir().join("bad.toml");
    fs::write(&bad, "bogus_key = 1\n").unwrap();
    let out = c.run(
        "badcfg",
        &["--runtime-config-path", bad.to_str().unwrap()],
        &["true"],
    );
    assert_ne!(out.code(), 0);
    assert!(out.err().contains("bogus_key"), "{}", out.err());

    let missing = c.dir().join("missing.toml");
    fs::write(&missing, "binary_name = \"/nonexistent/runsc\"\n").unwrap();
    let out = c.run(
        "nobin",
        &["--runtime-config-path", missing.to_str().unwrap()],
        &["true"],
    );
    assert_ne!(out.code(), 0);
    assert!(out.err().contains("/nonexistent/runsc"), "{}", out.err());
    c.stop_and_check();
}
