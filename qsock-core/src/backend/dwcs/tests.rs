use qsock_testbed::assert_mentions;

use super::*;
use tc::DwcsCounters;

#[test]
fn class_options_follow_the_stream() {
    let periodic = StreamParams::periodic(Duration::from_millis(40), 1, 4);
    assert_eq!(
        class_options(&periodic),
        Some(DwcsClassOptions {
            period_ns: Some(40_000_000),
            oln: Some(1),
            old: Some(4),
            flags: Some(TC_DWCS_CLASS_F_DROPPABLE),
        })
    );
    let lossless = class_options(&periodic.lossless().work_conserving());
    assert_eq!(
        lossless.and_then(|o| o.flags),
        Some(TC_DWCS_CLASS_F_WORK_CONSERVING)
    );
    let aperiodic = class_options(&StreamParams::aperiodic());
    assert_eq!(aperiodic.and_then(|o| o.period_ns), None);
    assert_eq!(
        aperiodic.and_then(|o| o.flags),
        Some(
            TC_DWCS_CLASS_F_APERIODIC | TC_DWCS_CLASS_F_DROPPABLE | TC_DWCS_CLASS_F_WORK_CONSERVING
        )
    );
    assert_eq!(class_options(&StreamParams::best_effort()), None);
}

#[test]
fn reinstall_changes_only_what_is_named_and_differs() {
    let current = DwcsQdiscOptions {
        rate: Some(1_250_000),
        limit: Some(1000),
        resolution_ns: Some(1_000_000),
    };
    let same = InitParams::new("eth0", SchedulerName::Dwcs)
        .with_link_rate(Rate::from_bits_per_second(10_000_000));
    assert_eq!(changed_options(&same, &current), None);
    let mut faster = InitParams::new("eth0", SchedulerName::Dwcs)
        .with_link_rate(Rate::from_bits_per_second(20_000_000));
    faster.limit = Some(1000);
    assert_eq!(
        changed_options(&faster, &current),
        Some(DwcsQdiscOptions {
            rate: Some(2_500_000),
            ..DwcsQdiscOptions::default()
        })
    );
    let finer = InitParams::new("eth0", SchedulerName::Dwcs)
        .with_deadline_resolution(Duration::from_micros(100));
    assert_eq!(
        changed_options(&finer, &current).and_then(|o| o.resolution_ns),
        Some(100_000)
    );
    let fresh = fresh_options(
        &InitParams::new("eth0", SchedulerName::Dwcs),
        Rate::from_bits_per_second(8_000),
    );
    assert_eq!(fresh.rate, Some(1000));
    assert_eq!(fresh.limit, None, "the module's default limit");
    assert_eq!(fresh.resolution_ns, Some(1_000_000));
}

#[test]
fn unknown_kind_says_how_to_get_the_module() {
    for (errno, extack) in [
        (libc::ENOENT, "Specified qdisc kind is unknown"),
        (libc::EINVAL, "Unknown qdisc \"dwcs\""),
    ] {
        let kernel = Error::os(
            format!("tc qdisc replace root handle 7173: dwcs on eth0 (kernel: {extack})"),
            std::io::Error::from_raw_os_error(errno),
        );
        let err = module_missing(kernel);
        assert_eq!(err.kind(), ErrorKind::NotSupported, "{err}");
        assert_mentions(
            err.message(),
            &[
                "modprobe sch_dwcs",
                "DKMS",
                "kmod-dwcs/",
                "htb",
                "user",
                extack,
            ],
        );
    }
    let other = Error::os("x", std::io::Error::from_raw_os_error(libc::EINVAL));
    assert_eq!(module_missing(other).kind(), ErrorKind::InvalidInput);
}

#[test]
fn xstats_become_scheduler_stats() {
    let x = TcDwcsXstats {
        counters: DwcsCounters {
            sent_packets: 4,
            sent_bytes: 4000,
            drops_late: 1,
            drops_window: 2,
            drops_frame: 3,
            drops_queue_full: 4,
            refused: 5,
            deadline_misses: 6,
            window_violations: 7,
        },
        queue_delay_sum_ns: 4_000_000,
        queue_delay_max_ns: 3_000_000,
        backlog_packets: 2,
        backlog_bytes: 2000,
        x: 1,
        y: 3,
        oln: 1,
        old: 4,
    };
    let stats = class_stats(&x);
    assert_eq!(stats.dropped.total(), 10);
    assert_eq!(stats.dropped.window, 2);
    let delay = stats.queue_delay.unwrap_or_default();
    assert_eq!(delay.mean, Duration::from_millis(1));
    assert_eq!(delay.max, Duration::from_millis(3));
    assert_eq!(stats.current_window, Some(WindowConstraint::new(1, 3)));
    let idle = class_stats(&TcDwcsXstats::default());
    assert_eq!(idle.queue_delay.unwrap_or_default().mean, Duration::ZERO);
}
