//! `docker exec` (user, working directory, environment, stdin, exit codes,
//! `-it`) and `docker run -it`: the terminal inside has the size of the
//! terminal outside.

use std::{fs, process::Stdio};

use test_support::{docker::DOCKER_LIMIT, host::output_within};

use crate::{assert_ok, run_detached, Dockerd, OutputExt, IMAGE, SLEEP};

/// Terminal sizes (columns, rows) the `-it` tests try in turn.
const SIZES: [(u16, u16); 5] = [(80, 24), (132, 43), (41, 17), (200, 60), (97, 31)];

/// The `rows columns` line `stty size` printed on a terminal, if any
/// (`script` may echo a NUL before it as `^@`).
fn stty_size(out: &str) -> Option<(u16, u16)> {
    out.lines().find_map(|l| {
        let mut f = l.trim().trim_start_matches("^@").split_whitespace();
        let (rows, cols) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
        f.next().is_none().then_some((cols, rows))
    })
}

on_both_runtimes! {
    /// `exec -u`, `-w` and `-e` set the process's user, directory and
    /// environment; its exit code is `docker exec`'s.
    fn exec_options(d, rt) {
        run_detached(d, rt, "box", &["-e", "FROM_RUN=run"], SLEEP);
        let text = |args: &[&str]| {
            let mut all = vec!["exec"];
            all.extend_from_slice(args);
            d.docker_text(&all)
        };
        assert_eq!(text(&["box", "id", "-u"]), "0");
        assert_eq!(text(&["-u", "1000:1001", "box", "sh", "-c", "id -u; id -g"]), "1000\n1001");
        assert_eq!(text(&["-u", "root", "box", "id", "-un"]), "root");
        assert_eq!(text(&["box", "pwd"]), "/");
        assert_eq!(text(&["-w", "/etc", "box", "pwd"]), "/etc");
        assert_eq!(
            text(&["-e", "FOO=bar", "-e", "FROM_RUN=exec", "box", "sh", "-c", "echo $FOO $FROM_RUN"]),
            "bar exec"
        );
        assert_eq!(text(&["box", "sh", "-c", "echo $FROM_RUN"]), "run");
        for code in [0, 1, 4, 126] {
            let out = d.docker(&["exec", "box", "sh", "-c", &format!("exit {code}")]);
            assert_eq!(out.code(), code, "{}", out.err());
        }
        // Docker's code for an exec that could not start (run says 127).
        let out = d.docker(&["exec", "box", "/no/such/command"]);
        assert_eq!(out.code(), 126, "missing command: {}", out.err());
    }
}

on_both_runtimes! {
    /// `exec -i` feeds the process's stdin and closes it at the end.
    fn exec_stdin(d, rt) {
        run_detached(d, rt, "reader", &[], SLEEP);
        let input = d.dir().join("exec-input");
        let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        fs::write(&input, &text).unwrap();
        let mut cmd = d.docker_cmd();
        cmd.args(["exec", "-i", "reader", "sh", "-c", "wc -l; echo done"])
            .stdin(Stdio::from(fs::File::open(&input).unwrap()));
        let out = output_within(&mut cmd, DOCKER_LIMIT).unwrap();
        assert_ok(&out, "exec -i");
        assert_eq!(out.out().split_whitespace().collect::<Vec<_>>(), ["2000", "done"]);
    }
}

/// Runs `stty size` through `docker <what>` on terminals of each of
/// [`SIZES`], asserting the size inside is the size outside.
fn sizes_match(d: &Dockerd, what: &str) {
    for (cols, rows) in SIZES {
        let out = d.docker_in_tty(cols, rows, &format!("{what} stty size"));
        let text = out.out();
        assert_eq!(
            stty_size(&text),
            Some((cols, rows)),
            "docker {what} stty size on a {cols}x{rows} terminal printed {text:?} (stderr {:?})",
            out.err()
        );
    }
}

on_both_runtimes! {
    /// `docker run -it`: the container's terminal has the outer terminal's
    /// size from its first instruction on (Docker sends it as the spec's
    /// `process.consoleSize`, then resizes).
    fn run_it_terminal_size(d, rt) {
        sizes_match(d, &format!("run --rm -it --runtime {} {IMAGE}", rt.name()));
        let out = d.docker_in_tty(
            80,
            24,
            &format!("run --rm -it --runtime {} {IMAGE} sh -c 'exit 9'", rt.name()),
        );
        assert_eq!(out.code(), 9, "run -it's exit code: {:?}", out.out());
    }
}

on_both_runtimes! {
    /// `docker exec -it`: the exec's terminal has the outer terminal's size.
    fn exec_it_terminal_size(d, rt) {
        run_detached(d, rt, "tty-box", &[], SLEEP);
        sizes_match(d, "exec -it tty-box");
    }
}

#[test]
fn stty_size_reads_rows_then_columns() {
    assert_eq!(stty_size("junk\r\n24 80\r\n"), Some((80, 24)));
    assert_eq!(stty_size("WARNING: ...\r\n^@43 132\r\n"), Some((132, 43)));
    assert_eq!(stty_size("stty: standard input\n"), None);
}
