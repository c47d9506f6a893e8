//! The QSockets paper's simulated video server (section 4.2.1), live.
//!
//! A 20 fps source of random I/P/B frames is sent twice at once: through a
//! QSocket (I-frames non-droppable, every frame with a deadline) and through a
//! plain UDP socket. Part way through, a bulk TCP transfer starts on the same
//! link. Every second the receiver's frames per second and inter-frame jitter
//! are printed for both streams side by side.
//!
//! As root, the demo builds two network namespaces joined by a veth pair whose
//! scheduler sends at 10 Mbit/s, and installs the best scheduler the machine
//! offers (`auto`: dwcs, then htb, then user). Without root it runs over
//! loopback with the `user` scheduler, and says what root would add.

mod bulk;
mod receiver;
mod video;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use qsock::{
    Deadline, InitParams, PacketFlags, QSocket, QosParams, Rate, SchedulerName, StreamParams,
};
use qsock_testbed::TestBed;
use socket2::{Domain, Protocol, Type};

use receiver::StreamFigures;
use video::{FrameType, Source};

/// Run the paper's simulated video server through a QSocket and through a
/// plain socket side by side, with a bulk TCP transfer part way through.
#[derive(Debug, Parser)]
#[command(name = "qsock-demo", version, about)]
struct Args {
    /// How long to stream, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// When the bulk TCP transfer starts, in seconds from the start.
    #[arg(long, default_value_t = 6)]
    bulk_start: u64,
    /// When it stops.
    #[arg(long, default_value_t = 16)]
    bulk_stop: u64,
    /// The link rate the scheduler sends at: the bottleneck.
    #[arg(long, default_value = "10mbit")]
    rate: String,
    /// The scheduler: dwcs, htb, user or auto.
    #[arg(long, default_value = "auto")]
    scheduler: String,
    /// Latency budget of a frame: its deadline is this long after it is made.
    #[arg(long, default_value_t = 100)]
    budget_ms: u64,
    /// Parallel TCP connections of the bulk transfer.
    #[arg(long, default_value_t = 8)]
    bulk_connections: u32,
    /// Run over loopback with the user scheduler even as root.
    #[arg(long)]
    loopback: bool,
}

const FPS: u32 = 20;
const MANAGED_PORT: u16 = 5004;
const UNMANAGED_PORT: u16 = 5006;
const BULK_PORT: u16 = 5201;

/// Where the demo runs: the namespaces of a test bed, or this host's loopback.
enum Bed {
    Namespaces(TestBed),
    Loopback,
}

impl Bed {
    fn device(&self) -> &str {
        match self {
            Bed::Namespaces(bed) => bed.sender_dev(),
            Bed::Loopback => "lo",
        }
    }

    fn receiver_ip(&self) -> IpAddr {
        match self {
            Bed::Namespaces(bed) => IpAddr::V4(bed.receiver_v4()),
            Bed::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    fn spawn_sender<T, F>(&self, f: F) -> JoinHandle<Result<T, String>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, String> + Send + 'static,
    {
        match self {
            Bed::Namespaces(bed) => {
                let inner = bed.spawn_in_sender(f);
                std::thread::spawn(move || match inner.join() {
                    Ok(Ok(result)) => result,
                    Ok(Err(err)) => Err(err.to_string()),
                    Err(_) => Err("the sender thread panicked".into()),
                })
            }
            Bed::Loopback => std::thread::spawn(f),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qsock-demo: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let rate: Rate = args.rate.parse().map_err(|e: qsock::Error| e.to_string())?;
    let mut scheduler: SchedulerName = args
        .scheduler
        .parse()
        .map_err(|e: qsock::Error| e.to_string())?;
    if args.bulk_start >= args.bulk_stop || args.bulk_stop > args.seconds {
        return Err("the bulk transfer must start before it stops, within --seconds".into());
    }

    let root = nix::unistd::geteuid().is_root();
    let bed = if args.loopback {
        println!("loopback requested: the user scheduler over lo");
        Bed::Loopback
    } else if !root {
        println!(
            "not root: running over loopback with the user scheduler, which orders and paces \
             this process's own stream but cannot hold back other traffic.\nLoopback has no \
             bottleneck to share, so the bulk transfer competes only for the CPU: what a \
             user-level scheduler is exposed to.\nAs root, the demo builds two network \
             namespaces joined by a {rate} link and puts a kernel scheduler (dwcs or htb) on \
             it, where it shields the stream from the bulk transfer."
        );
        Bed::Loopback
    } else {
        match TestBed::new() {
            Ok(bed) => Bed::Namespaces(bed),
            Err(err) => {
                println!("cannot build the network-namespace test bed ({err}); using loopback");
                Bed::Loopback
            }
        }
    };
    if matches!(bed, Bed::Loopback) && scheduler == SchedulerName::Auto {
        scheduler = SchedulerName::User;
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // Ctrl-C ends the run early but still tears the test bed down.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }

    let start = Instant::now();
    let frame_interval = Duration::from_secs(1) / FPS;
    let managed = StreamFigures::new(start, frame_interval);
    let unmanaged = StreamFigures::new(start, frame_interval);
    let bulk_bytes = Arc::new(AtomicU64::new(0));
    let receiver_ip = bed.receiver_ip();

    let mut receivers = Vec::new();
    for (port, figures) in [(MANAGED_PORT, &managed), (UNMANAGED_PORT, &unmanaged)] {
        let figures = Arc::clone(figures);
        let stop = Arc::clone(&stop);
        let socket = bind_receiver(&bed, SocketAddr::new(receiver_ip, port))?;
        receivers.push(std::thread::spawn(move || {
            receiver::receive(socket, figures, stop)
        }));
    }
    let listener = bind_bulk_sink(&bed, SocketAddr::new(receiver_ip, BULK_PORT))?;
    {
        let received = Arc::clone(&bulk_bytes);
        let stop = Arc::clone(&stop);
        receivers.push(std::thread::spawn(move || {
            bulk::sink(listener, received, stop)
        }));
    }

    let device = bed.device().to_owned();
    let init = InitParams::new(device.clone(), scheduler).with_link_rate(rate);
    let report = bed
        .spawn_sender(move || qsock::qsockinit(&init).map_err(|e| e.to_string()))
        .join()
        .map_err(|_| "qsockinit panicked".to_string())??;
    println!(
        "scheduler: {} on {} at {rate} — {}",
        report.scheduler, report.device, report.reason
    );

    let duration = Duration::from_secs(args.seconds);
    let budget = Duration::from_millis(args.budget_ms);
    let managed_sender = {
        let stop = Arc::clone(&stop);
        let destination = SocketAddr::new(receiver_ip, MANAGED_PORT);
        let device = device.clone();
        bed.spawn_sender(move || {
            send_managed(
                &device,
                scheduler,
                destination,
                start,
                duration,
                budget,
                &stop,
            )
        })
    };
    let unmanaged_sender = {
        let stop = Arc::clone(&stop);
        let destination = SocketAddr::new(receiver_ip, UNMANAGED_PORT);
        bed.spawn_sender(move || send_unmanaged(destination, start, duration, &stop))
    };

    let bulk_stop = Arc::new(AtomicBool::new(false));
    let mut bulk_senders = Vec::new();
    println!();
    println!(
        "{:>4}  {:>11} {:>9} {:>8}  {:>13} {:>9} {:>8}  {:>11}",
        "sec",
        "managed fps",
        "jitter ms",
        "delay ms",
        "unmanaged fps",
        "jitter ms",
        "delay ms",
        "bulk Mbit/s"
    );
    let mut bulk_seen = 0;
    let mut during_bulk = Vec::new();
    for second in 0..args.seconds {
        if second == args.bulk_start {
            for _ in 0..args.bulk_connections {
                let stop = Arc::clone(&bulk_stop);
                let to = SocketAddr::new(receiver_ip, BULK_PORT);
                bulk_senders.push(
                    bed.spawn_sender(move || bulk::send(to, stop).map_err(|e| e.to_string())),
                );
            }
            println!("      -- bulk TCP transfer starts --");
        }
        if second == args.bulk_stop {
            bulk_stop.store(true, Ordering::Relaxed);
            println!("      -- bulk TCP transfer stops --");
        }
        // Print each second once it is over, as the receiver saw it.
        let until = start + Duration::from_secs(second + 1);
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(
                until
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let index = second as usize;
        let (m, u) = (managed.second(index), unmanaged.second(index));
        let bulk_now = bulk_bytes.load(Ordering::Relaxed);
        let bulk_mbit = (bulk_now - bulk_seen) as f64 * 8.0 / 1e6;
        bulk_seen = bulk_now;
        if second >= args.bulk_start && second < args.bulk_stop {
            during_bulk.push((m, u));
        }
        println!(
            "{:>4}  {:>11} {:>9.1} {:>8.1}  {:>13} {:>9.1} {:>8.1}  {:>11.1}",
            second + 1,
            m.frames,
            m.jitter_mean().as_secs_f64() * 1e3,
            m.delay_mean().as_secs_f64() * 1e3,
            u.frames,
            u.jitter_mean().as_secs_f64() * 1e3,
            u.delay_mean().as_secs_f64() * 1e3,
            bulk_mbit
        );
    }
    stop.store(true, Ordering::Relaxed);
    bulk_stop.store(true, Ordering::Relaxed);
    let info = managed_sender
        .join()
        .map_err(|_| "the managed sender panicked".to_string())??;
    unmanaged_sender
        .join()
        .map_err(|_| "the unmanaged sender panicked".to_string())??;
    for bulk in bulk_senders {
        if let Ok(Err(err)) = bulk.join() {
            println!("bulk transfer: {err}");
        }
    }
    for receiver in receivers {
        let _ = receiver.join();
    }

    summarize(&during_bulk, &info, &managed, &unmanaged);
    if let Bed::Namespaces(bed) = bed {
        drop(bed);
        println!("test bed removed");
    }
    Ok(())
}

fn bind_receiver(bed: &Bed, address: SocketAddr) -> Result<UdpSocket, String> {
    let bind = move || UdpSocket::bind(address).map_err(|e| format!("bind {address}: {e}"));
    match bed {
        Bed::Namespaces(bed) => bed.run_in_receiver(bind).map_err(|e| e.to_string())?,
        Bed::Loopback => bind(),
    }
}

fn bind_bulk_sink(bed: &Bed, address: SocketAddr) -> Result<TcpListener, String> {
    let bind = move || TcpListener::bind(address).map_err(|e| format!("bind {address}: {e}"));
    match bed {
        Bed::Namespaces(bed) => bed.run_in_receiver(bind).map_err(|e| e.to_string())?,
        Bed::Loopback => bind(),
    }
}

/// What the managed sender reports when it is done.
struct ManagedOutcome {
    info: Option<qsock::QInfo>,
    i_frames_sent: u32,
}

#[allow(clippy::too_many_arguments)]
fn send_managed(
    device: &str,
    scheduler: SchedulerName,
    destination: SocketAddr,
    start: Instant,
    duration: Duration,
    budget: Duration,
    stop: &AtomicBool,
) -> Result<ManagedOutcome, String> {
    // One datagram every 2.8 ms is 4 Mbit/s of 1400-byte packets: room for an
    // I-frame burst; work-conserving so a frame leaves as fast as the link allows.
    let stream = StreamParams::periodic(Duration::from_micros(2800), 2, 10)
        .work_conserving()
        .with_packet_size(video::PACKET_SIZE as u32);
    let params = QosParams::new(device, scheduler, stream);
    let domain = Domain::for_address(destination);
    let socket = QSocket::new(domain, Type::DGRAM, Some(Protocol::UDP), &params)
        .map_err(|e| format!("qsocket: {e}"))?;
    let mut i_frames_sent = 0;
    play(start, duration, stop, |frame| {
        let flags = match frame.kind {
            FrameType::I => PacketFlags::new().non_droppable(),
            FrameType::P | FrameType::B => PacketFlags::new().droppable(),
        }
        .with_deadline(Deadline::after(budget));
        if frame.kind == FrameType::I {
            i_frames_sent += 1;
        }
        let packets: Vec<&[u8]> = frame.packets.iter().map(Vec::as_slice).collect();
        let mut sent = 0;
        while sent < packets.len() {
            let accepted = if sent == 0 {
                socket.send_frame(&packets, Some(&destination), &flags)
            } else {
                socket.continue_frame(&packets[sent..], Some(&destination), &flags)
            }
            .map_err(|e| format!("send_frame: {e}"))?;
            sent += accepted;
            if accepted == 0 {
                // The queue is full; an I-frame must not be lost, so wait for room.
                if frame.kind != FrameType::I {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    })?;
    let info = socket.info().ok();
    socket.close().map_err(|e| format!("qclose: {e}"))?;
    Ok(ManagedOutcome {
        info,
        i_frames_sent,
    })
}

fn send_unmanaged(
    destination: SocketAddr,
    start: Instant,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<(), String> {
    let any = match destination {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = UdpSocket::bind(any).map_err(|e| format!("bind: {e}"))?;
    play(start, duration, stop, |frame| {
        for packet in frame.packets {
            // A plain sender loses what the socket refuses, as udpsink does.
            let _ = socket.send_to(&packet, destination);
        }
        Ok(())
    })
}

/// Did a read or write with a timeout only time out (so the caller checks
/// its stop flag and tries again)?
fn timed_out(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Runs the paper's source at `FPS` from `start` for `duration` (or until
/// `stop`), handing each frame to `send` at its time.
fn play(
    start: Instant,
    duration: Duration,
    stop: &AtomicBool,
    mut send: impl FnMut(video::Frame) -> Result<(), String>,
) -> Result<(), String> {
    let mut source = Source::new(1, 10);
    let frame_interval = Duration::from_secs(1) / FPS;
    for number in 0.. {
        let due = start + frame_interval * number;
        if due >= start + duration || stop.load(Ordering::Relaxed) {
            break;
        }
        sleep_until(due);
        send(source.next_frame(qsock::monotonic_now()))?;
    }
    Ok(())
}

/// Waits for the source's next frame time: this is the source's own clock, a
/// camera's frame rate, not synchronisation with anything else.
fn sleep_until(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

fn summarize(
    during_bulk: &[(receiver::Second, receiver::Second)],
    outcome: &ManagedOutcome,
    managed: &StreamFigures,
    unmanaged: &StreamFigures,
) {
    println!();
    if !during_bulk.is_empty() {
        let seconds = during_bulk.len() as f64;
        let mean = |pick: fn(&(receiver::Second, receiver::Second)) -> f64| {
            during_bulk.iter().map(pick).sum::<f64>() / seconds
        };
        println!(
            "while the bulk transfer ran: managed {:.1} fps, jitter {:.1} ms, delay {:.1} ms; \
             unmanaged {:.1} fps, jitter {:.1} ms, delay {:.1} ms",
            mean(|s| f64::from(s.0.frames)),
            mean(|s| s.0.jitter_mean().as_secs_f64() * 1e3),
            mean(|s| s.0.delay_mean().as_secs_f64() * 1e3),
            mean(|s| f64::from(s.1.frames)),
            mean(|s| s.1.jitter_mean().as_secs_f64() * 1e3),
            mean(|s| s.1.delay_mean().as_secs_f64() * 1e3),
        );
    }
    println!(
        "I-frames sent {}, seen by the receiver: managed {}, unmanaged {}",
        outcome.i_frames_sent,
        managed.i_frames_seen(),
        unmanaged.i_frames_seen()
    );
    if let Some(info) = &outcome.info {
        println!(
            "managed stream ({}): sent {} packets, dropped {} (late {}, window {}, frame {}, queue full {}), deadline misses {}",
            info.scheduler,
            info.stats.sent_packets,
            info.stats.dropped.total(),
            info.stats.dropped.late,
            info.stats.dropped.window,
            info.stats.dropped.frame,
            info.stats.dropped.queue_full,
            info.stats.deadline_misses
        );
    }
}
