//! The paper's Table 1, today: each QSockets call against its plain-socket
//! equivalent, measured in the same process and reported as ratios.
//!
//! `cargo bench -p qsock-core --bench api`. As root the benchmark enters a
//! network namespace of its own and also measures the `htb` backend on its
//! loopback; without root it measures the `user` backend only.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use qsock::{InitParams, PacketFlags, QSocket, QosParams, SchedulerName, StreamParams};
use socket2::{Domain, Protocol, Socket, Type};

const PAYLOAD: [u8; 1000] = [0x42; 1000];

/// Enters a new network namespace with loopback up, so that the htb backend
/// can be installed without touching the host. Returns false without root.
fn private_namespace() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return false;
    }
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        return false;
    }
    std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .is_ok_and(|status| status.success())
}

fn stream_params(scheduler: SchedulerName) -> QosParams {
    // A fast stream, so that its class or pacing never holds the benchmark back.
    QosParams::new(
        "lo",
        scheduler,
        StreamParams::periodic(Duration::from_micros(1), 0, 0)
            .work_conserving()
            .with_packet_size(1000),
    )
}

fn receiver() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback receiver");
    let address = socket.local_addr().expect("receiver address");
    (socket, address)
}

/// Sends `count` packets through the qsocket, retrying what the queue pushes
/// back, and waits until the scheduler has sent them all: the cost of the
/// whole path, not of queueing alone.
fn qsend_until_sent(socket: &QSocket, destination: &SocketAddr, count: u64) {
    let flags = PacketFlags::new().non_droppable();
    let start = socket.info().map(|i| i.stats.sent_packets).unwrap_or(0);
    for _ in 0..count {
        while socket.send_to(&PAYLOAD, destination, &flags).is_err() {
            std::thread::yield_now();
        }
    }
    while socket
        .info()
        .map(|i| i.stats.sent_packets < start + count)
        .unwrap_or(false)
    {
        std::thread::yield_now();
    }
}

/// Where criterion writes its estimates, set once so that the ratios below
/// read what this run measured.
fn criterion_home() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|dir| PathBuf::from(dir).join("criterion"))
        })
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"))
}

fn main() {
    // Before any thread starts: criterion reads it when it first writes.
    std::env::set_var("CRITERION_HOME", criterion_home());
    let privileged = private_namespace();
    let mut schedulers = vec![SchedulerName::User];
    qsock::qsockinit(&InitParams::new("lo", SchedulerName::User)).expect("user scheduler");
    if privileged {
        let init = InitParams::new("lo", SchedulerName::Htb)
            .with_link_rate("40gbit".parse().expect("rate"));
        match qsock::qsockinit(&init) {
            Ok(_) => schedulers.push(SchedulerName::Htb),
            Err(err) => eprintln!("htb not measured: {err}"),
        }
    } else {
        eprintln!("not root: the htb backend is not measured (it needs CAP_NET_ADMIN in a namespace of its own)");
    }
    let (_receiver, destination) = receiver();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    let plain = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    let destination_addr = socket2::SockAddr::from(destination);
    {
        let mut group = criterion.benchmark_group("send");
        group.bench_function("sendto", |b| {
            b.iter(|| plain.send_to(&PAYLOAD, &destination_addr))
        });
        for &scheduler in &schedulers {
            let socket = QSocket::new(Domain::IPV4, Type::DGRAM, None, &stream_params(scheduler))
                .expect("qsocket");
            group.bench_function(BenchmarkId::new("qsendto", scheduler), |b| {
                b.iter_custom(|iterations| {
                    let started = Instant::now();
                    qsend_until_sent(&socket, &destination, iterations);
                    started.elapsed()
                })
            });
        }
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("frame of 10");
        let frame: Vec<&[u8]> = vec![&PAYLOAD[..]; 10];
        group.bench_function("sendto x10", |b| {
            b.iter(|| {
                for packet in &frame {
                    let _ = plain.send_to(packet, &destination_addr);
                }
            })
        });
        for &scheduler in &schedulers {
            let socket = QSocket::new(Domain::IPV4, Type::DGRAM, None, &stream_params(scheduler))
                .expect("qsocket");
            let flags = PacketFlags::new().non_droppable();
            group.bench_function(BenchmarkId::new("send_frame", scheduler), |b| {
                b.iter_custom(|iterations| {
                    let started = Instant::now();
                    let before = socket.info().map(|i| i.stats.sent_packets).unwrap_or(0);
                    for _ in 0..iterations {
                        let mut sent = 0;
                        while sent < frame.len() {
                            sent += socket
                                .send_frame(&frame[sent..], Some(&destination), &flags)
                                .unwrap_or(0);
                        }
                    }
                    while socket
                        .info()
                        .map(|i| i.stats.sent_packets < before + 10 * iterations)
                        .unwrap_or(false)
                    {
                        std::thread::yield_now();
                    }
                    started.elapsed()
                })
            });
        }
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("create and close");
        group.bench_function("socket", |b| {
            b.iter(|| Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)))
        });
        for &scheduler in &schedulers {
            let params = stream_params(scheduler);
            group.bench_function(BenchmarkId::new("qsocket", scheduler), |b| {
                b.iter(|| {
                    QSocket::new(Domain::IPV4, Type::DGRAM, None, &params).and_then(QSocket::close)
                })
            });
        }
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("qinfo");
        group.bench_function("getsockopt SO_SNDBUF", |b| {
            b.iter(|| plain.send_buffer_size())
        });
        for &scheduler in &schedulers {
            let socket = QSocket::new(Domain::IPV4, Type::DGRAM, None, &stream_params(scheduler))
                .expect("qsocket");
            group.bench_function(BenchmarkId::new("qinfo", scheduler), |b| {
                b.iter(|| socket.info())
            });
        }
        group.finish();
    }
    criterion.final_summary();
    print_ratios(&schedulers);
}

/// Criterion's mean estimate of one benchmark, in nanoseconds.
fn mean_nanos(group: &str, id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

fn print_ratios(schedulers: &[SchedulerName]) {
    println!("\nratios against the plain-socket baseline of the same run (mean per call):");
    let rows: Vec<(&str, &str, String)> = schedulers
        .iter()
        .flat_map(|scheduler| {
            [
                ("send", "sendto", format!("qsendto/{scheduler}")),
                (
                    "frame of 10",
                    "sendto x10",
                    format!("send_frame/{scheduler}"),
                ),
                ("create and close", "socket", format!("qsocket/{scheduler}")),
                (
                    "qinfo",
                    "getsockopt SO_SNDBUF",
                    format!("qinfo/{scheduler}"),
                ),
            ]
        })
        .collect();
    for (group, base, id) in rows {
        match (mean_nanos(group, base), mean_nanos(group, &id)) {
            (Some(baseline), Some(contender)) => println!(
                "  {group:>16}: {id:<22} {:>10.0} ns vs {base} {:>8.0} ns = {:.2}x",
                contender,
                baseline,
                contender / baseline
            ),
            _ => println!("  {group:>16}: {id:<22} (no estimate found)"),
        }
    }
}
