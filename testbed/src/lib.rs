//! Network-namespace test beds for qsock: two fresh network namespaces, a
//! sender and a receiver, joined by a veth pair, with IPv4 addresses from the
//! benchmarking range 198.18.0.0/15 and IPv6 addresses from a ULA prefix. A
//! routed bed ([`TestBed::routed`]) puts a router namespace between them,
//! whose link to the receiver can be made the path's bottleneck, as a home
//! router's uplink is.
//!
//! Everything is set up with the `ip` and `tc` commands of iproute2, so that a
//! person debugging a test can repeat each step by hand, and everything a
//! [`TestBed`] created is removed when it is dropped, also when a test panics.
//!
//! Beside the beds, what tests of several crates share: whether a test of
//! the sch_dwcs kernel scheduler runs here ([`dwcs_test_runs`]),
//! [`assert_mentions`] for what a program or an error said, and the C
//! compiler for checking a Rust mirror of a C header ([`strict_cc`]).
//!
//! ```no_run
//! use qsock_testbed::TestBed;
//! use std::net::UdpSocket;
//!
//! let bed = TestBed::new()?;
//! let receiver = bed.run_in_receiver(|| UdpSocket::bind((bed.receiver_v4(), 5000)))??;
//! bed.run_in_sender(|| {
//!     let socket = UdpSocket::bind((bed.sender_v4(), 0))?;
//!     socket.send_to(b"hello", (bed.receiver_v4(), 5000))
//! })??;
//! let mut buf = [0; 16];
//! let (n, _) = receiver.recv_from(&mut buf)?;
//! assert_eq!(&buf[..n], b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

use std::ffi::OsStr;
use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;

use nix::sched::{setns, CloneFlags};

mod bulk;
mod c_compiler;
mod dwcs;
mod qsockd;
mod text;
pub use bulk::BulkTransfer;
pub use c_compiler::{assert_compiles, scratch_dir, strict_cc};
pub use dwcs::{dwcs_expected, dwcs_loaded, dwcs_test_runs, DWCS_MODULE};
pub use qsockd::{Qsockd, QsockdBed, RunnableCopy, TestUser};
pub use text::assert_mentions;

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Why a test bed could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The process is not privileged enough to create namespaces.
    #[error(
        "creating a network-namespace test bed needs root (CAP_SYS_ADMIN to create and enter \
         namespaces, CAP_NET_ADMIN to configure links and qdiscs): {0}"
    )]
    NeedsRoot(String),
    /// A router was asked of a bed that has none.
    #[error("this test bed has no router: make it with TestBed::routed")]
    NotRouted,
    /// A command could not be started at all (not installed?).
    #[error("could not run `{command}`: {source} (is iproute2 installed?)")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote on standard error.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("could not enter network namespace {namespace}: {source}")]
    Enter {
        /// The namespace.
        namespace: String,
        /// The error of `open` or `setns`.
        source: std::io::Error,
    },
    /// The closure run inside a namespace panicked; the panic message.
    #[error("the code run in namespace {namespace} panicked: {message}")]
    Panicked {
        /// The namespace.
        namespace: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// Traffic the test bed carries for a test (a bulk transfer) failed.
    #[error("{what}: {source}")]
    Traffic {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Test beds made by this process so far, to name the next one uniquely.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two network namespaces joined by a veth pair; see the crate documentation.
#[derive(Debug)]
pub struct TestBed {
    sender_ns: String,
    receiver_ns: String,
    sender_dev: String,
    receiver_dev: String,
    subnet: u8,
    router: Option<Router>,
    /// Namespaces that exist and must be deleted on drop, in creation order.
    created: Vec<String>,
}

/// A host attached to a routed bed's router beside the sender
/// ([`TestBed::add_router_host`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterHost {
    namespace: String,
    v4: Ipv4Addr,
}

impl RouterHost {
    /// Its namespace, as `ip netns` names it.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its IPv4 address.
    pub fn v4(&self) -> Ipv4Addr {
        self.v4
    }
}

/// The router of a routed bed: its namespace and its two links.
#[derive(Debug)]
struct Router {
    ns: String,
    /// Its end of the link to the sender.
    sender_side_dev: String,
    /// Its end of the link to the receiver: where a bottleneck goes.
    receiver_side_dev: String,
}

impl TestBed {
    /// Creates the namespaces, the veth pair, the addresses, and brings every
    /// link (loopback too) up. Whatever was created is removed again if a
    /// later step fails.
    pub fn new() -> Result<TestBed> {
        TestBed::build(false)
    }

    /// A bed with a router namespace between sender and receiver: the sender
    /// on 198.18.X.0/24 and fd51:7173:X::/64, the receiver on 198.19.X.0/24
    /// and fd51:7174:X::/64, each with a default route through the router
    /// (.254, ::fe), which forwards between them.
    pub fn routed() -> Result<TestBed> {
        TestBed::build(true)
    }

    fn build(routed: bool) -> Result<TestBed> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::NeedsRoot(format!(
                "this process runs as uid {}; run the tests as root, or set \
                 QSOCK_SKIP_PRIVILEGED=1 to skip the privileged ones",
                nix::unistd::geteuid()
            )));
        }
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // The subnet only has to be unique per namespace pair; varying it with
        // pid and counter makes captures from parallel tests easier to tell apart.
        let subnet = ((pid.wrapping_add(n)) % 250 + 1) as u8;
        let mut bed = TestBed {
            sender_ns: format!("{}{n}-snd", namespace_prefix(pid)),
            receiver_ns: format!("{}{n}-rcv", namespace_prefix(pid)),
            // Interface names have at most 15 bytes: "qsk" + pid (<= 7) + side + n.
            sender_dev: short_name(pid, 's', n),
            receiver_dev: short_name(pid, 'r', n),
            subnet,
            router: routed.then(|| Router {
                ns: format!("{}{n}-rtr", namespace_prefix(pid)),
                sender_side_dev: short_name(pid, 'a', n),
                receiver_side_dev: short_name(pid, 'b', n),
            }),
            created: Vec::new(),
        };
        // On any error `bed` is dropped here, deleting what was created so far.
        bed.set_up()?;
        Ok(bed)
    }

    fn set_up(&mut self) -> Result<()> {
        let router = self.router.as_ref().map(|router| {
            (
                router.ns.clone(),
                router.sender_side_dev.clone(),
                router.receiver_side_dev.clone(),
            )
        });
        let mut namespaces = vec![self.sender_ns.clone(), self.receiver_ns.clone()];
        namespaces.extend(router.iter().map(|(ns, _, _)| ns.clone()));
        for ns in namespaces {
            run(Command::new("ip").args(["netns", "add", &ns]))?;
            self.created.push(ns.clone());
            self.ip(&ns, &["link", "set", "lo", "up"])?;
            // Link-local addresses are usable at once too: neighbour
            // discovery through the router needs them.
            run(command_in(
                &ns,
                "sysctl",
                ["-q", "-w", "net.ipv6.conf.default.accept_dad=0"],
            )
            .stdout(std::process::Stdio::null()))?;
        }
        let (sender_ns, receiver_ns) = (self.sender_ns.clone(), self.receiver_ns.clone());
        let (sender_dev, receiver_dev) = (self.sender_dev.clone(), self.receiver_dev.clone());
        let (sender_v4, receiver_v4) = (self.sender_v4(), self.receiver_v4());
        let (sender_v6, receiver_v6) = (self.sender_v6(), self.receiver_v6());
        let Some((router_ns, to_sender, to_receiver)) = router else {
            veth((&sender_ns, &sender_dev), (&receiver_ns, &receiver_dev))?;
            self.address(&sender_ns, &sender_dev, sender_v4, sender_v6)?;
            return self.address(&receiver_ns, &receiver_dev, receiver_v4, receiver_v6);
        };
        veth((&sender_ns, &sender_dev), (&router_ns, &to_sender))?;
        veth((&router_ns, &to_receiver), (&receiver_ns, &receiver_dev))?;
        let gateway = |v4: Ipv4Addr, v6: Ipv6Addr| {
            let [a, b, c, _] = v4.octets();
            let mut segments = v6.segments();
            segments[7] = 0xfe;
            (Ipv4Addr::new(a, b, c, 254), Ipv6Addr::from(segments))
        };
        let (sender_gateway_v4, sender_gateway_v6) = gateway(sender_v4, sender_v6);
        let (receiver_gateway_v4, receiver_gateway_v6) = gateway(receiver_v4, receiver_v6);
        self.address(&sender_ns, &sender_dev, sender_v4, sender_v6)?;
        self.address(&router_ns, &to_sender, sender_gateway_v4, sender_gateway_v6)?;
        self.address(
            &router_ns,
            &to_receiver,
            receiver_gateway_v4,
            receiver_gateway_v6,
        )?;
        self.address(&receiver_ns, &receiver_dev, receiver_v4, receiver_v6)?;
        for (ns, v4, v6) in [
            (&sender_ns, sender_gateway_v4, sender_gateway_v6),
            (&receiver_ns, receiver_gateway_v4, receiver_gateway_v6),
        ] {
            self.ip(ns, &["route", "add", "default", "via", &v4.to_string()])?;
            self.ip(
                ns,
                &["-6", "route", "add", "default", "via", &v6.to_string()],
            )?;
        }
        run(command_in(
            &router_ns,
            "sysctl",
            [
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
            ],
        )
        .stdout(std::process::Stdio::null()))?;
        Ok(())
    }

    /// Gives `dev` in `ns` its two addresses and brings it up.
    fn address(&self, ns: &str, dev: &str, v4: Ipv4Addr, v6: Ipv6Addr) -> Result<()> {
        self.ip(ns, &["addr", "add", &format!("{v4}/24"), "dev", dev])?;
        // nodad: the address is usable at once instead of after duplicate
        // address detection, which would make the first IPv6 send fail.
        self.ip(
            ns,
            &[
                "-6",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ],
        )?;
        self.ip(ns, &["link", "set", dev, "up"])?;
        Ok(())
    }

    /// The router's namespace; [`Error::NotRouted`] for a bed without one.
    pub fn router_ns(&self) -> Result<&str> {
        self.router
            .as_ref()
            .map(|router| router.ns.as_str())
            .ok_or(Error::NotRouted)
    }

    /// Attaches a host of its own to the router (a namespace, 198.19.255.1
    /// and fd51:7175::1, its default route through the router): traffic it
    /// sends to the receiver crosses the router's bottleneck without
    /// passing the sender's device, as a neighbour's traffic does on a
    /// shared uplink. It is removed with the bed.
    pub fn add_router_host(&mut self) -> Result<RouterHost> {
        let router_ns = self.router_ns()?.to_owned();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let host = RouterHost {
            namespace: format!("{}{n}-hst", namespace_prefix(pid)),
            v4: Ipv4Addr::new(198, 19, 255, 1),
        };
        let (host_dev, router_dev) = (short_name(pid, 'h', n), short_name(pid, 'c', n));
        run(Command::new("ip").args(["netns", "add", &host.namespace]))?;
        self.created.push(host.namespace.clone());
        self.ip(&host.namespace, &["link", "set", "lo", "up"])?;
        veth((&host.namespace, &host_dev), (&router_ns, &router_dev))?;
        // 198.19.255.0/24 and fd51:7175::/64: no bed's sender or receiver
        // subnet (X is at most 251) uses them.
        let host_v6 = Ipv6Addr::new(0xfd51, 0x7175, 0, 0, 0, 0, 0, 1);
        let (gateway_v4, gateway_v6) = (
            Ipv4Addr::new(198, 19, 255, 254),
            Ipv6Addr::new(0xfd51, 0x7175, 0, 0, 0, 0, 0, 0xfe),
        );
        self.address(&host.namespace, &host_dev, host.v4, host_v6)?;
        self.address(&router_ns, &router_dev, gateway_v4, gateway_v6)?;
        self.ip(
            &host.namespace,
            &["route", "add", "default", "via", &gateway_v4.to_string()],
        )?;
        self.ip(
            &host.namespace,
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &gateway_v6.to_string(),
            ],
        )?;
        Ok(host)
    }

    /// The router's end of its link to the receiver: the path's bottleneck
    /// goes on its egress.
    pub fn router_egress_dev(&self) -> Result<&str> {
        self.router
            .as_ref()
            .map(|router| router.receiver_side_dev.as_str())
            .ok_or(Error::NotRouted)
    }

    /// Makes the router's link to the receiver a token-bucket bottleneck of
    /// `rate` with a `burst` and a queue of `latency` (tc syntax, e.g.
    /// "1500kbit", "15k", "300ms"), replacing what was there: a change of
    /// rate takes effect at once on the traffic running.
    pub fn set_router_bottleneck(&self, rate: &str, burst: &str, latency: &str) -> Result<()> {
        let dev = self.router_egress_dev()?.to_owned();
        self.tc_in_router(&[
            "qdisc", "replace", "dev", &dev, "root", "tbf", "rate", rate, "burst", burst,
            "latency", latency,
        ])?;
        Ok(())
    }

    /// Runs `tc ARGS` in the router's namespace and returns its standard
    /// output.
    pub fn tc_in_router(&self, args: &[&str]) -> Result<String> {
        let output = run(&mut command_in(self.router_ns()?, "tc", args))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Puts a token-bucket filter of `rate` (tc syntax, e.g. `"10mbit"`) as the
    /// root qdisc of the sender's veth: a bottleneck for baselines that run
    /// without a qsock scheduler (`tc qdisc replace dev DEV root tbf ...`).
    pub fn with_bottleneck(self, rate: &str) -> Result<TestBed> {
        self.tc_in_sender(&[
            "qdisc",
            "replace",
            "dev",
            &self.sender_dev,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kbit",
            "latency",
            "100ms",
        ])?;
        Ok(self)
    }

    /// Sets the MTU of the sender's veth (`ip link set dev DEV mtu MTU`),
    /// for links with larger frames than Ethernet's.
    pub fn set_sender_mtu(&self, mtu: u32) -> Result<()> {
        self.ip(
            &self.sender_ns,
            &[
                "link",
                "set",
                "dev",
                &self.sender_dev,
                "mtu",
                &mtu.to_string(),
            ],
        )?;
        Ok(())
    }

    /// Runs `tc ARGS` in the sender's namespace and returns its standard output.
    pub fn tc_in_sender(&self, args: &[&str]) -> Result<String> {
        let output = run(Command::new("ip")
            .args(["netns", "exec", &self.sender_ns, "tc"])
            .args(args))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The sender's namespace, as `ip netns` names it.
    pub fn sender_ns(&self) -> &str {
        &self.sender_ns
    }

    /// The receiver's namespace, as `ip netns` names it.
    pub fn receiver_ns(&self) -> &str {
        &self.receiver_ns
    }

    /// The sender's end of the veth pair (in the sender's namespace).
    pub fn sender_dev(&self) -> &str {
        &self.sender_dev
    }

    /// The receiver's end of the veth pair (in the receiver's namespace).
    pub fn receiver_dev(&self) -> &str {
        &self.receiver_dev
    }

    /// The sender's IPv4 address, 198.18.X.1 (prefix /24).
    pub fn sender_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.subnet, 1)
    }

    /// The receiver's IPv4 address, 198.18.X.2 (198.19.X.2 behind a
    /// router; prefix /24).
    pub fn receiver_v4(&self) -> Ipv4Addr {
        let network = if self.router.is_some() { 19 } else { 18 };
        Ipv4Addr::new(198, network, self.subnet, 2)
    }

    /// The sender's IPv6 address, fd51:7173:X::1 (prefix /64).
    pub fn sender_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd51, 0x7173, u16::from(self.subnet), 0, 0, 0, 0, 1)
    }

    /// The receiver's IPv6 address, fd51:7173:X::2 (fd51:7174:X::2 behind a
    /// router; prefix /64).
    pub fn receiver_v6(&self) -> Ipv6Addr {
        let network = if self.router.is_some() {
            0x7174
        } else {
            0x7173
        };
        Ipv6Addr::new(0xfd51, network, u16::from(self.subnet), 0, 0, 0, 0, 2)
    }

    /// Runs `f` on a new thread that has entered the sender's namespace, so
    /// that sockets it creates live there (they stay there when returned), and
    /// returns what `f` returned. A panic in `f` becomes [`Error::Panicked`].
    pub fn run_in_sender<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> Result<T> {
        run_in(&self.sender_ns, f)
    }

    /// Like [`TestBed::run_in_sender`], in the receiver's namespace.
    pub fn run_in_receiver<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> Result<T> {
        run_in(&self.receiver_ns, f)
    }

    /// Starts `f` on a thread in the sender's namespace and returns at once;
    /// join the handle for `f`'s result. The thread fails with
    /// [`Error::Enter`] when it cannot enter the namespace.
    pub fn spawn_in_sender<T, F>(&self, f: F) -> thread::JoinHandle<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        spawn_in(self.sender_ns.clone(), f)
    }

    /// Like [`TestBed::spawn_in_sender`], in the receiver's namespace.
    pub fn spawn_in_receiver<T, F>(&self, f: F) -> thread::JoinHandle<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        spawn_in(self.receiver_ns.clone(), f)
    }

    /// `ip netns exec SENDER PROGRAM ARGS`, ready to run (e.g. `iperf3`).
    pub fn command_in_sender<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        command_in(&self.sender_ns, program, args)
    }

    /// `ip netns exec RECEIVER PROGRAM ARGS`, ready to run.
    pub fn command_in_receiver<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        command_in(&self.receiver_ns, program, args)
    }

    fn ip(&self, ns: &str, args: &[&str]) -> Result<Output> {
        run(Command::new("ip").args(["-n", ns]).args(args))
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end in it, which takes the
        // peer and any qdisc with it.
        for ns in self.created.drain(..).rev() {
            // An interrupted process's handler may have removed it already.
            if let Err(err) = run(Command::new("ip").args(["netns", "del", &ns])) {
                if namespace_exists(&ns) {
                    eprintln!("qsock-testbed: could not delete namespace {ns}: {err}");
                }
            }
        }
    }
}

/// Deletes every namespace this process's test beds made, and with them
/// their veth pairs and qdiscs; returns how many. For a process stopped by
/// a signal (a Ctrl-C handler), which exits without dropping its beds.
pub fn remove_this_process_beds() -> usize {
    namespaces_of(std::process::id())
        .into_iter()
        .filter(|name| run(Command::new("ip").args(["netns", "del", name])).is_ok())
        .count()
}

/// The namespaces that process `pid`'s test beds made and that are still
/// there.
pub fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = namespace_prefix(pid);
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// How the names of process `pid`'s namespaces begin.
fn namespace_prefix(pid: u32) -> String {
    format!("qsk-{pid}-")
}

/// Is the named namespace still there (`/run/netns/NAME`)?
pub fn namespace_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// Joins `a` (namespace, device) and `b` with a veth pair. Both ends are
/// born inside their namespaces, so nothing ever appears in the namespace
/// the tests run in.
fn veth(a: (&str, &str), b: (&str, &str)) -> Result<()> {
    run(Command::new("ip").args([
        "link", "add", "name", a.1, "netns", a.0, "type", "veth", "peer", "name", b.1, "netns", b.0,
    ]))?;
    Ok(())
}

fn short_name(pid: u32, side: char, n: u32) -> String {
    let name = format!("qsk{pid}{side}{n}");
    if name.len() <= 15 {
        name
    } else {
        // Only with huge counters: keep the tail, which is what makes it unique.
        name[name.len() - 15..].to_owned()
    }
}

fn command_in<I, S>(ns: &str, program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("ip");
    command.args(["netns", "exec", ns, program]).args(args);
    command
}

fn enter(ns: &str) -> Result<()> {
    let enter_err = |source| Error::Enter {
        namespace: ns.to_owned(),
        source,
    };
    let file = File::open(Path::new(NETNS_DIR).join(ns)).map_err(enter_err)?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| enter_err(errno.into()))
}

fn run_in<T: Send, F: FnOnce() -> T + Send>(ns: &str, f: F) -> Result<T> {
    // A fresh thread, because setns changes the calling thread for good and
    // the caller's thread must stay where it was.
    thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(ns)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|payload| {
                Err(Error::Panicked {
                    namespace: ns.to_owned(),
                    message: panic_message(payload.as_ref()),
                })
            })
    })
}

fn spawn_in<T, F>(ns: String, f: F) -> thread::JoinHandle<Result<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    thread::spawn(move || {
        enter(&ns)?;
        Ok(f())
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(not a string)".to_owned()
    }
}

fn run(command: &mut Command) -> Result<Output> {
    let line = format!("{command:?}").replace('"', "");
    let output = command.output().map_err(|source| Error::Spawn {
        command: line.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        return Err(Error::NeedsRoot(format!("`{line}`: {stderr}")));
    }
    Err(Error::Command {
        command: line,
        status: output.status.to_string(),
        stderr,
    })
}
