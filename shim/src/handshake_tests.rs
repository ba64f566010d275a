//! The start handshake against what real containerds wrote to `start`'s
//! stdin (`shim/tests/fixtures/handshake/*.stdin`, recorded from
//! `ctr run --runtime io.containerd.runsc.v1 [--runtime-config-path F]`
//! through a shim that saved its stdin), and the replies each accepted
//! (`*.reply`: containerd 2.3.7 logged `version=3` for its reply, 1.7.24
//! connected with the text one).

use std::path::Path;

use super::*;
use crate::options::tests::any;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/handshake");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
}

/// The `runtimeoptions.v1.Options` value `ctr --runtime-config-path F` sends.
fn config_path_options(path: &str) -> Vec<u8> {
    let mut v = vec![0x12, path.len() as u8];
    v.extend_from_slice(path.as_bytes());
    v
}

#[test]
fn containerd_1_7_sends_a_bare_any_and_reads_the_address_as_text() {
    let h = Handshake::parse(&fixture("containerd-1.7.24-options.stdin")).unwrap();
    assert_eq!(h.caller, Caller::Legacy);
    assert_eq!(h.task_api(TaskApiChoice::Auto), TaskApi::V2);
    let o = h.options.as_ref().unwrap();
    assert_eq!(o.type_url, "runtimeoptions.v1.Options");
    assert_eq!(o.value, config_path_options("/tmp/hs/c-c17/runsc.toml"));
    let accepted = fixture("containerd-1.7.24-options.reply");
    let address = std::str::from_utf8(&accepted).unwrap();
    assert_eq!(h.reply(address, TaskApi::V2).unwrap(), accepted);
}

#[test]
fn no_options_from_containerd_1_7_is_empty_stdin() {
    let h = Handshake::parse(&fixture("containerd-1.7.24-none.stdin")).unwrap();
    assert_eq!(h.caller, Caller::Legacy);
    assert_eq!(h.options, None);
}

#[test]
fn containerd_2_0_sends_what_1_7_sends() {
    let h = Handshake::parse(&fixture("containerd-2.0.14-options.stdin")).unwrap();
    assert_eq!(h.caller, Caller::Legacy);
    assert_eq!(h.task_api(TaskApiChoice::Auto), TaskApi::V2);
    assert_eq!(
        h.options.unwrap().value,
        config_path_options("/tmp/hs/c-c20/runsc.toml")
    );
}

#[test]
fn containerd_2_3_sends_bootstrap_params_and_reads_a_bootstrap_result() {
    let h = Handshake::parse(&fixture("containerd-2.3.7-options.stdin")).unwrap();
    assert_eq!(
        h.caller,
        Caller::Bootstrap {
            containerd_version: "2.3.7+unknown".into(),
            log_level: LevelFilter::Debug,
            socket_dir: Some("/run/containerd/s".into()),
        }
    );
    assert_eq!(h.task_api(TaskApiChoice::Auto), TaskApi::V3);
    let o = h.options.as_ref().unwrap();
    assert_eq!(o.type_url, "runtimeoptions.v1.Options");
    assert_eq!(o.value, config_path_options("/tmp/hs/c-c23/runsc.toml"));

    let accepted = fixture("containerd-2.3.7-options.reply");
    let r = BootstrapResult::parse_from_bytes(&accepted).unwrap();
    assert_eq!((r.version, r.protocol.as_str()), (3, "ttrpc"));
    assert_eq!(h.reply(&r.address, TaskApi::V3).unwrap(), accepted);
}

#[test]
fn task_api_v2_can_be_chosen_for_containerd_2_3() {
    let h = Handshake::parse(&fixture("containerd-2.3.7-options.stdin")).unwrap();
    assert_eq!(h.task_api(TaskApiChoice::V2), TaskApi::V2);
    let r = BootstrapResult::parse_from_bytes(&h.reply("unix:///s", TaskApi::V2).unwrap());
    assert_eq!(r.unwrap().version, 2);
    let legacy = Handshake::parse(b"").unwrap();
    assert_eq!(legacy.task_api(TaskApiChoice::Auto), TaskApi::V2);
}

#[test]
fn no_options_from_containerd_2_3_is_params_without_extensions() {
    let h = Handshake::parse(&fixture("containerd-2.3.7-none.stdin")).unwrap();
    assert!(matches!(h.caller, Caller::Bootstrap { .. }));
    assert_eq!(h.options, None);
}

fn params(extensions: Vec<Any>) -> Vec<u8> {
    BootstrapParams {
        instance_id: "c1".into(),
        namespace: "k8s.io".into(),
        containerd_version: "2.4.2".into(),
        extensions: extensions
            .into_iter()
            .map(|a| Extension {
                value: Some(a).into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .write_to_bytes()
    .unwrap()
}

#[test]
fn the_runtime_options_are_found_among_other_extensions() {
    let opts = any(
        "type.googleapis.com/runtimeoptions.v1.Options",
        config_path_options("/etc/containerd/runsc.toml"),
    );
    let raw = params(vec![
        any("containerd.io/nri.v1.PluginConfig", vec![1, 2, 3]),
        opts.clone(),
    ]);
    assert_eq!(Handshake::parse(&raw).unwrap().options, Some(opts));
}

#[test]
fn a_bare_any_with_a_binary_value_stays_legacy() {
    // Not UTF-8, so it would not even parse as BootstrapParams' namespace.
    let raw = any("containerd.runc.v1.Options", vec![0x42, 0xff, 0xfe])
        .write_to_bytes()
        .unwrap();
    let h = Handshake::parse(&raw).unwrap();
    assert_eq!(h.caller, Caller::Legacy);
    assert_eq!(h.options.unwrap().value, vec![0x42, 0xff, 0xfe]);
}

#[test]
fn garbage_on_stdin_is_an_invalid_argument() {
    let e = Handshake::parse(b"\xff\xff\xff").unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

#[test]
fn containerd_log_levels_map_to_the_nearest_of_ours() {
    for (level, want) in [
        (-8, LevelFilter::Trace),
        (-4, LevelFilter::Debug),
        (0, LevelFilter::Info),
        (4, LevelFilter::Warn),
        (8, LevelFilter::Error),
        (12, LevelFilter::Error),
        (-100, LevelFilter::Trace),
        (-1, LevelFilter::Info),
    ] {
        assert_eq!(level_filter(level), want, "{level}");
    }
}

#[test]
fn the_socket_goes_into_the_directory_containerd_chose() {
    let legacy = Handshake::parse(b"").unwrap();
    let default = legacy.socket_address("/run/containerd/containerd.sock", "k8s.io", "pod");
    let hash = default.strip_prefix("unix:///run/containerd/s/").unwrap();
    assert_eq!(hash.len(), 64);

    let mut raw = BootstrapParams::parse_from_bytes(&params(vec![])).unwrap();
    raw.socket_dir = Some("/run/k/s".into());
    let h = Handshake::parse(&raw.write_to_bytes().unwrap()).unwrap();
    assert_eq!(
        h.socket_address("/run/containerd/containerd.sock", "k8s.io", "pod"),
        format!("unix:///run/k/s/{hash}")
    );
}

#[test]
fn every_options_type_from_any_reads_is_recognised() {
    for name in RUNTIME_OPTIONS_TYPES_FOR_TESTS {
        assert!(Options::is_runtime_options(name), "{name}");
        assert!(Options::is_runtime_options(&format!(
            "type.googleapis.com/{name}"
        )));
        let e = Options::from_any(Some(&any(name, vec![]))).err();
        assert!(
            !e.is_some_and(|e| e.to_string().contains("unsupported")),
            "{name}"
        );
    }
    assert!(!Options::is_runtime_options(
        "containerd.io/nri.v1.PluginConfig"
    ));
}

/// What [`Options::from_any`] matches on, spelt out again so that a name
/// added there without the list (or the list without the match) fails.
const RUNTIME_OPTIONS_TYPES_FOR_TESTS: [&str; 4] = [
    "runtimeoptions.v1.Options",
    "cri.runtimeoptions.v1.Options",
    "containerd.runc.v1.Options",
    "containerd.linux.runc.CreateOptions",
];
