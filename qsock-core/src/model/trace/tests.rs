use super::*;

#[test]
fn times_read_with_units() {
    assert_eq!(parse_time("0").unwrap(), 0);
    assert_eq!(parse_time("15").unwrap(), 15);
    assert_eq!(parse_time("15ns").unwrap(), 15);
    assert_eq!(parse_time("3us").unwrap(), 3_000);
    assert_eq!(parse_time("2ms").unwrap(), 2_000_000);
    assert_eq!(parse_time("1s").unwrap(), 1_000_000_000);
    for bad in ["", "ms", "1.5ms", "-1", "1h", "99999999999999999999s"] {
        assert!(parse_time(bad).is_err(), "{bad:?}");
    }
    assert_eq!(Time(1_500_000).to_string(), "1500us");
    assert_eq!(Time(2_000_000).to_string(), "2ms");
    assert_eq!(Time(7).to_string(), "7");
}

#[test]
fn written_traces_parse_back() {
    let text = "\
# a header line
#
# after a blank comment

rate 1000000
limit 5
stream 1 period=10ms oln=1 old=4 droppable=no wc=yes
stream 2
arrive 0 1 id=1 len=100 deadline=5ms drop=no start
arrive 1ms be id=2 len=10 drop=yes
send 0 1 id=1
drop 1ms be id=2 queue_full
refuse 2ms 3 id=3 unknown_stream
send 3ms 1 id=4 late
window 1 x=1 y=4
window 2 x=0 y=0
";
    let trace = parse(text).unwrap();
    assert_eq!(trace.header.len(), 3);
    assert_eq!(trace.config.limit, 5);
    assert_eq!(trace.streams.len(), 2);
    assert!(!trace.streams[0].1.droppable);
    assert_eq!(trace.arrivals[0].deadline, Some(5_000_000));
    assert!(trace.arrivals[0].frame_start);
    assert_eq!(trace.expected.events.len(), 4);
    let again = parse(&write(&trace)).unwrap();
    assert_eq!(again, trace);
}

#[test]
fn errors_name_the_line() {
    let e = parse("rate none\narrive 0 1 id=1\n").unwrap_err();
    assert!(e.message().contains("line 2"), "{e}");
    assert!(e.message().contains("missing len="), "{e}");
    let e = parse("arrive 5 be id=1 len=1\narrive 4 be id=2 len=1\n").unwrap_err();
    assert!(e.message().contains("time order"), "{e}");
    let e = parse("arrive 5 be id=1 len=1\nstream 1\n").unwrap_err();
    assert!(e.message().contains("before the first arrive"), "{e}");
    let e = parse("frobnicate\n").unwrap_err();
    assert!(e.message().contains("unknown statement"), "{e}");
    let e = parse("arrive 5 be id=1 len=1 colour=blue\n").unwrap_err();
    assert!(e.message().contains("unexpected"), "{e}");
}

#[test]
fn diff_marks_the_differing_lines() {
    // One best-effort packet sent at 0.
    let sent = |id| Outcome {
        events: vec![Event::Send {
            time: 0,
            class: Class::BestEffort,
            id,
            late: false,
        }],
        windows: vec![],
    };
    let expected = sent(1);
    assert!(expected.diff(&expected.clone()).is_none());
    let actual = sent(2);
    let report = expected.diff(&actual).unwrap();
    assert!(
        report.contains("first difference at result line 1"),
        "{report}"
    );
    assert!(report.contains("! send 0 be id=1"), "{report}");
}
