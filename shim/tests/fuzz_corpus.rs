//! Replays `fuzz/corpus/` (the checked-in seeds, and the inputs of every
//! finding, kept as `regression-*` files) through each fuzz target's entry
//! point on the stable toolchain, so `make unit` holds what the fuzzers
//! found fixed without libFuzzer or nightly. Also checks that `fuzz/` and
//! [`TARGETS`] name the same targets.

use std::{fs, path::PathBuf};

use containerd_shim_runsc::fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn names_in(dir: &str, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(fuzz_dir().join(dir))
        .unwrap_or_else(|e| panic!("read fuzz/{dir}: {e}"))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|n| n.strip_suffix(suffix).map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn fuzz_targets_corpus_and_entry_points_agree() {
    let mut listed: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(names_in("fuzz_targets", ".rs"), listed, "fuzz/fuzz_targets");
    assert_eq!(names_in("corpus", ""), listed, "fuzz/corpus");
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &listed {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

#[test]
fn every_corpus_input_is_handled() {
    for (name, target) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let mut inputs = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // A panic names the input through the test's output.
            eprintln!("{name}: {}", path.display());
            target(&data);
            inputs += 1;
        }
        assert!(inputs > 0, "no seed inputs for {name}");
    }
}
