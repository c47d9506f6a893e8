//! Figure 7: the remote data acquisition application (section 4.2.2). Three
//! flows send the same seeded sensor schedule across a bottleneck — lossy
//! EDF (an aperiodic qsocket whose late messages the scheduler drops),
//! lossless EDF (the same, non-droppable: late messages are sent late) and
//! no QSocket (a plain UDP socket) — while a bulk TCP transfer starts part
//! way through. The receiver counts, per interval of the time messages were
//! made, those that came after their deadline and those that never came.
//!
//! Each flow runs alone on a fresh test bed, one after the other: run at
//! once, the flows would compete for the link, and lossless EDF's late
//! messages, whose deadlines are the earliest, would go ahead of lossy
//! EDF's and make its losses.
//!
//! Per backend: `dwcs` orders by deadline in the kernel; `user` orders the
//! process's own packets by deadline, but they then queue in the link's TBF
//! with everything else; `htb` knows no deadlines (it says so), so there the
//! two "EDF" flows are HTB classes of a fixed rate, lossy and lossless alike,
//! and the figure shows what rate isolation alone does.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plotters::style::RGBColor;
use qsock::{InitParams, PacketFlags, QSocket, QosParams, Rate, SchedulerName, StreamParams};
use qsock_testbed::{BulkTransfer, TestBed};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use crate::acquisition::{self, Arrival, Message, Profile, MAX_MESSAGE_BYTES};
use crate::output::{markdown_table, Results};
use crate::plot::{self, Panel, Series};
use crate::{schedulers, Result};

const FIRST_PORT: u16 = 6001;
const BULK_PORT: u16 = 5301;
/// A message that has not come this long after its deadline counts as lost.
const GRACE: Duration = Duration::from_secs(1);
/// Senders start this long after the set-up, all at once.
const LEAD: Duration = Duration::from_millis(300);

/// Options of `qsock-eval fig7`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Schedulers to run, one run each (default: user and, as root, htb;
    /// dwcs when sch_dwcs is loaded).
    #[arg(long, value_delimiter = ',', value_parser = schedulers::parse)]
    pub schedulers: Vec<SchedulerName>,
    /// Seconds the sensor sends.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// When the bulk TCP transfer starts, in seconds; it runs to the end.
    #[arg(long, default_value_t = 30)]
    pub perturb_at: u64,
    /// Seconds per counting interval.
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    /// TCP connections of the bulk transfer (a download manager opens several).
    #[arg(long, default_value_t = 4)]
    pub bulk_connections: u16,
    /// The bottleneck's rate.
    #[arg(long, default_value = "10mbit")]
    pub rate: String,
    /// Seed of the sensor's schedule.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// On htb, the rate of each "EDF" flow's class (htb has no deadlines).
    #[arg(long, default_value = "4mbit")]
    pub htb_class_rate: String,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            schedulers: Vec::new(),
            seconds: 60,
            perturb_at: 30,
            interval: 5,
            bulk_connections: 4,
            rate: "10mbit".into(),
            seed: 7,
            htb_class_rate: "4mbit".into(),
        }
    }
}

/// The sensor: single readings and bursts, deadlines from 5 to 60 ms.
fn profile(seconds: u64) -> Profile {
    Profile {
        duration: Duration::from_secs(seconds),
        singles_per_second: 100.0,
        bursts_per_second: 1.0,
        burst_messages: (10, 30),
        budget: (Duration::from_millis(5), Duration::from_millis(60)),
        size: (200, MAX_MESSAGE_BYTES),
    }
}

/// The three ways the sensor's messages are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Flow {
    LossyEdf,
    LosslessEdf,
    Plain,
}

impl Flow {
    const ALL: [Flow; 3] = [Flow::LossyEdf, Flow::LosslessEdf, Flow::Plain];

    fn label(self) -> &'static str {
        match self {
            Flow::LossyEdf => "lossy EDF",
            Flow::LosslessEdf => "lossless EDF",
            Flow::Plain => "no QSocket",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Flow::LossyEdf => RGBColor(0, 114, 178),
            Flow::LosslessEdf => RGBColor(230, 159, 0),
            Flow::Plain => RGBColor(213, 94, 0),
        }
    }

    fn port(self) -> u16 {
        FIRST_PORT + Flow::ALL.iter().position(|f| *f == self).unwrap_or(0) as u16
    }
}

/// One line of `fig7-TAG.csv`: one flow in one interval.
#[derive(Debug, Clone, Serialize)]
struct Row {
    scheduler: String,
    flow: &'static str,
    interval_start_s: u64,
    sent: u64,
    on_time: u64,
    late: u64,
    lost: u64,
    perturbed: bool,
}

/// What a sender reports when the schedule is done.
#[derive(Debug, Default)]
struct SenderOutcome {
    /// Messages the socket refused until their deadline had passed.
    refused: u64,
    /// The scheduler's own figures (qsockets only).
    info: Option<qsock::QInfo>,
}

/// The totals of one flow in one run, for the summary.
#[derive(Debug, Clone)]
struct Totals {
    scheduler: SchedulerName,
    flow: Flow,
    sent: u64,
    late: u64,
    lost: u64,
    late_perturbed: u64,
    lost_perturbed: u64,
    /// How far past their deadlines the late messages came: median, most.
    late_by_median_ms: Option<f64>,
    late_by_max_ms: Option<f64>,
    scheduler_drops: Option<u64>,
    /// Packets the scheduler itself sent after their deadlines: its misses
    /// that it did not drop (qsockets on schedulers with deadlines only).
    scheduler_sent_late: Option<u64>,
}

/// Runs the experiment on each scheduler and writes the CSV, one PNG per
/// scheduler and the markdown section.
pub fn run(args: &Args, results: &Results) -> Result<()> {
    if args.interval == 0 || args.perturb_at >= args.seconds || args.seconds % args.interval != 0 {
        return Err(format!(
            "--seconds {} must be a whole number of --interval {} (not 0), and --perturb-at {} must come before the end",
            args.seconds, args.interval, args.perturb_at
        ));
    }
    let rate: Rate = args
        .rate
        .parse()
        .map_err(|e: qsock::Error| format!("--rate: {e}"))?;
    let class_rate: Rate = args
        .htb_class_rate
        .parse()
        .map_err(|e: qsock::Error| format!("--htb-class-rate: {e}"))?;
    let messages = Arc::new(acquisition::schedule(&profile(args.seconds), args.seed));
    println!(
        "fig7: {} messages in {} s (seed {}), bulk TCP from {} s",
        messages.len(),
        args.seconds,
        args.seed,
        args.perturb_at
    );
    let mut rows = Vec::new();
    let mut totals = Vec::new();
    for scheduler in schedulers::chosen(&args.schedulers) {
        let mut run_rows = Vec::new();
        let mut run_totals = Vec::new();
        for flow in Flow::ALL {
            println!("fig7: {scheduler}, {}, {} s", flow.label(), args.seconds);
            let (flow_rows, flow_totals) =
                run_one(args, scheduler, rate, class_rate, &messages, flow)?;
            run_rows.extend(flow_rows);
            run_totals.push(flow_totals);
        }
        for total in &run_totals {
            println!(
                "  {:<13} sent {:>5}  late {:>5}  lost {:>5}   (from {} s: late {}, lost {}; late by at most {:.1} ms)",
                total.flow.label(),
                total.sent,
                total.late,
                total.lost,
                args.perturb_at,
                total.late_perturbed,
                total.lost_perturbed,
                total.late_by_max_ms.unwrap_or(0.0)
            );
        }
        let png = results.path("fig7", Some(scheduler.as_str()), "png");
        draw(&png, scheduler, args, &run_rows)?;
        rows.extend(run_rows);
        totals.extend(run_totals);
    }
    results.write_csv("fig7", None, &rows)?;
    results.write_section("fig7", &section(args, &totals, results))?;
    Ok(())
}

/// One run of `flow` alone on a fresh test bed.
fn run_one(
    args: &Args,
    scheduler: SchedulerName,
    rate: Rate,
    class_rate: Rate,
    messages: &Arc<Vec<Message>>,
    flow: Flow,
) -> Result<(Vec<Row>, Totals)> {
    let mut bed =
        TestBed::new().map_err(|err| format!("fig7 needs the namespace test bed: {err}"))?;
    if scheduler == SchedulerName::User {
        // The user scheduler paces only this process's qsockets; the link
        // itself is a TBF that everything else queues in too.
        bed = bed
            .with_bottleneck(&rate.to_string())
            .map_err(|err| err.to_string())?;
    }
    let device = bed.sender_dev().to_owned();
    let init = InitParams::new(device.clone(), scheduler).with_link_rate(rate);
    let report = bed
        .run_in_sender(|| qsock::qsockinit(&init))
        .map_err(|err| err.to_string())?
        .map_err(|err| format!("qsockinit {scheduler} on {device}: {err}"))?;
    println!("  {}", report.reason);

    let stop = Arc::new(AtomicBool::new(false));
    let address = SocketAddr::from((bed.receiver_v4(), flow.port()));
    let socket = bed
        .run_in_receiver(move || bind_receiver(address))
        .map_err(|err| err.to_string())??;
    let receiver = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || acquisition::receive(socket, &stop))
    };

    let start = Instant::now() + LEAD;
    let start_ns = qsock::monotonic_now() + LEAD.as_nanos() as u64;
    let params = QosParams::new(
        device.clone(),
        scheduler,
        stream(flow, scheduler, class_rate),
    );
    let sender = {
        let messages = Arc::clone(messages);
        bed.spawn_in_sender(move || send(flow, &params, address, &messages, start, start_ns))
    };

    sleep_until(start + Duration::from_secs(args.perturb_at));
    let mut bulk = Vec::new();
    for i in 0..args.bulk_connections {
        bulk.push(BulkTransfer::start(&bed, BULK_PORT + i).map_err(|err| err.to_string())?);
    }
    let sent: Result<SenderOutcome> = sender
        .join()
        .map_err(|_| format!("the {} sender panicked", flow.label()))
        .and_then(|spawned| spawned.map_err(|err| err.to_string()))
        .and_then(|outcome| outcome);
    // The measurement window: a message not here a grace period after the
    // last deadline counts as lost.
    let last_deadline = messages
        .iter()
        .map(|m| m.at + m.budget)
        .max()
        .unwrap_or_default();
    sleep_until(start + last_deadline + GRACE);
    stop.store(true, Ordering::Relaxed);
    let mut bulk_bytes = 0;
    let mut bulk_failure = None;
    for transfer in bulk {
        match transfer.stop() {
            Ok(bytes) => bulk_bytes += bytes,
            Err(err) => bulk_failure = bulk_failure.or(Some(format!("bulk transfer: {err}"))),
        }
    }
    let received: Result<Vec<Arrival>> = receiver
        .join()
        .map_err(|_| format!("the {} receiver panicked", flow.label()))
        .and_then(|got| got.map_err(|err| format!("{} receiver: {err}", flow.label())));
    let _ = bed.run_in_sender(|| qsock::reset(&device));
    // The first failure, in the order things were waited for.
    let failed = |err: String| format!("fig7 on {scheduler}: {err}");
    let outcome = sent.map_err(failed)?;
    if let Some(err) = bulk_failure {
        return Err(failed(err));
    }
    let arrivals = received.map_err(failed)?;
    let bulk_seconds = args.seconds.saturating_sub(args.perturb_at).max(1);
    println!(
        "  bulk TCP: {:.1} Mbit/s over {} connections",
        bulk_bytes as f64 * 8.0 / 1e6 / bulk_seconds as f64,
        args.bulk_connections
    );

    let (rows, mut lateness_ms) = count(args, scheduler, flow, messages, &arrivals, start_ns);
    lateness_ms.sort_by(f64::total_cmp);
    let sum = |pick: fn(&Row) -> u64, perturbed_only: bool| {
        rows.iter()
            .filter(|r| r.perturbed || !perturbed_only)
            .map(pick)
            .sum()
    };
    let totals = Totals {
        scheduler,
        flow,
        sent: sum(|r| r.sent, false),
        late: sum(|r| r.late, false),
        lost: sum(|r| r.lost, false),
        late_perturbed: sum(|r| r.late, true),
        lost_perturbed: sum(|r| r.lost, true),
        late_by_median_ms: lateness_ms.get(lateness_ms.len() / 2).copied(),
        late_by_max_ms: lateness_ms.last().copied(),
        scheduler_drops: outcome
            .info
            .as_ref()
            .map(|info| info.stats.dropped.total() + outcome.refused),
        scheduler_sent_late: outcome
            .info
            .as_ref()
            .filter(|_| scheduler != SchedulerName::Htb)
            .map(|info| {
                let dropped = &info.stats.dropped;
                // Queue-full drops are no misses; the others each are.
                let missed_and_dropped = dropped.late + dropped.window + dropped.frame;
                info.stats
                    .deadline_misses
                    .saturating_sub(missed_and_dropped)
            }),
    };
    Ok((rows, totals))
}

/// The stream each flow's socket joins. htb has no deadlines, so its
/// "EDF" flows get a class of a fixed rate, work-conserving up to the link.
fn stream(flow: Flow, scheduler: SchedulerName, htb_class_rate: Rate) -> StreamParams {
    let base = if scheduler == SchedulerName::Htb {
        // One full message (UDP, IPv4 and Ethernet headers: 42 bytes) per period.
        let ipg = htb_class_rate.transmit_time(MAX_MESSAGE_BYTES as u64 + 42);
        StreamParams::periodic(ipg, 0, 0)
            .work_conserving()
            .with_packet_size(MAX_MESSAGE_BYTES as u32)
    } else {
        StreamParams::aperiodic()
    };
    match flow {
        Flow::LosslessEdf => base.lossless(),
        Flow::LossyEdf | Flow::Plain => base,
    }
}

fn bind_receiver(address: SocketAddr) -> Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
        .map_err(|err| format!("socket: {err}"))?;
    // Room for a whole burst, so the receiver itself never loses one.
    socket
        .set_recv_buffer_size(4 << 20)
        .map_err(|err| format!("SO_RCVBUF: {err}"))?;
    socket
        .bind(&address.into())
        .map_err(|err| format!("bind {address}: {err}"))?;
    Ok(socket.into())
}

/// Sends the schedule through the flow's socket, each message at its time.
fn send(
    flow: Flow,
    params: &QosParams,
    destination: SocketAddr,
    messages: &[Message],
    start: Instant,
    start_ns: u64,
) -> Result<SenderOutcome> {
    let mut buffer = [0u8; MAX_MESSAGE_BYTES];
    let mut outcome = SenderOutcome::default();
    if flow == Flow::Plain {
        let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(|err| format!("bind: {err}"))?;
        for message in messages {
            sleep_until(start + message.at);
            let made_ns = start_ns + message.at.as_nanos() as u64;
            let deadline_ns = made_ns + message.budget.as_nanos() as u64;
            let datagram = acquisition::encode(message, made_ns, deadline_ns, &mut buffer);
            // A plain sender loses what the socket refuses.
            let _ = socket.send_to(datagram, destination);
        }
        return Ok(outcome);
    }
    let socket = QSocket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP), params)
        .map_err(|err| format!("qsocket for {}: {err}", flow.label()))?;
    for message in messages {
        sleep_until(start + message.at);
        let made_ns = start_ns + message.at.as_nanos() as u64;
        let deadline_ns = made_ns + message.budget.as_nanos() as u64;
        let datagram = acquisition::encode(message, made_ns, deadline_ns, &mut buffer);
        let flags =
            PacketFlags::new().with_deadline(qsock::Deadline::from_monotonic_nanos(deadline_ns));
        loop {
            match socket.send_to(datagram, &destination, &flags) {
                Ok(_) => break,
                Err(err) if err.kind() == qsock::ErrorKind::QueueFull => {
                    // A lossy sender gives a reading up once it is useless;
                    // a lossless one waits for room (qsock has no readiness
                    // event for its queue, so it backs off and retries).
                    if flow == Flow::LossyEdf && qsock::monotonic_now() > deadline_ns {
                        outcome.refused += 1;
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(err) => return Err(format!("qsendto ({}): {err}", flow.label())),
            }
        }
    }
    outcome.info = socket.info().ok();
    socket
        .close()
        .map_err(|err| format!("qclose ({}): {err}", flow.label()))?;
    Ok(outcome)
}

/// Per interval of the time messages were made: sent, on time, late, lost;
/// and how far past its deadline each late message came (ms).
fn count(
    args: &Args,
    scheduler: SchedulerName,
    flow: Flow,
    messages: &[Message],
    arrivals: &[Arrival],
    start_ns: u64,
) -> (Vec<Row>, Vec<f64>) {
    let mut first_arrival: HashMap<u32, &Arrival> = HashMap::new();
    for arrival in arrivals {
        // A message from another run or flow would carry another start.
        let belongs = arrival.made_ns >= start_ns;
        if belongs {
            first_arrival.entry(arrival.seq).or_insert(arrival);
        }
    }
    let intervals = args.seconds / args.interval;
    let mut rows: Vec<Row> = (0..intervals)
        .map(|i| Row {
            scheduler: scheduler.to_string(),
            flow: flow.label(),
            interval_start_s: i * args.interval,
            sent: 0,
            on_time: 0,
            late: 0,
            lost: 0,
            perturbed: i * args.interval >= args.perturb_at,
        })
        .collect();
    let mut lateness_ms = Vec::new();
    for message in messages {
        let index = (message.at.as_secs() / args.interval) as usize;
        let Some(row) = rows.get_mut(index) else {
            continue;
        };
        row.sent += 1;
        match first_arrival.get(&message.seq) {
            Some(arrival) if arrival.late() => {
                row.late += 1;
                lateness_ms.push((arrival.arrived_ns - arrival.deadline_ns) as f64 / 1e6);
            }
            Some(_) => row.on_time += 1,
            None => row.lost += 1,
        }
    }
    (rows, lateness_ms)
}

/// Waits for a time of the sensor's own schedule (its clock, not a
/// synchronisation with anything).
fn sleep_until(due: Instant) {
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

fn draw(path: &std::path::Path, scheduler: SchedulerName, args: &Args, rows: &[Row]) -> Result<()> {
    let series = |pick: fn(&Row) -> u64| -> Vec<Series> {
        Flow::ALL
            .iter()
            .map(|flow| Series {
                name: flow.label().to_owned(),
                color: flow.color(),
                points: rows
                    .iter()
                    .filter(|r| r.flow == flow.label())
                    .map(|r| (r.interval_start_s as f64, pick(r) as f64))
                    .collect(),
            })
            .collect()
    };
    let x_label = format!("time of the {} s interval (s)", args.interval);
    let marker = vec![(args.perturb_at as f64, "bulk TCP starts".to_owned())];
    plot::panels(
        path,
        &format!(
            "Figure 7 ({scheduler}): remote data acquisition, per {} s interval",
            args.interval
        ),
        &[
            Panel {
                title: "late messages (arrived after their deadline)".into(),
                x_label: x_label.clone(),
                y_label: "messages".into(),
                x_range: (0.0, args.seconds as f64),
                y_max: None,
                series: series(|r| r.late),
                markers: marker.clone(),
                steps: true,
            },
            Panel {
                title: "lost messages (never arrived)".into(),
                x_label,
                y_label: "messages".into(),
                x_range: (0.0, args.seconds as f64),
                y_max: None,
                series: series(|r| r.lost),
                markers: marker,
                steps: true,
            },
        ],
    )
}

fn section(args: &Args, totals: &[Totals], results: &Results) -> String {
    let header = [
        "backend",
        "flow",
        "messages",
        "late",
        "lost",
        "late from bulk start",
        "lost from bulk start",
        "late by, median / most (ms)",
        "dropped at sender",
        "sent late by the scheduler",
    ];
    let rows: Vec<Vec<String>> = totals
        .iter()
        .map(|t| {
            vec![
                t.scheduler.to_string(),
                t.flow.label().to_owned(),
                t.sent.to_string(),
                t.late.to_string(),
                t.lost.to_string(),
                t.late_perturbed.to_string(),
                t.lost_perturbed.to_string(),
                match (t.late_by_median_ms, t.late_by_max_ms) {
                    (Some(median), Some(most)) => format!("{median:.1} / {most:.1}"),
                    _ => "-".into(),
                },
                t.scheduler_drops.map_or("-".into(), |d| d.to_string()),
                t.scheduler_sent_late.map_or("-".into(), |n| n.to_string()),
            ]
        })
        .collect();
    let mut verdicts = String::new();
    let mut seen: Vec<SchedulerName> = Vec::new();
    for t in totals {
        if seen.contains(&t.scheduler) {
            continue;
        }
        seen.push(t.scheduler);
        let of = |flow: Flow| {
            totals
                .iter()
                .find(|x| x.scheduler == t.scheduler && x.flow == flow)
        };
        if let (Some(lossy), Some(lossless)) = (of(Flow::LossyEdf), of(Flow::LosslessEdf)) {
            let holds = lossy.late == 0 && lossy.lost < lossless.late;
            verdicts.push_str(&format!(
                "- {}: lossy EDF late {} (target 0), lost {} vs lossless EDF late {}: {}\n",
                t.scheduler,
                lossy.late,
                lossy.lost,
                lossless.late,
                if holds {
                    "meets the paper's claim"
                } else {
                    "**falls short of the paper's claim**"
                }
            ));
        }
    }
    let images: String = seen
        .iter()
        .map(|s| {
            format!(
                "![Figure 7, {s}]({})\n",
                results.file_name("fig7", Some(s.as_str()), "png")
            )
        })
        .collect();
    format!(
        "## Figure 7: remote data acquisition ({tag})\n\n\
         {seconds} s of a seeded sensor schedule (seed {seed}) sent by each flow in turn, alone on \
         a fresh {rate} bottleneck; bulk TCP ({bulk} connections) from {perturb} s. Late: arrived after \
         its deadline; lost: not arrived {grace} s after it. Dropped at sender: the \
         scheduler's drops plus messages the socket refused until their deadline; sent late \
         by the scheduler: its deadline misses it did not drop (not on htb, which has no \
         deadlines). On htb the \
         \"EDF\" flows are {class} HTB classes (htb has no deadlines). Data: `{csv}`.\n\n\
         {table}\n{verdicts}\n{images}",
        tag = results.tag(),
        seconds = args.seconds,
        seed = args.seed,
        rate = args.rate,
        bulk = args.bulk_connections,
        perturb = args.perturb_at,
        grace = GRACE.as_secs(),
        class = args.htb_class_rate,
        csv = results.file_name("fig7", None, "csv"),
        table = markdown_table(&header, &rows),
    )
}
