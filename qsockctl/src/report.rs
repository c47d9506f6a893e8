//! What `qsockctl show` and `prune` print about a device and its streams.

use qsock::{DeviceReport, PrunedStream, SchedulerStats, StreamOwner};

/// `pid 1234 (command)`, the way the stream lines print an owner.
fn describe_owner(owner: &StreamOwner) -> String {
    format!("pid {} uid {} ({})", owner.pid, owner.uid, owner.command)
}

pub(crate) fn describe_pruned(stream: &PrunedStream) -> String {
    let rate = stream
        .rate
        .map_or_else(String::new, |rate| format!(" rate {rate}"));
    let owner = stream.owner.as_ref().map_or_else(
        || "which had no recorded owner".to_owned(),
        |owner| format!("whose owner {} is gone", describe_owner(owner)),
    );
    format!("stream {}{rate}, {owner}", stream.id)
}
pub(crate) fn print_report(report: &DeviceReport) {
    let scheduler = report
        .scheduler
        .map_or_else(|| "none".to_owned(), |name| name.to_string());
    let rate = report
        .link_rate
        .map_or_else(|| "device speed".to_owned(), |rate| rate.to_string());
    println!(
        "{}: scheduler {scheduler}, root qdisc {}, link rate {rate}",
        report.device, report.root_qdisc
    );
    for stream in &report.streams {
        let rate = stream
            .rate
            .map_or_else(String::new, |rate| format!(" rate {rate}"));
        let owner = match (&stream.owner, stream.stale) {
            (Some(owner), false) => format!(" owner {}", describe_owner(owner)),
            (None, false) => String::new(),
            (Some(owner), true) => format!(" STALE: owner {} is gone", describe_owner(owner)),
            (None, true) => " STALE: no process holds it".to_owned(),
        };
        println!("stream {}{rate}{owner}", stream.id);
        print_stats(&stream.stats);
    }
    let stale = report.streams.iter().filter(|stream| stream.stale).count();
    if stale > 0 {
        println!(
            "{stale} stale stream(s) still reserve their rates: `qsockctl prune --dev {}` removes \
             them (the next qsocket on the device does too)",
            report.device
        );
    }
    if let Some(best_effort) = &report.best_effort {
        match report
            .best_effort_rate
            .filter(|&cap| Some(cap) != report.link_rate)
        {
            Some(cap) => println!("best effort, capped at {cap}"),
            None => println!("best effort"),
        }
        print_stats(best_effort);
    }
}

fn print_stats(stats: &SchedulerStats) {
    println!(
        " Sent {} bytes {} pkt (dropped {}: late {}, window {}, frame {}, queue full {}) backlog {}b {}p",
        stats.sent_bytes,
        stats.sent_packets,
        stats.dropped.total(),
        stats.dropped.late,
        stats.dropped.window,
        stats.dropped.frame,
        stats.dropped.queue_full,
        stats.backlog_bytes,
        stats.backlog_packets
    );
    let mut line = format!(
        " deadline misses {} window violations {}",
        stats.deadline_misses, stats.window_violations
    );
    if let Some(window) = stats.current_window {
        line += &format!(" window {}/{}", window.oln, window.old);
    }
    if let Some(delay) = stats.queue_delay {
        line += &format!(" queue delay mean {:?} max {:?}", delay.mean, delay.max);
    }
    println!("{line}");
}
