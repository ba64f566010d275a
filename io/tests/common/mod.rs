//! Helpers shared by the integration tests: FIFOs, a runtime stand-in
//! spawned with the RuntimeStdio fds, reader threads and a checksum.
#![allow(dead_code)]

use std::{
    fs::File,
    io::{Read, Write},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    thread::JoinHandle,
};

use nix::{sys::stat::Mode, unistd::mkfifo};
use process_monitor::{DefaultMonitor, ExitReceiver, ProcessMonitor};
use shim_io::{IoConfig, RuntimeStdio};

pub const BB: &str = "/bin/busybox";

pub fn fifo(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    mkfifo(&p, Mode::from_bits_truncate(0o600)).unwrap();
    p
}

pub fn monitor() -> Arc<dyn ProcessMonitor> {
    Arc::new(DefaultMonitor)
}

pub fn cfg(stdin: &str, stdout: &str, stderr: &str, terminal: bool) -> IoConfig {
    IoConfig {
        stdin: stdin.into(),
        stdout: stdout.into(),
        stderr: stderr.into(),
        terminal,
        uid: 0,
        gid: 0,
        container_id: "cid".into(),
        namespace: "ns".into(),
        monitor: monitor(),
    }
}

fn stdio(fd: Option<OwnedFd>) -> Stdio {
    fd.map(Stdio::from).unwrap_or_else(Stdio::null)
}

/// Spawns `args` (the runsc stand-in) with the runtime's stdio.
pub async fn spawn(rt: RuntimeStdio, args: &[&str]) -> (Child, ExitReceiver) {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdin(stdio(rt.stdin))
        .stdout(stdio(rt.stdout))
        .stderr(stdio(rt.stderr));
    let r = DefaultMonitor.start(&mut cmd).await.unwrap();
    drop(cmd);
    r
}

pub async fn wait(c: (Child, ExitReceiver)) -> i32 {
    DefaultMonitor.wait(&c.0, c.1).await.unwrap().status
}

/// Word-wise streaming checksum (fast enough in debug builds).
#[derive(Default)]
pub struct Sum {
    h: u64,
    len: u64,
    carry: Vec<u8>,
}

impl Sum {
    fn word(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(0x100_0000_01b3).rotate_left(5);
    }
    pub fn update(&mut self, mut b: &[u8]) {
        self.len += b.len() as u64;
        if !self.carry.is_empty() {
            let need = (8 - self.carry.len()).min(b.len());
            self.carry.extend_from_slice(&b[..need]);
            b = &b[need..];
            if self.carry.len() < 8 {
                return;
            }
            let w = u64::from_le_bytes(self.carry[..8].try_into().unwrap());
            self.carry.clear();
            self.word(w);
        }
        let mut it = b.chunks_exact(8);
        for c in &mut it {
            self.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        self.carry.extend_from_slice(it.remainder());
    }
    pub fn finish(mut self) -> (u64, u64) {
        let mut last = [0u8; 8];
        last[..self.carry.len()].copy_from_slice(&self.carry);
        let w = u64::from_le_bytes(last);
        self.word(w);
        self.word(self.len);
        (self.len, self.h)
    }
}

/// Writes `len` pseudo-random bytes to `path`; returns (len, checksum).
pub fn data_file(path: &Path, len: usize) -> (u64, u64) {
    let mut f = File::create(path).unwrap();
    let mut sum = Sum::default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        for c in buf[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            c.copy_from_slice(&b[..c.len()]);
        }
        sum.update(&buf[..n]);
        f.write_all(&buf[..n]).unwrap();
        left -= n;
    }
    sum.finish()
}

/// A test thread reading `path` (blocking open) to EOF: (len, checksum,
/// first 1 MiB of content).
pub fn reader(path: &Path) -> JoinHandle<(u64, u64, Vec<u8>)> {
    paced_reader(path, 1 << 20, std::time::Duration::ZERO)
}

/// Like [`reader`], reading at most `chunk` bytes every `pause`: a consumer
/// slower than the producer.
pub fn paced_reader(
    path: &Path,
    chunk: usize,
    pause: std::time::Duration,
) -> JoinHandle<(u64, u64, Vec<u8>)> {
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let mut f = File::open(&p).unwrap();
        let mut sum = Sum::default();
        let mut head = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            std::thread::sleep(pause);
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if head.len() < (1 << 20) {
                head.extend_from_slice(&buf[..n.min((1 << 20) - head.len())]);
            }
            sum.update(&buf[..n]);
        }
        let (l, h) = sum.finish();
        (l, h, head)
    })
}
