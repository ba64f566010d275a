//! A container's files: `--read-only` with a `--tmpfs`, bind mounts (read
//! and write, and read-only), `docker cp` both ways and `docker commit`.
//! Files go to `/root`, not `/tmp`: gVisor mounts its own tmpfs over an
//! image's empty `/tmp`, which `docker cp` (reading the host's view of the
//! rootfs) cannot see.

use std::fs;

use crate::{assert_ok, run, run_detached, OutputExt, SLEEP};

on_both_runtimes! {
    /// `--read-only` refuses writes to the rootfs; a `--tmpfs` is writable.
    fn read_only_with_tmpfs(d, rt) {
        let ro = ["--read-only", "--tmpfs", "/scratch:size=16m"];
        let out = run(d, rt, &ro, &["sh", "-c", "echo x > /root/file"]);
        assert_ne!(out.code(), 0, "a write to a read-only rootfs worked");
        assert!(out.err().contains("Read-only file system"), "{}", out.err());
        let out = run(
            d,
            rt,
            &ro,
            &["sh", "-c", "echo kept > /scratch/f && cat /scratch/f && grep ' /scratch ' /proc/mounts"],
        );
        assert_ok(&out, "write to the tmpfs");
        let text = out.out();
        assert!(text.starts_with("kept\n") && text.contains("tmpfs"), "{text}");
    }
}

on_both_runtimes! {
    /// `-v host:container` shares files both ways; `:ro` refuses writes.
    fn bind_mounts(d, rt) {
        let host = d.dir().join("shared");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("in"), "from-host\n").unwrap();
        let volume = format!("{}:/data", host.display());
        let out = run(
            d,
            rt,
            &["-v", &volume],
            &["sh", "-c", "cat /data/in && echo from-container > /data/out"],
        );
        assert_ok(&out, "run with a bind mount");
        assert_eq!(out.out(), "from-host\n");
        assert_eq!(fs::read_to_string(host.join("out")).unwrap(), "from-container\n");

        let read_only = format!("{}:/data:ro", host.display());
        let out = run(d, rt, &["-v", &read_only], &["sh", "-c", "cat /data/in && touch /data/new"]);
        assert_eq!(out.out(), "from-host\n");
        assert_ne!(out.code(), 0, "a write to a read-only bind mount worked");
        assert!(!host.join("new").exists());
    }
}

on_both_runtimes! {
    /// `docker cp` into a running container and out of it.
    fn cp_in_and_out(d, rt) {
        run_detached(d, rt, "files", &[], SLEEP);
        let host = d.dir().join("cp");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("in.txt"), "copied-in\n").unwrap();
        let src = host.join("in.txt").to_string_lossy().into_owned();
        d.docker_ok(&["cp", &src, "files:/root/in.txt"]);
        assert_eq!(d.docker_text(&["exec", "files", "cat", "/root/in.txt"]), "copied-in");

        d.docker_ok(&["exec", "files", "sh", "-c", "mkdir -p /root/out && echo made-inside > /root/out/f"]);
        let dst = host.join("out").to_string_lossy().into_owned();
        d.docker_ok(&["cp", "files:/root/out", &dst]);
        assert_eq!(fs::read_to_string(host.join("out/f")).unwrap(), "made-inside\n");
    }
}

on_both_runtimes! {
    /// `docker commit` makes an image of what the container wrote; a
    /// container of that image sees it.
    fn commit(d, rt) {
        run_detached(d, rt, "author", &[], SLEEP);
        d.docker_ok(&["exec", "author", "sh", "-c", "echo committed > /root/marker"]);
        d.docker_ok(&["commit", "author", "committed:test"]);
        let out = d.docker(&["run", "--rm", "--runtime", rt.name(), "committed:test", "cat", "/root/marker"]);
        assert_ok(&out, "run the committed image");
        assert_eq!(out.out(), "committed\n");
    }
}
