//! dwcs-vmtool: what the kernel tests of sch_dwcs need beyond `tc`, which
//! does not know kind "dwcs" (see kmod-dwcs/test/guest_robust.sh and
//! bench.sh). Run as root in the namespace that holds the device.
//!
//! - `classes`: adds and deletes N classes through rtnetlink;
//! - `fuzz`: seeded random options on the qdisc and class change paths,
//!   while traffic flows through the classes;
//! - `flood` / `sink`: a small-packet UDP flood and its receiver;
//! - `streams`: per-packet enqueue+dequeue cost with N backlogged classes.

mod nl;
mod sys;

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use nl::Nl;

#[derive(Debug, Parser)]
#[command(about = "sch_dwcs robustness and benchmark driver for the test VMs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Adds classes MAJOR:1..=COUNT (work-conserving; aperiodic unless
    /// --period-ns), checks that a dump lists them all, deletes them, checks
    /// that none is left.
    Classes {
        #[arg(long)]
        dev: String,
        #[arg(long, default_value_t = 1)]
        major: u16,
        #[arg(long, default_value_t = 10_000)]
        count: u32,
        /// The classes' period T in ns; 0 makes them aperiodic.
        #[arg(long, default_value_t = 0)]
        period_ns: u64,
        /// Leave the classes in place (no deletion, no final check).
        #[arg(long)]
        keep: bool,
    },
    /// Sends COUNT seeded random change requests to the qdisc MAJOR: and its
    /// classes; every one must be answered. Leaves the qdisc with sane
    /// options and no class above minor 8.
    Fuzz {
        #[arg(long)]
        dev: String,
        #[arg(long, default_value_t = 1)]
        major: u16,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 5000)]
        count: u32,
        /// Where the background traffic goes (through classes MAJOR:1..8).
        #[arg(long)]
        dst: Option<SocketAddr>,
    },
    /// Sends each kind of bad option to the qdisc MAJOR: and to new
    /// classes, and checks that each is refused with its errno and the
    /// kernel's explanation, and that nothing was created.
    Badopts {
        #[arg(long)]
        dev: String,
        #[arg(long, default_value_t = 1)]
        major: u16,
    },
    /// Sends small UDP datagrams to DST for SECS seconds from one socket.
    Flood {
        #[arg(long)]
        dst: SocketAddr,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_t = 18)]
        size: usize,
        /// SO_PRIORITY (a class handle), 0 for none.
        #[arg(long, default_value_t = 0)]
        prio: u32,
    },
    /// Receives on PORT until SECS seconds pass; prints the count.
    Sink {
        #[arg(long)]
        port: u16,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// For each N in STREAMS: N classes, N sockets, PACKETS packets queued
    /// round-robin while the qdisc holds them, then drained; prints the
    /// enqueue and drain cost per packet.
    Streams {
        #[arg(long)]
        dev: String,
        #[arg(long, default_value_t = 1)]
        major: u16,
        #[arg(long)]
        dst: SocketAddr,
        #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000,10000")]
        streams: Vec<u32>,
        #[arg(long, default_value_t = 30_000)]
        packets: u32,
        #[arg(long, default_value_t = 3)]
        repeat: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Classes {
            dev,
            major,
            count,
            period_ns,
            keep,
        } => classes(&dev, major, count, period_ns, keep),
        Cmd::Fuzz {
            dev,
            major,
            seed,
            count,
            dst,
        } => fuzz(&dev, major, seed, count, dst),
        Cmd::Flood {
            dst,
            secs,
            size,
            prio,
        } => flood(dst, secs, size, prio),
        Cmd::Sink { port, secs } => sink(port, secs),
        Cmd::Badopts { dev, major } => badopts(&dev, major),
        Cmd::Streams {
            dev,
            major,
            dst,
            streams,
            packets,
            repeat,
        } => streams_bench(&dev, major, dst, &streams, packets, repeat),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dwcs-vmtool: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fail(msg: String) -> io::Error {
    io::Error::other(msg)
}

fn classid(major: u16, minor: u32) -> u32 {
    (u32::from(major) << 16) | (minor & 0xffff)
}

/// One refusal the qdisc owes: the request, and what it must answer.
struct BadOption {
    name: &'static str,
    request: Vec<u8>,
    errno: i32,
    /// A part of the extack text; empty: any explanation will do (the
    /// kernel's own policy checks word theirs differently across versions).
    says: &'static str,
}

fn badopts(dev: &str, major: u16) -> io::Result<()> {
    use nl::{put_attr, TCA_DWCS_CLASS_FLAGS as FLAGS, TCA_DWCS_CLASS_OLD as OLD};
    use nl::{TCA_DWCS_CLASS_OLN as OLN, TCA_DWCS_CLASS_PERIOD as PERIOD};
    let ifi = sys::ifindex(dev)?;
    let mut nl = Nl::open()?;
    let class = |minor: u16, attrs: &[(u16, Vec<u8>)]| {
        let mut opts = Vec::new();
        for (kind, payload) in attrs {
            put_attr(&mut opts, *kind, payload);
        }
        nl::class_add(ifi, classid(major, u32::from(minor)), &opts)
    };
    let qdisc = |attrs: &[(u16, Vec<u8>)]| {
        let mut opts = Vec::new();
        for (kind, payload) in attrs {
            put_attr(&mut opts, *kind, payload);
        }
        nl::qdisc_change(ifi, major, &opts)
    };
    let u32b = |v: u32| v.to_ne_bytes().to_vec();
    let u64b = |v: u64| v.to_ne_bytes().to_vec();
    let period = (PERIOD, u64b(1_000_000));
    let cases = vec![
        BadOption {
            name: "qdisc: a limit above the bound",
            request: qdisc(&[(nl::TCA_DWCS_LIMIT, u32b(2_000_000))]),
            errno: libc::EINVAL,
            says: "packet limit above 1048576",
        },
        BadOption {
            name: "qdisc: a limit of 0",
            request: qdisc(&[(nl::TCA_DWCS_LIMIT, u32b(0))]),
            errno: libc::ERANGE,
            says: "",
        },
        BadOption {
            name: "qdisc: a resolution above a second",
            request: qdisc(&[(nl::TCA_DWCS_RESOLUTION, u64b(2_000_000_000))]),
            errno: libc::EINVAL,
            says: "deadline resolution above 1 s",
        },
        BadOption {
            name: "qdisc: a rate of the wrong size",
            request: qdisc(&[(nl::TCA_DWCS_RATE, u32b(1000))]),
            errno: libc::ERANGE,
            says: "",
        },
        BadOption {
            name: "qdisc: an unknown attribute",
            request: qdisc(&[(12, u32b(1))]),
            errno: libc::EINVAL,
            says: "",
        },
        BadOption {
            name: "class: no options",
            request: nl::tc_message(
                nl::RTM_NEWTCLASS,
                nl::NLM_F_REQUEST | nl::NLM_F_ACK | nl::NLM_F_CREATE | nl::NLM_F_EXCL,
                ifi,
                classid(major, 1),
                classid(major, 0),
                &{
                    let mut a = Vec::new();
                    put_attr(&mut a, nl::TCA_KIND, b"dwcs\0");
                    a
                },
            ),
            errno: libc::EINVAL,
            says: "options are required",
        },
        BadOption {
            name: "class: neither a period nor the aperiodic flag",
            request: class(1, &[(OLN, u32b(0))]),
            errno: libc::EINVAL,
            says: "needs a period, or the aperiodic flag",
        },
        BadOption {
            name: "class: a period of 0",
            request: class(1, &[(PERIOD, u64b(0))]),
            errno: libc::EINVAL,
            says: "period 0 needs the aperiodic flag",
        },
        BadOption {
            name: "class: oln above old",
            request: class(1, &[period.clone(), (OLN, u32b(3)), (OLD, u32b(2))]),
            errno: libc::EINVAL,
            says: "window oln/old",
        },
        BadOption {
            name: "class: old 0 with oln 1",
            request: class(1, &[period.clone(), (OLN, u32b(1)), (OLD, u32b(0))]),
            errno: libc::EINVAL,
            says: "window oln/old",
        },
        BadOption {
            name: "class: an aperiodic class with a period",
            request: class(
                1,
                &[period.clone(), (FLAGS, u32b(nl::TC_DWCS_CLASS_F_APERIODIC))],
            ),
            errno: libc::EINVAL,
            says: "an aperiodic class has no period",
        },
        BadOption {
            name: "class: unknown flag bits",
            request: class(1, &[period.clone(), (FLAGS, u32b(0x100))]),
            errno: libc::EINVAL,
            says: "",
        },
        BadOption {
            name: "class: minor 0",
            request: class(0, std::slice::from_ref(&period)),
            errno: libc::EINVAL,
            says: "class id must be",
        },
        BadOption {
            name: "class: a parent that is a class",
            request: {
                let mut opts = Vec::new();
                put_attr(&mut opts, PERIOD, &u64b(1_000_000));
                nl::class_add_under(ifi, classid(major, 2), classid(major, 5), &opts)
            },
            errno: libc::EINVAL,
            says: "no class hierarchy",
        },
    ];
    let mut failed = 0;
    for mut case in cases {
        let (errno, message) = nl.request_explained(&mut case.request)?;
        let text = message.unwrap_or_default();
        let errno_ok = errno == case.errno || (case.says.is_empty() && errno != 0);
        let text_ok = !text.is_empty() && text.contains(case.says);
        if errno_ok && text_ok {
            println!(
                "ok   {}: {} ({text})",
                case.name,
                io::Error::from_raw_os_error(errno)
            );
        } else {
            failed += 1;
            println!(
                "FAIL {}: errno {errno}, expected {}; extack {text:?}, expected it to contain {:?}",
                case.name, case.errno, case.says
            );
        }
    }
    let left = nl.count_classes(ifi, major)?;
    if left != 0 {
        failed += 1;
        println!("FAIL refused requests left {left} classes behind");
    }
    if failed > 0 {
        return Err(io::Error::other(format!(
            "{failed} bad options were not refused as they should be"
        )));
    }
    Ok(())
}

fn classes(dev: &str, major: u16, count: u32, period_ns: u64, keep: bool) -> io::Result<()> {
    let ifi = sys::ifindex(dev)?;
    let mut nl = Nl::open()?;
    let opts = match period_ns {
        0 => nl::aperiodic_class_opts(),
        period => nl::work_conserving_class_opts(period),
    };
    let t0 = Instant::now();
    for minor in 1..=count {
        nl.must(
            &format!("class add {major:x}:{minor:x}"),
            &mut nl::class_add(ifi, classid(major, minor), &opts),
        )?;
    }
    let added = t0.elapsed();
    let n = nl.count_classes(ifi, major)?;
    if n != count as usize {
        return Err(fail(format!("{count} classes added, a dump lists {n}")));
    }
    if keep {
        return Ok(());
    }
    let t1 = Instant::now();
    for minor in 1..=count {
        nl.must(
            &format!("class del {major:x}:{minor:x}"),
            &mut nl::class_del(ifi, classid(major, minor)),
        )?;
    }
    let deleted = t1.elapsed();
    let n = nl.count_classes(ifi, major)?;
    if n != 0 {
        return Err(fail(format!(
            "all {count} classes deleted, a dump lists {n}"
        )));
    }
    println!(
        "classes: {count} added in {:.2} s, listed, deleted in {:.2} s",
        added.as_secs_f64(),
        deleted.as_secs_f64()
    );
    Ok(())
}

/// xorshift64*: seeded, reproducible, no dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// A value likely to hit a boundary: 0, 1, max, powers of two, or any.
    fn edge_u64(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => 1,
            2 => u64::MAX,
            3 => u64::from(u32::MAX),
            4 => 1 << self.below(64),
            5 => (1 << self.below(64)) - 1,
            6 => self.below(2_000_000_000),
            _ => self.next(),
        }
    }
}

/// Random TCA_OPTIONS contents of one of four shapes (see the match).
fn random_opts(rng: &mut Rng, max_type: u16) -> Vec<u8> {
    let mut o = Vec::new();
    match rng.below(5) {
        // well-formed, plausible values: most are accepted and change state
        4 => {
            for _ in 0..1 + rng.below(3) {
                let t = 1 + rng.below(u64::from(max_type.min(4))) as u16;
                if t == 1 || (max_type == 4 && t == 3) {
                    let v = [0, 1, 1000, 125_000, 1_000_000, 20_000_000][rng.below(6) as usize];
                    nl::put_attr(&mut o, t, &(v as u64).to_ne_bytes());
                } else {
                    let v = [0u32, 1, 2, 3, 5, 8, 100][rng.below(7) as usize];
                    nl::put_attr(&mut o, t, &v.to_ne_bytes());
                }
            }
        }
        // well-formed attributes of known types with boundary values
        0 => {
            for _ in 0..1 + rng.below(4) {
                let t = 1 + rng.below(u64::from(max_type)) as u16;
                let v = rng.edge_u64();
                let small = rng.below(3) == 0;
                let payload = if t == 1 && !small || rng.below(4) == 0 {
                    v.to_ne_bytes().to_vec()
                } else {
                    (v as u32).to_ne_bytes().to_vec()
                };
                nl::put_attr(&mut o, t, &payload);
            }
        }
        // known types, random lengths and bytes
        1 => {
            for _ in 0..1 + rng.below(4) {
                let t = rng.below(u64::from(max_type) + 2) as u16;
                let len = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 16][rng.below(11) as usize];
                let b = rng.bytes(len);
                nl::put_attr(&mut o, t, &b);
            }
        }
        // any type (with the nested and byte-order flags), any length
        2 => {
            for _ in 0..1 + rng.below(5) {
                let t = rng.next() as u16;
                let len = rng.below(40) as usize;
                let b = rng.bytes(len);
                nl::put_attr(&mut o, t, &b);
            }
        }
        // raw bytes: attribute headers that lie about their lengths
        _ => {
            let len = rng.below(64) as usize;
            o = rng.bytes(len);
        }
    }
    o
}

/// One fuzz request: the options wrapped in TCA_KIND and TCA_OPTIONS, with
/// an occasional missing NLA_F_NESTED or missing TCA_OPTIONS.
fn fuzz_attrs(rng: &mut Rng, opts: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    nl::put_attr(&mut a, nl::TCA_KIND, b"dwcs\0");
    match rng.below(32) {
        0 => {}
        1 | 2 => nl::put_attr(&mut a, nl::TCA_OPTIONS, opts),
        _ => nl::put_attr(&mut a, nl::TCA_OPTIONS | nl::NLA_F_NESTED, opts),
    }
    a
}

/// Background traffic for the fuzzer: datagrams through classes 1..=8 and
/// best effort, some with SCM_TXTIME deadlines and flags.
fn traffic(
    dst: SocketAddr,
    major: u16,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> io::Result<()> {
    let mut socks = Vec::new();
    for minor in 0..=8u32 {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(dst)?;
        s.set_nonblocking(true)?;
        if minor > 0 {
            sys::set_priority(&s, classid(major, minor))?;
        }
        sys::enable_txtime(&s)?;
        socks.push(s);
    }
    let mut rng = Rng::new(0x5eed);
    let payload = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        for s in &socks {
            let txtime = match rng.below(4) {
                0 => 0,
                1 => rng.below(8),
                _ => sys::monotonic_ns() + rng.below(20_000_000) - 5_000_000,
            };
            if sys::send_with_txtime(s, &payload, txtime).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

fn fuzz(dev: &str, major: u16, seed: u64, count: u32, dst: Option<SocketAddr>) -> io::Result<()> {
    let ifi = sys::ifindex(dev)?;
    let mut nl = Nl::open()?;
    let qdisc = u32::from(major) << 16;
    // Classes 1..=8 exist throughout (the change path); 100..=131 come and go.
    for minor in 1..=8 {
        let mut o = Vec::new();
        nl::put_attr(
            &mut o,
            nl::TCA_DWCS_CLASS_PERIOD,
            &(1_000_000u64 * minor as u64).to_ne_bytes(),
        );
        nl.must(
            "class add",
            &mut nl::class_add(ifi, classid(major, minor), &o),
        )?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let bg = dst.map(|d| {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || traffic(d, major, stop, sent))
    });

    let mut rng = Rng::new(seed);
    let mut answers: BTreeMap<(&str, i32), u32> = BTreeMap::new();
    let t0 = Instant::now();
    let mut result = Ok(());
    for i in 0..count {
        let (what, mut msg) = match rng.below(8) {
            0..=2 => {
                let o = random_opts(&mut rng, 4);
                let a = fuzz_attrs(&mut rng, &o);
                let m = nl::tc_message(
                    nl::RTM_NEWQDISC,
                    nl::NLM_F_REQUEST | nl::NLM_F_ACK,
                    ifi,
                    qdisc,
                    nl::TC_H_ROOT,
                    &a,
                );
                ("qdisc change", m)
            }
            3..=5 => {
                let o = random_opts(&mut rng, 5);
                let a = fuzz_attrs(&mut rng, &o);
                let id = classid(major, 1 + rng.below(8) as u32);
                let m = nl::tc_message(
                    nl::RTM_NEWTCLASS,
                    nl::NLM_F_REQUEST | nl::NLM_F_ACK,
                    ifi,
                    id,
                    qdisc,
                    &a,
                );
                ("class change", m)
            }
            6 => {
                let o = random_opts(&mut rng, 5);
                let a = fuzz_attrs(&mut rng, &o);
                let id = classid(major, 100 + rng.below(32) as u32);
                let flags = nl::NLM_F_REQUEST | nl::NLM_F_ACK | nl::NLM_F_CREATE;
                let m = nl::tc_message(nl::RTM_NEWTCLASS, flags, ifi, id, qdisc, &a);
                ("class create", m)
            }
            _ => {
                let id = classid(major, 100 + rng.below(32) as u32);
                ("class delete", nl::class_del(ifi, id))
            }
        };
        match nl.request(&mut msg) {
            Ok(e) => *answers.entry((what, e)).or_default() += 1,
            Err(e) => {
                result = Err(fail(format!(
                    "request {i} ({what}, seed {seed}) unanswered: {e}"
                )));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(h) = bg {
        match h.join() {
            Ok(r) => r?,
            Err(_) => return Err(fail("traffic thread panicked".into())),
        }
    }
    result?;
    let elapsed = t0.elapsed();
    // Leave a sane qdisc and only the fixed classes.
    nl.must(
        "qdisc change back",
        &mut nl::qdisc_change(ifi, major, &nl::qdisc_opts(Some(0), Some(1000), Some(0))),
    )?;
    for minor in 100..132 {
        let _ = nl.request(&mut nl::class_del(ifi, classid(major, minor)))?;
    }
    for minor in 1..=8 {
        nl.must("class del", &mut nl::class_del(ifi, classid(major, minor)))?;
    }
    let left = nl.count_classes(ifi, major)?;
    if left != 0 {
        return Err(fail(format!("{left} classes left after deleting all")));
    }
    println!(
        "fuzz: seed {seed}, {count} requests in {:.1} s, all answered; {} datagrams sent meanwhile",
        elapsed.as_secs_f64(),
        sent.load(Ordering::Relaxed)
    );
    for ((what, e), n) in &answers {
        let name = if *e == 0 {
            "accepted".to_string()
        } else {
            io::Error::from_raw_os_error(*e).to_string()
        };
        println!("  {what}: {name}: {n}");
    }
    Ok(())
}

fn flood(dst: SocketAddr, secs: f64, size: usize, prio: u32) -> io::Result<()> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(dst)?;
    if prio != 0 {
        sys::set_priority(&s, prio)?;
    }
    let buf = vec![0u8; size];
    let (mut ok, mut err) = (0u64, 0u64);
    let t0 = Instant::now();
    let end = Duration::from_secs_f64(secs);
    loop {
        for _ in 0..256 {
            match s.send(&buf) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
        if t0.elapsed() >= end {
            break;
        }
    }
    let el = t0.elapsed().as_secs_f64();
    println!(
        "flood: sent {ok} errors {err} in {el:.3} s: {:.0} pps",
        ok as f64 / el
    );
    Ok(())
}

fn sink(port: u16, secs: f64) -> io::Result<()> {
    let s = UdpSocket::bind(("0.0.0.0", port))?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 2048];
    let mut n = 0u64;
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < secs {
        if s.recv(&mut buf).is_ok() {
            n += 1;
        }
    }
    println!("sink: received {n}");
    Ok(())
}

/// Waits until the root qdisc holds nothing (bounded by `limit`).
fn wait_drained(nl: &mut Nl, ifi: i32, limit: Duration) -> io::Result<Duration> {
    let t0 = Instant::now();
    loop {
        if nl.root_stats(ifi)?.qlen == 0 {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return Err(fail("the qdisc did not drain".into()));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// One measurement at `n` streams: returns (enqueue, drain) ns per packet.
fn streams_once(
    nl: &mut Nl,
    ifi: i32,
    major: u16,
    dst: SocketAddr,
    socks: &[UdpSocket],
    packets: u32,
) -> io::Result<(f64, f64)> {
    let n = socks.len();
    // Hold everything: one packet opens a 1 byte/s link for a long time.
    nl.must(
        "qdisc change",
        &mut nl::qdisc_change(
            ifi,
            major,
            &nl::qdisc_opts(Some(1), Some(packets + 1000), None),
        ),
    )?;
    let buf = [0u8; 18];
    socks[0].send(&buf)?;
    std::thread::sleep(Duration::from_millis(5));
    let before = nl.root_stats(ifi)?;
    let t0 = Instant::now();
    for i in 0..packets as usize {
        socks[i % n].send(&buf)?;
    }
    let enq = t0.elapsed();
    let held = nl.root_stats(ifi)?;
    if held.qlen < packets {
        return Err(fail(format!(
            "{n} streams: {packets} packets sent, the qdisc holds {} (drops {})",
            held.qlen,
            held.drops - before.drops
        )));
    }
    // Open the link and kick the qdisc with a best-effort packet.
    nl.must(
        "qdisc change",
        &mut nl::qdisc_change(ifi, major, &nl::qdisc_opts(Some(0), None, None)),
    )?;
    let kick = UdpSocket::bind("0.0.0.0:0")?;
    kick.send_to(&buf, dst)?;
    let drain = wait_drained(nl, ifi, Duration::from_secs(60))?;
    Ok((
        enq.as_nanos() as f64 / f64::from(packets),
        drain.as_nanos() as f64 / f64::from(packets + 1),
    ))
}

fn streams_bench(
    dev: &str,
    major: u16,
    dst: SocketAddr,
    levels: &[u32],
    packets: u32,
    repeat: u32,
) -> io::Result<()> {
    let ifi = sys::ifindex(dev)?;
    let mut nl = Nl::open()?;
    let mut base: Option<f64> = None;
    println!("streams: {packets} packets of 18 bytes queued round-robin over N classes, then drained; best of {repeat}");
    println!(
        "{:>7} {:>12} {:>12} {:>12} {:>8}",
        "streams", "enq ns/pkt", "drain ns/pkt", "total", "ratio"
    );
    for &n in levels {
        let opts = nl::aperiodic_class_opts();
        for minor in 1..=n {
            nl.must(
                "class add",
                &mut nl::class_add(ifi, classid(major, minor), &opts),
            )?;
        }
        let per = (f64::from(packets) / f64::from(n)).ceil() as i32;
        let mut socks = Vec::with_capacity(n as usize);
        for minor in 1..=n {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect(dst)?;
            sys::set_priority(&s, classid(major, minor))?;
            sys::set_sndbuf_force(&s, (per + 16).saturating_mul(2048).max(1 << 16))?;
            socks.push(s);
        }
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..repeat {
            let (e, d) = streams_once(&mut nl, ifi, major, dst, &socks, packets)?;
            if best.is_none_or(|(be, bd)| e + d < be + bd) {
                best = Some((e, d));
            }
        }
        drop(socks);
        for minor in 1..=n {
            nl.must("class del", &mut nl::class_del(ifi, classid(major, minor)))?;
        }
        let (e, d) = best.ok_or_else(|| fail("no repeat".into()))?;
        let total = e + d;
        let b = *base.get_or_insert(total);
        println!(
            "{n:>7} {e:>12.0} {d:>12.0} {total:>12.0} {:>8.2}",
            total / b
        );
    }
    Ok(())
}
