//! A `containerd-shim-runsc-v1` that records the verb containerd ran it with
//! (`start`, `delete`) and then runs ours: put first on containerd's `PATH`,
//! it shows how often containerd runs the shim binary.

use std::path::PathBuf;

use tempfile::TempDir;

/// The recording wrapper, in a directory of its own.
pub struct RecordingShim {
    dir: TempDir,
}

impl RecordingShim {
    pub fn new() -> RecordingShim {
        let dir = tempfile::Builder::new()
            .prefix("shim-verbs-")
            .tempdir()
            .unwrap();
        let real = test_support::containerd::shim_dir().join("containerd-shim-runsc-v1");
        // containerd runs the wrapper from a bundle, not from here.
        let real = std::fs::canonicalize(&real).unwrap_or(real);
        test_support::host::write_script(
            &dir.path().join("containerd-shim-runsc-v1"),
            &format!(
                "#!/bin/sh\nfor a; do case $a in start|delete) echo $a >> {};; esac; done\nexec {} \"$@\"\n",
                dir.path().join("verbs").display(),
                real.display()
            ),
        );
        RecordingShim { dir }
    }

    /// The directory to put first on containerd's `PATH`.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// How many times containerd ran the shim with `verb` so far.
    pub fn count(&self, verb: &str) -> usize {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == verb)
            .count()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("verbs")
    }
}

impl Default for RecordingShim {
    fn default() -> Self {
        Self::new()
    }
}
