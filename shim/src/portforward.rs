//! `kubectl port-forward` to a pod whose network is gVisor's.
//!
//! containerd's CRI plugin serves PortForward itself: it enters the pod's
//! network namespace on the host kernel and dials `127.0.0.1:<port>`. The
//! pod's sockets are in the sandbox's network stack, so nothing answers
//! there. For each pod sandbox on runsc's own network stack the shim
//!
//! - listens on 127.0.0.1 in the pod's namespace (a socket made by a
//!   thread of its own that entered the namespace),
//! - adds one nat rule in that namespace, and only there, that steers every
//!   TCP connection to 127.0.0.1 to that listener,
//! - and for each connection reads the port it was for (`SO_ORIGINAL_DST`)
//!   and reaches that port in the sandbox: through the sandbox
//!   (`Runsc::connect_port`, runsc 0.0~20240729), else at the pod's own
//!   address from the host (runsc 0.0~20221219; the addresses are read
//!   before runsc takes them over at start).
//!
//! It all goes when the sandbox exits: the connections, the listener (which
//! would otherwise keep the namespace alive) and the rule.

use std::{
    net::Ipv4Addr,
    os::fd::AsFd,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, OnceLock},
};

use runsc::{ProcessMonitor, Runsc};
use tokio::{net::TcpStream, task::JoinHandle};

use crate::{
    blocking::blocking,
    error::{Error, Result},
};

/// The port-forwarding of one pod sandbox, running until [`stop`](Self::stop).
pub struct Forwarder {
    netns: PathBuf,
    /// The listener's port, once it listens (the nat rule names it).
    port: Arc<OnceLock<u16>>,
    task: JoinHandle<()>,
}

/// How the forwarder reaches a port in the sandbox.
#[derive(Debug, Clone)]
pub struct Target {
    /// The sandbox's runsc client and container id.
    pub runsc: Runsc,
    /// The sandbox container.
    pub id: String,
    /// The pod's IPv4 addresses, read before runsc took them.
    pub addresses: Vec<Ipv4Addr>,
}

impl Forwarder {
    /// Sets up forwarding into `netns` for `target` in a task of its own
    /// (off the pod's start); a failure is logged, and the pod runs on.
    pub fn start(netns: PathBuf, target: Target, monitor: Arc<dyn ProcessMonitor>) -> Forwarder {
        let port = Arc::new(OnceLock::new());
        let (ns, p) = (netns.clone(), port.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = serve(&ns, &target, &monitor, &p).await {
                log::warn!("port-forward for pod sandbox {}: {e}", target.id);
            }
        });
        Forwarder { netns, port, task }
    }

    /// Closes the listener and every forwarded connection (which would
    /// keep the namespace alive); returns the nat rule left to remove.
    pub async fn stop(self) -> Option<LeftRule> {
        self.task.abort();
        let _ = self.task.await;
        let port = *self.port.get()?;
        Some(LeftRule {
            netns: self.netns,
            port,
        })
    }
}

/// The nat rule of a stopped [`Forwarder`].
pub struct LeftRule {
    netns: PathBuf,
    port: u16,
}

impl LeftRule {
    /// Removes the rule, if the namespace is still there.
    pub async fn remove(self, monitor: &Arc<dyn ProcessMonitor>) {
        if !self.netns.exists() {
            return;
        }
        if let Err(e) = iptables(&self.netns, Rule::Delete, self.port, monitor).await {
            log::debug!(
                "remove the port-forward rule in {}: {e}",
                self.netns.display()
            );
        }
    }
}

async fn serve(
    netns: &Path,
    target: &Target,
    monitor: &Arc<dyn ProcessMonitor>,
    port: &OnceLock<u16>,
) -> Result<()> {
    let listener = {
        let ns = netns.to_path_buf();
        blocking(move || {
            in_netns(&ns, || {
                std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            })
        })
        .await?
    };
    let local = listener
        .local_addr()
        .map_err(|e| Error::os("read the port-forward listener's port", e))?
        .port();
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::os("make the port-forward listener non-blocking", e))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::os("register the port-forward listener", e))?;
    iptables(netns, Rule::Append, local, monitor).await?;
    let _ = port.set(local);
    log::debug!(
        "port-forward for pod sandbox {} on 127.0.0.1:{local} in {}",
        target.id,
        netns.display()
    );
    // Dropped with this task: every forwarded connection ends with it.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| Error::os("accept a port-forward connection", e))?;
        let target = target.clone();
        connections.spawn(async move {
            if let Err(e) = forward(stream, &target).await {
                log::warn!("port-forward into pod sandbox {}: {e}", target.id);
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Copies between one accepted connection and the port it was for.
async fn forward(mut stream: TcpStream, target: &Target) -> Result<()> {
    let port = original_port(&stream)?;
    match target.runsc.connect_port(&target.id, port).await {
        Ok(Some(inside)) => {
            inside
                .set_nonblocking(true)
                .map_err(|e| Error::os("make a port-forward stream non-blocking", e))?;
            let mut inside = tokio::net::UnixStream::from_std(inside)
                .map_err(|e| Error::os("register a port-forward stream", e))?;
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut inside).await;
            return Ok(());
        }
        Ok(None) => {}
        Err(e) => {
            return Err(Error::runsc(
                format!("forward port {port} of pod sandbox {}", target.id),
                e,
            ))
        }
    }
    for addr in &target.addresses {
        if let Ok(mut pod) = TcpStream::connect((*addr, port)).await {
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut pod).await;
            return Ok(());
        }
    }
    Err(Error::Other(format!(
        "forward port {port} of pod sandbox {}: nothing answered at {:?}",
        target.id, target.addresses
    )))
}

/// The port a redirected connection was for.
fn original_port(stream: &TcpStream) -> Result<u16> {
    use nix::sys::socket::{getsockopt, sockopt::OriginalDst};
    let dst = getsockopt(&stream.as_fd(), OriginalDst)
        .map_err(|e| Error::os("read a port-forward connection's port", e.into()))?;
    Ok(u16::from_be(dst.sin_port))
}

/// The pod's IPv4 addresses in `netns` (loopback aside).
pub async fn pod_addresses(netns: &Path) -> Vec<Ipv4Addr> {
    let ns = netns.to_path_buf();
    let read = blocking(move || {
        in_netns(&ns, || {
            let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
            Ok(addrs
                .filter_map(|a| a.address?.as_sockaddr_in().map(|s| s.ip()))
                .filter(|ip| !ip.is_loopback())
                .collect())
        })
    })
    .await;
    read.unwrap_or_else(|e| {
        log::debug!("addresses in {}: {e}", netns.display());
        Vec::new()
    })
}

/// Runs `work` on a thread of its own that entered `netns` (a thread's
/// network namespace is its own; this one ends with the work).
fn in_netns<T: Send + 'static>(
    netns: &Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let ns = std::fs::File::open(netns)
        .map_err(|e| Error::os(format!("open network namespace {}", netns.display()), e))?;
    let what = netns.display().to_string();
    std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        work()
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")))
    .map_err(|e| Error::os(format!("in network namespace {what}"), e))
}

/// Adding or removing the nat rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Append,
    Delete,
}

/// `nsenter --net=<netns> iptables ...` for the rule steering TCP to
/// 127.0.0.1 to `port`.
fn iptables_argv(netns: &Path, rule: Rule, port: u16) -> Vec<String> {
    let op = match rule {
        Rule::Append => "-A",
        Rule::Delete => "-D",
    };
    let mut argv = vec![format!("--net={}", netns.display()), "iptables".into()];
    argv.extend(
        [
            "-w",
            "5",
            "-t",
            "nat",
            op,
            "OUTPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1/32",
            "-j",
            "REDIRECT",
            "--to-ports",
        ]
        .map(String::from),
    );
    argv.push(port.to_string());
    argv
}

async fn iptables(
    netns: &Path,
    rule: Rule,
    port: u16,
    monitor: &Arc<dyn ProcessMonitor>,
) -> Result<()> {
    let argv = iptables_argv(netns, rule, port);
    let mut cmd = Command::new("nsenter");
    cmd.args(&argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let what = || format!("nsenter {}", argv.join(" "));
    let (mut child, exit) = monitor
        .start(&mut cmd)
        .await
        .map_err(|e| Error::os(what(), e))?;
    let stderr = child.stderr.take();
    let exit = monitor
        .wait(&child, exit)
        .await
        .map_err(|e| Error::os(what(), e))?;
    if exit.status == 0 {
        return Ok(());
    }
    let said = blocking(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut s);
        }
        Ok(s)
    })
    .await
    .unwrap_or_default();
    Err(Error::Other(format!(
        "{} exited with {}: {}",
        what(),
        exit.status,
        said.trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_confined_to_the_pods_namespace() {
        let argv = iptables_argv(Path::new("/var/run/netns/cni-1"), Rule::Append, 40123);
        assert_eq!(
            argv.join(" "),
            "--net=/var/run/netns/cni-1 iptables -w 5 -t nat -A OUTPUT -p tcp \
             -d 127.0.0.1/32 -j REDIRECT --to-ports 40123"
        );
        let del = iptables_argv(Path::new("/n"), Rule::Delete, 1);
        assert_eq!(del[6], "-D");
    }

    #[tokio::test]
    async fn addresses_of_a_namespace_that_is_gone_are_none() {
        assert!(pod_addresses(Path::new("/nonexistent/netns"))
            .await
            .is_empty());
    }
}
