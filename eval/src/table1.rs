//! Table 1: the cost of each QSockets call against its plain-socket
//! equivalent, measured in the same process, on the same path, in
//! interleaved rounds, and reported as ratios.
//!
//! Everything runs in the sender namespace of a test bed, sending across its
//! veth pair, with the scheduler installed on the sender's veth at a link
//! rate (10 Gbit/s) that never holds a packet back: the table measures the
//! calls, not the link. A plain socket's packets cross the same root qdisc
//! (HTB's default class, or sch_dwcs's best effort), so a ratio compares the
//! same path with and without qsock.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use qsock::{Deadline, InitParams, PacketFlags, QSocket, QosParams, SchedulerName, StreamParams};
use qsock_testbed::{Qsockd, RunnableCopy, TestBed};
use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::output::{markdown_table, Results};
use crate::{schedulers, Result};

const PAYLOAD: [u8; 1000] = [0x42; 1000];
const RECEIVER_PORT: u16 = 9;
const LINK_RATE: &str = "10gbit";
/// The measured streams' period: 1000-byte packets a millisecond apart
/// reserve some 8.5 Mbit/s each, so that a round's hundred streams fit in
/// the link (and in what qsockd lets users reserve), while being
/// work-conserving lets each use the whole link.
const STREAM_IPG: Duration = Duration::from_millis(1);
/// The period `qchange` switches to and back from.
const CHANGED_IPG: Duration = Duration::from_millis(2);
/// How the qsockd column is labelled.
const THROUGH_QSOCKD: &str = "htb via qsockd";

/// Options of `qsock-eval table1`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Schedulers to measure (default: user and, as root, htb; dwcs when
    /// sch_dwcs is loaded).
    #[arg(long, value_delimiter = ',', value_parser = schedulers::parse)]
    pub schedulers: Vec<SchedulerName>,
    /// Interleaved rounds; each call's figure is the median over rounds.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Scales every batch (1 = the default sizes, e.g. 20,000 sends a round).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            schedulers: Vec::new(),
            rounds: 7,
            scale: 1.0,
        }
    }
}

/// One line of `table1-TAG.csv`; also what the unprivileged worker of the
/// qsockd column hands back, one JSON line each.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    scheduler: String,
    call: String,
    equivalent: String,
    /// Median over rounds of the mean time of one qsock call.
    qsock_ns: f64,
    /// Median over rounds of the mean time of the equivalent socket call.
    socket_ns: Option<f64>,
    /// Median over rounds of the ratio measured in each round.
    ratio: Option<f64>,
    rounds: u32,
    calls_per_round: u32,
}

/// A call and its equivalent, measured in one round: total time and calls.
struct Round {
    qsock: Duration,
    socket: Option<Duration>,
    calls: u32,
}

/// Runs the measurement for each scheduler and writes `table1-TAG.csv` and
/// the markdown section.
pub fn run(args: &Args, results: &Results) -> Result<()> {
    if !(0.01..=100.0).contains(&args.scale) {
        return Err(format!(
            "--scale {} is out of range: give a factor from 0.01 to 100",
            args.scale
        ));
    }
    let bed =
        TestBed::new().map_err(|err| format!("table1 needs the namespace test bed: {err}"))?;
    let mut rows = Vec::new();
    for scheduler in schedulers::chosen(&args.schedulers) {
        println!(
            "table1: measuring the {scheduler} backend ({} rounds)",
            args.rounds
        );
        let measured = bed
            .run_in_sender(|| measure(&bed, scheduler, args))
            .map_err(|err| err.to_string())??;
        for row in &measured {
            println!(
                "  {:<10} {:>12.0} ns   {:<10} {:>10}   {}",
                row.call,
                row.qsock_ns,
                row.equivalent,
                row.socket_ns.map_or("-".into(), |ns| format!("{ns:.0} ns")),
                row.ratio.map_or("-".into(), |r| format!("{r:.2}x"))
            );
        }
        rows.extend(measured);
    }
    if schedulers::chosen(&args.schedulers).contains(&SchedulerName::Htb) {
        println!(
            "table1: measuring htb through qsockd, unprivileged ({} rounds)",
            args.rounds
        );
        let measured = measure_through_qsockd(&bed, args)?;
        for row in &measured {
            println!("  {:<10} {:>12.0} ns", row.call, row.qsock_ns);
        }
        rows.extend(measured);
    }
    let csv = results.write_csv("table1", None, &rows)?;
    println!("table1: {}", csv.display());
    results.write_section("table1", &section(&rows, results))?;
    Ok(())
}

fn scaled(base: u32, scale: f64) -> u32 {
    ((f64::from(base) * scale).round() as u32).max(1)
}

/// Everything for one scheduler; runs on a thread in the sender namespace.
fn measure(bed: &TestBed, scheduler: SchedulerName, args: &Args) -> Result<Vec<Row>> {
    let device = bed.sender_dev().to_owned();
    let init = InitParams::new(device.clone(), scheduler)
        .with_link_rate(LINK_RATE.parse().map_err(|e: qsock::Error| e.to_string())?);
    let destination = SocketAddr::from((bed.receiver_v4(), RECEIVER_PORT));
    // A receiver that never reads: its buffer fills and the kernel drops the
    // rest, which costs the sender nothing.
    let _receiver = bed
        .run_in_receiver(move || UdpSocket::bind(destination))
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("cannot bind the receiver at {destination}: {err}"))?;

    let mut rows = Vec::new();

    // qsockinit first, on a device with nothing attached yet.
    let mut inits = Vec::new();
    for _ in 0..args.rounds {
        qsock::reset(&device).map_err(|err| format!("qsock reset on {device}: {err}"))?;
        let started = Instant::now();
        qsock::qsockinit(&init).map_err(|err| format!("qsockinit {scheduler}: {err}"))?;
        inits.push(Round {
            qsock: started.elapsed(),
            socket: None,
            calls: 1,
        });
    }
    rows.push(summarize(&scheduler.to_string(), "qsockinit", "-", &inits));

    let params = stream_params(&device, scheduler, STREAM_IPG);
    let other_params = stream_params(&device, scheduler, CHANGED_IPG);
    rows.extend(measure_calls(
        &scheduler.to_string(),
        &params,
        &other_params,
        destination,
        args,
    )?);
    qsock::reset(&device).map_err(|err| format!("qsock reset on {device}: {err}"))?;
    Ok(rows)
}

/// Every call after `qsockinit`, on streams of `params` (and `other` for
/// `qchange`), sending to `destination`; the rows are labelled `label`.
fn measure_calls(
    label: &str,
    params: &QosParams,
    other_params: &QosParams,
    destination: SocketAddr,
    args: &Args,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut push = |call, equivalent, rounds: Vec<Round>| {
        rows.push(summarize(label, call, equivalent, &rounds));
    };
    let (mut create, mut close, mut attach, mut change) = (vec![], vec![], vec![], vec![]);
    let mut create_alone = vec![];
    let (mut sendto, mut send, mut info) = (vec![], vec![], vec![]);
    let sockets_per_round = scaled(100, args.scale);
    let sends_per_round = scaled(20_000, args.scale);
    let infos_per_round = scaled(2_000, args.scale);
    let plain_destination = SockAddr::from(destination);
    for _ in 0..args.rounds {
        let (created, closed) = create_and_close(params, sockets_per_round)?;
        create.push(created);
        close.push(closed);
        create_alone.push(create_one_at_a_time(params, sockets_per_round)?);
        attach.push(attach_round(params, sockets_per_round)?);
        change.push(change_round(params, other_params, sockets_per_round)?);

        let plain = udp_socket()?;
        let qsocket = QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), params)
            .map_err(|err| format!("qsocket: {err}"))?;
        sendto.push(Round {
            socket: Some(time(sends_per_round, || {
                // A plain sender loses what the socket refuses, as udpsink does.
                let _ = plain.send_to(&PAYLOAD, &plain_destination);
            })),
            qsock: qsend_until_sent(&qsocket, sends_per_round, |flags| {
                qsocket.send_to(&PAYLOAD, &destination, flags)
            })?,
            calls: sends_per_round,
        });
        plain
            .connect(&plain_destination)
            .map_err(|err| format!("connect: {err}"))?;
        qsocket
            .socket()
            .connect(&plain_destination)
            .map_err(|err| format!("connect: {err}"))?;
        send.push(Round {
            socket: Some(time(sends_per_round, || {
                let _ = plain.send(&PAYLOAD);
            })),
            qsock: qsend_until_sent(&qsocket, sends_per_round, |flags| {
                qsocket.send(&PAYLOAD, flags)
            })?,
            calls: sends_per_round,
        });
        info.push(Round {
            qsock: time(infos_per_round, || {
                let _ = qsocket.info();
            }),
            socket: None,
            calls: infos_per_round,
        });
        qsocket.close().map_err(|err| format!("qclose: {err}"))?;
    }
    push("qsocket", "socket", create);
    push("qsocket, one live", "socket", create_alone);
    push("qattach", "-", attach);
    push("qchange", "-", change);
    push("qsendto", "sendto", sendto);
    push("qsend", "send", send);
    push("qinfo", "-", info);
    push("qclose", "close", close);
    Ok(rows)
}

/// Options of the worker that measures the qsockd column.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// The device qsockd schedules.
    #[arg(long)]
    device: String,
    /// Where the sends go.
    #[arg(long)]
    destination: SocketAddr,
    /// As `table1 --rounds`.
    #[arg(long)]
    rounds: u32,
    /// As `table1 --scale`.
    #[arg(long)]
    scale: f64,
}

/// The qsockd column: qsockd --foreground runs as root on the sender's
/// veth (htb at the same link rate), and a copy of this program measures the
/// calls as nobody, without capabilities, in the sender's namespace
/// ([`worker`]), handing back its rows.
fn measure_through_qsockd(bed: &TestBed, args: &Args) -> Result<Vec<Row>> {
    let device = bed.sender_dev().to_owned();
    let destination = SocketAddr::from((bed.receiver_v4(), RECEIVER_PORT));
    let _receiver = bed
        .run_in_receiver(move || UdpSocket::bind(destination))
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("cannot bind the receiver at {destination}: {err}"))?;
    let exe = std::env::current_exe().map_err(|err| format!("this program's path: {err}"))?;
    let copy = RunnableCopy::of(&exe, "table1-qsockd");
    let socket = copy.dir().join("qsockd.sock");
    let daemon = Qsockd::start(bed, "htb", LINK_RATE, &socket);
    // runuser leaves nobody no capability.
    let output = bed
        .command_in_sender("runuser", ["-u", "nobody", "--"])
        .arg(copy.path())
        .args(["table1-qsockd-worker", "--device", &device])
        .args(["--destination", &destination.to_string()])
        .args(["--rounds", &args.rounds.to_string()])
        .args(["--scale", &args.scale.to_string()])
        .env(qsock::daemon::protocol::SOCKET_ENV, daemon.socket())
        .output()
        .map_err(|err| format!("cannot run the qsockd worker through runuser: {err}"))?;
    drop(daemon);
    bed.run_in_sender(|| qsock::reset(&device))
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("qsock reset on {device} after qsockd: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the unprivileged qsockd worker failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("ROW "))
        .map(|json| serde_json::from_str(json).map_err(|err| format!("worker row {json}: {err}")))
        .collect()
}

/// `qsock-eval table1-qsockd-worker`: the calls through qsockd, as the
/// unprivileged caller [`measure_through_qsockd`] starts; prints one `ROW`
/// line of JSON per call.
pub fn worker(args: &WorkerArgs) -> Result<()> {
    let init = InitParams::new(args.device.clone(), SchedulerName::Htb);
    let mut inits = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        let report = qsock::qsockinit(&init).map_err(|err| format!("qsockinit: {err}"))?;
        inits.push(Round {
            qsock: started.elapsed(),
            socket: None,
            calls: 1,
        });
        if !report.reason.contains("qsockd") {
            return Err(format!("qsockinit did not ask qsockd: {}", report.reason));
        }
    }
    let mut rows = vec![summarize(THROUGH_QSOCKD, "qsockinit", "-", &inits)];
    let measured = Args {
        schedulers: vec![SchedulerName::Htb],
        rounds: args.rounds,
        scale: args.scale,
    };
    rows.extend(measure_calls(
        THROUGH_QSOCKD,
        &stream_params(&args.device, SchedulerName::Htb, STREAM_IPG),
        &stream_params(&args.device, SchedulerName::Htb, CHANGED_IPG),
        args.destination,
        &measured,
    )?);
    for row in &rows {
        let json = serde_json::to_string(row).map_err(|err| format!("a row as JSON: {err}"))?;
        println!("ROW {json}");
    }
    Ok(())
}

/// A periodic stream of `ipg` that may use the whole link, so that its
/// class or pacing never holds the measurement back.
fn stream_params(device: &str, scheduler: SchedulerName, ipg: Duration) -> QosParams {
    QosParams::new(
        device,
        scheduler,
        StreamParams::periodic(ipg, 0, 0)
            .work_conserving()
            .with_packet_size(PAYLOAD.len() as u32),
    )
}

fn udp_socket() -> Result<Socket> {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|err| format!("socket: {err}"))
}

fn time(calls: u32, mut call: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..calls {
        call();
    }
    started.elapsed()
}

/// `qsocket` against `socket(2)`, then `qclose` against `close(2)`, over
/// the same number of sockets.
fn create_and_close(params: &QosParams, count: u32) -> Result<(Round, Round)> {
    let started = Instant::now();
    let plain: Vec<Socket> = (0..count).map(|_| udp_socket()).collect::<Result<_>>()?;
    let plain_created = started.elapsed();
    let started = Instant::now();
    drop(plain);
    let plain_closed = started.elapsed();

    let started = Instant::now();
    let qsockets: Vec<QSocket> = (0..count)
        .map(|_| {
            QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), params)
                .map_err(|err| format!("qsocket: {err}"))
        })
        .collect::<Result<_>>()?;
    let created = started.elapsed();
    let started = Instant::now();
    for qsocket in qsockets {
        qsocket.close().map_err(|err| format!("qclose: {err}"))?;
    }
    let closed = started.elapsed();
    Ok((
        Round {
            qsock: created,
            socket: Some(plain_created),
            calls: count,
        },
        Round {
            qsock: closed,
            socket: Some(plain_closed),
            calls: count,
        },
    ))
}

/// `qsocket` against `socket(2)` with one socket open at a time, each
/// closed before the next is made (only the creation is timed): the cost
/// of a stream set up on its own, where a batch of them may outrun the
/// classes a scheduler keeps prepared.
fn create_one_at_a_time(params: &QosParams, count: u32) -> Result<Round> {
    let mut plain = Duration::ZERO;
    let mut qsock = Duration::ZERO;
    for _ in 0..count {
        let started = Instant::now();
        let socket = udp_socket()?;
        plain += started.elapsed();
        drop(socket);
        let started = Instant::now();
        let qsocket = QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), params)
            .map_err(|err| format!("qsocket: {err}"))?;
        qsock += started.elapsed();
        qsocket.close().map_err(|err| format!("qclose: {err}"))?;
    }
    Ok(Round {
        qsock,
        socket: Some(plain),
        calls: count,
    })
}

/// `qattach` on sockets made beforehand (no socket call does the same).
fn attach_round(params: &QosParams, count: u32) -> Result<Round> {
    let sockets: Vec<Socket> = (0..count).map(|_| udp_socket()).collect::<Result<_>>()?;
    let started = Instant::now();
    let attached: Vec<QSocket> = sockets
        .into_iter()
        .map(|socket| QSocket::attach(socket, params).map_err(|err| format!("qattach: {err}")))
        .collect::<Result<_>>()?;
    let elapsed = started.elapsed();
    for qsocket in attached {
        qsocket.close().map_err(|err| format!("qclose: {err}"))?;
    }
    Ok(Round {
        qsock: elapsed,
        socket: None,
        calls: count,
    })
}

/// `qchange` back and forth between two periods of one stream.
fn change_round(params: &QosParams, other: &QosParams, count: u32) -> Result<Round> {
    let mut qsocket = QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), params)
        .map_err(|err| format!("qsocket: {err}"))?;
    let started = Instant::now();
    for i in 0..count {
        let next = if i % 2 == 0 { other } else { params };
        qsocket
            .change(next)
            .map_err(|err| format!("qchange: {err}"))?;
    }
    let elapsed = started.elapsed();
    qsocket.close().map_err(|err| format!("qclose: {err}"))?;
    Ok(Round {
        qsock: elapsed,
        socket: None,
        calls: count,
    })
}

/// Sends `count` packets through `send`, retrying what the queue pushes
/// back, and waits until the scheduler has sent them all: for the `user`
/// backend the call only queues, and its scheduler thread does the sending,
/// so the cost of the whole path is what compares with `sendto`.
fn qsend_until_sent(
    qsocket: &QSocket,
    count: u32,
    send: impl Fn(&PacketFlags) -> qsock::Result<usize>,
) -> Result<Duration> {
    let before = sent_or_dropped(qsocket)?;
    // One deadline for the batch, far enough ahead that no packet is late:
    // the call carries a deadline as an application's would.
    let flags = PacketFlags::new()
        .non_droppable()
        .with_deadline(Deadline::after(Duration::from_secs(5)));
    let started = Instant::now();
    for _ in 0..count {
        while send(&flags).is_err() {
            std::thread::yield_now();
        }
    }
    let target = before + u64::from(count);
    let patience = Instant::now() + Duration::from_secs(30);
    while sent_or_dropped(qsocket)? < target {
        if Instant::now() > patience {
            return Err(format!(
                "the {} scheduler has not sent {count} packets within 30 s",
                qsocket.scheduler()
            ));
        }
        std::thread::yield_now();
    }
    Ok(started.elapsed())
}

fn sent_or_dropped(qsocket: &QSocket) -> Result<u64> {
    let info = qsocket.info().map_err(|err| format!("qinfo: {err}"))?;
    Ok(info.stats.sent_packets + info.stats.dropped.total())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn summarize(label: &str, call: &str, equivalent: &str, rounds: &[Round]) -> Row {
    let per_call = |total: Duration, calls: u32| total.as_secs_f64() * 1e9 / f64::from(calls);
    let qsock_ns = median(rounds.iter().map(|r| per_call(r.qsock, r.calls)).collect());
    let socket: Vec<f64> = rounds
        .iter()
        .filter_map(|r| r.socket.map(|s| per_call(s, r.calls)))
        .collect();
    let ratios: Vec<f64> = rounds
        .iter()
        .filter_map(|r| {
            r.socket
                .map(|s| per_call(r.qsock, r.calls) / per_call(s, r.calls))
        })
        .collect();
    Row {
        scheduler: label.to_owned(),
        call: call.to_owned(),
        equivalent: equivalent.to_owned(),
        qsock_ns,
        socket_ns: (!socket.is_empty()).then(|| median(socket)),
        ratio: (!ratios.is_empty()).then(|| median(ratios)),
        rounds: rounds.len() as u32,
        calls_per_round: rounds.first().map_or(0, |r| r.calls),
    }
}

fn format_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn section(rows: &[Row], results: &Results) -> String {
    let mut schedulers: Vec<&str> = Vec::new();
    for row in rows {
        if !schedulers.contains(&row.scheduler.as_str()) {
            schedulers.push(&row.scheduler);
        }
    }
    let mut header = vec!["call", "socket equivalent"];
    let titles: Vec<String> = schedulers
        .iter()
        .map(|s| format!("{s}: qsock vs socket (ratio)"))
        .collect();
    header.extend(titles.iter().map(String::as_str));
    let calls: Vec<(&str, &str)> = rows
        .iter()
        .filter(|row| row.scheduler == schedulers[0])
        .map(|row| (row.call.as_str(), row.equivalent.as_str()))
        .collect();
    let mut table = Vec::new();
    for (call, equivalent) in calls {
        let of = |scheduler: &str| {
            rows.iter()
                .find(|r| r.call == call && r.scheduler == scheduler)
        };
        let mut line = vec![
            format!("`{call}`"),
            if equivalent == "-" {
                "none".to_owned()
            } else {
                format!("`{equivalent}`")
            },
        ];
        for scheduler in &schedulers {
            line.push(match of(scheduler) {
                Some(row) => match (row.socket_ns, row.ratio) {
                    (Some(socket), Some(ratio)) => format!(
                        "{} vs {} (**{ratio:.2}x**)",
                        format_ns(row.qsock_ns),
                        format_ns(socket)
                    ),
                    _ => format_ns(row.qsock_ns),
                },
                None => "-".into(),
            });
        }
        table.push(line);
    }
    format!(
        "## Table 1: API calls against their socket equivalents ({tag})\n\n\
         Median over {rounds} interleaved rounds of the mean time per call; a ratio is the \
         median of the per-round ratios (the socket call measured in the same round, on the \
         same path, one column per backend's run). `qsendto`/`qsend` are timed until the \
         scheduler has sent the packets. `qsocket` makes a round's sockets one after the \
         other and closes them after; `qsocket, one live` closes each before making the next. \
         The `{THROUGH_QSOCKD}` column is the same calls made by a caller without \
         privilege (nobody) while `qsockd --foreground` schedules the device with htb. \
         Data: `{csv}`.\n\n{table}",
        tag = results.tag(),
        rounds = rows.first().map_or(0, |r| r.rounds),
        csv = results.file_name("table1", None, "csv"),
        table = markdown_table(&header, &table),
    )
}
