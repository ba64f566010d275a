//! Runtime options: TOML files, the Any forms containerd sends, defaults.

use super::*;

fn encode(type_url: &str, path: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for (tag, s) in [(0x0a_u8, type_url), (0x12, path)] {
        if s.is_empty() {
            continue;
        }
        v.push(tag);
        v.push(s.len() as u8);
        v.extend_from_slice(s.as_bytes());
    }
    v
}

pub(crate) fn any(type_url: &str, value: Vec<u8>) -> Any {
    Any {
        type_url: type_url.into(),
        value,
        ..Default::default()
    }
}

#[test]
fn no_options_means_defaults() {
    assert_eq!(Options::from_any(None).unwrap(), Options::default());
    assert_eq!(
        Options::from_any(Some(&Any::default())).unwrap(),
        Options::default()
    );
}

#[test]
fn reads_the_toml_file_named_by_config_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("runsc.toml");
    std::fs::write(
        &p,
        r#"binary_name = "/usr/bin/runsc"
root = "/run/x"
log_path = "/var/log/runsc/%ID%/shim.log"
log_level = "debug"
io_uid = 7
shim_cgroup = "/shims"
task_api = "v2"
[runsc_config]
network = "none"
debug = true
debug-log = "/var/log/runsc/%ID%/"
"#,
    )
    .unwrap();
    // ctr --runtime-config-path leaves the inner type_url empty.
    for inner in ["", "io.containerd.runsc.v1.options"] {
        let a = any(
            "runtimeoptions.v1.Options",
            encode(inner, p.to_str().unwrap()),
        );
        let o = Options::from_any(Some(&a)).unwrap();
        assert_eq!(o.binary_name, "/usr/bin/runsc");
        assert_eq!(o.runsc_root("k8s.io"), "/run/x/k8s.io");
        assert_eq!(o.io_uid, 7);
        assert_eq!(o.shim_cgroup, "/shims");
        assert_eq!(o.task_api, TaskApiChoice::V2);
        assert_eq!(o.runsc_config["network"], "none");
        assert_eq!(o.runsc_config["debug"], "true");
    }
}

#[test]
fn the_documented_runsc_toml_sets_only_defaults() {
    let text = include_str!("../../config/runsc.toml");
    assert_eq!(
        Options::from_toml(text, "config/runsc.toml").unwrap(),
        Options::default()
    );
    // Every commented-out example is a key the shim takes.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(kv)
                if kv.split_whitespace().nth(1) == Some("=")
                    && kv.starts_with(|c: char| c.is_ascii_lowercase()) =>
            {
                format!("{kv}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    let o = Options::from_toml(&uncommented, "uncommented").unwrap();
    assert_eq!(o.log_level, "debug");
    assert_eq!(o.runsc_config["overlay2"], "root:self");
    assert_eq!(o.runsc_timeouts["exec-detach"], 60_000);
}

#[test]
fn bad_options_name_the_problem() {
    let cases = [
        ("bogus_key = 1", "bogus_key"),
        ("root = 5", "root"),
        ("[runsc_config]\n\"--x\" = \"1\"", "--x"),
        ("log_level = \"loud\"", "log_level"),
        ("root = ", "invalid"),
    ];
    for (text, needle) in cases {
        let e = Options::from_toml(text, "t.toml").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{text}");
        assert!(e.to_string().contains(needle), "{text}: {e}");
    }
}

#[test]
fn runc_create_options_are_accepted() {
    // no_pivot_root=true (1), shim_cgroup="/shims" (9), io_uid=7 (10),
    // io_gid=8 (11), criu_image_path="/x" (13).
    let mut v = vec![0x08, 1, 0x4a, 6];
    v.extend_from_slice(b"/shims");
    v.extend_from_slice(&[0x50, 7, 0x58, 8, 0x6a, 2, b'/', b'x']);
    let o = Options::from_any(Some(&any("containerd.linux.runc.CreateOptions", v))).unwrap();
    assert_eq!((o.io_uid, o.io_gid), (7, 8));
    assert_eq!(o.shim_cgroup, "/shims");
    assert_eq!(o.binary_name, DEFAULT_BINARY);
}

#[test]
fn shim_owned_flags_and_timeouts() {
    for key in SHIM_OWNED_FLAGS {
        let e =
            Options::from_toml(&format!("[runsc_config]\n{key} = \"x\""), "t.toml").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{key}");
        assert!(e.to_string().contains(key), "{e}");
    }
    let o = Options::from_toml("[runsc_timeouts]\ncreate = 2.5\nkill = 0", "t").unwrap();
    assert_eq!(o.runsc_timeouts["create"], 2500);
    assert_eq!(o.runsc_timeouts["kill"], 0);
    for bad in [
        "[runsc_timeouts]\nbogus = 1",
        "[runsc_timeouts]\ncreate = -1",
    ] {
        let e = Options::from_toml(bad, "t").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad}");
    }
}

#[test]
fn unknown_type_and_missing_file_are_invalid_argument() {
    let e = Options::from_any(Some(&any("foo.Bar", vec![]))).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let a = any(
        "runtimeoptions.v1.Options",
        encode("", "/nonexistent/runsc.toml"),
    );
    let e = Options::from_any(Some(&a)).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/runsc.toml"), "{e}");
}

#[test]
fn an_options_file_that_is_not_a_small_regular_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, vec![b'#'; (OPTIONS_FILE_LIMIT + 1) as usize]).unwrap();
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // /dev/zero would never end; a FIFO would block the reader.
    for p in [Path::new("/dev/zero"), &huge, &fifo, dir.path()] {
        let a = any("runtimeoptions.v1.Options", encode("", p.to_str().unwrap()));
        let e = Options::from_any(Some(&a)).unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument(_)),
            "{}: {e}",
            p.display()
        );
    }
}
