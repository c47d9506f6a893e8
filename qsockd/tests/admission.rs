//! Admission control through the real qsockd in a test bed: a stream that
//! would take more than the device's reservable share, or than its user's
//! quota, is refused with what was asked, what is left and the setting
//! that grants more; a closed stream gives its share back.

mod support;

use std::os::fd::AsFd;
use std::time::Duration;

use qsock::daemon::protocol::{Reply, ReplyErrorKind, Request};
use support::{attached, bed, refusal, sender_udp, stream_every, Client, Daemon};

#[test]
fn over_subscription_is_refused_saying_what_is_left_and_which_setting_grants_more() {
    let bed = bed();
    // 10 Mbit/s, half reservable: 5 Mbit/s. Each stream: 1062 bytes on the
    // wire every 2 ms, 4.248 Mbit/s.
    let daemon = Daemon::start(&bed, "10mbit", &["--reservable", "0.5"]);
    let client = Client::connect(&daemon);
    let first = sender_udp(&bed);
    let (stream, _) =
        attached(&client.attach(&bed, first.as_fd(), stream_every(Duration::from_millis(2))));
    let second = sender_udp(&bed);
    let reply = client.attach(&bed, second.as_fd(), stream_every(Duration::from_millis(2)));
    let (kind, message) = refusal(&reply);
    assert_eq!(kind, ReplyErrorKind::Busy, "{message}");
    qsock_testbed::assert_mentions(
        &message,
        &[
            "4248kbit",
            "5mbit",
            "752kbit",
            "--reservable",
            bed.sender_dev(),
        ],
    );
    assert_eq!(reply.clone(), reply);
    let Reply::Error(err) = reply else {
        unreachable!()
    };
    assert_eq!(err.into_error().kind(), qsock::ErrorKind::Busy);
    // Closing the first gives its share back.
    assert_eq!(
        client.call(&Request::Close { stream }, None),
        Reply::Closed { stream }
    );
    attached(&client.attach(&bed, second.as_fd(), stream_every(Duration::from_millis(2))));
}

#[test]
fn a_users_quota_bounds_its_streams_and_names_its_setting() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &["--default-quota", "5mbit"]);
    let client = Client::connect(&daemon);
    let first = sender_udp(&bed);
    attached(&client.attach(&bed, first.as_fd(), stream_every(Duration::from_millis(2))));
    let second = sender_udp(&bed);
    let (kind, message) =
        refusal(&client.attach(&bed, second.as_fd(), stream_every(Duration::from_millis(2))));
    assert_eq!(kind, ReplyErrorKind::Busy, "{message}");
    qsock_testbed::assert_mentions(&message, &["quota", "5mbit", "752kbit", "--default-quota"]);
}

#[test]
fn init_succeeds_for_the_scheduler_qsockd_keeps_and_is_refused_for_another() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    let client = Client::connect(&daemon);
    let init = |scheduler| Request::Init {
        device: bed.sender_dev().to_owned(),
        scheduler,
        link_rate: None,
    };
    assert_eq!(
        client.call(&init(qsock::SchedulerName::Htb), None),
        Reply::Initialized {
            device: bed.sender_dev().to_owned(),
            scheduler: qsock::SchedulerName::Htb,
            link_rate: Some(qsock::Rate::from_bits_per_second(100_000_000)),
        }
    );
    let (kind, message) = refusal(&client.call(&init(qsock::SchedulerName::Dwcs), None));
    assert_eq!(kind, ReplyErrorKind::PermissionDenied, "{message}");
    qsock_testbed::assert_mentions(&message, &["qsockd", "htb", "CAP_NET_ADMIN"]);
    let elsewhere = Request::Init {
        device: "qsockdnone0".to_owned(),
        scheduler: qsock::SchedulerName::Htb,
        link_rate: None,
    };
    let (kind, message) = refusal(&client.call(&elsewhere, None));
    assert_eq!(kind, ReplyErrorKind::PermissionDenied, "{message}");
    qsock_testbed::assert_mentions(&message, &["qsockdnone0", "--device qsockdnone0"]);
    let root = bed
        .tc_in_sender(&["qdisc", "show", "dev", bed.sender_dev()])
        .expect("tc qdisc show");
    assert!(root.contains("qdisc htb 7173: root"), "{root}");
}

#[test]
fn a_root_qdisc_replaced_behind_its_back_is_logged_and_new_streams_are_refused() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    bed.tc_in_sender(&[
        "qdisc",
        "replace",
        "dev",
        bed.sender_dev(),
        "root",
        "handle",
        "1:",
        "pfifo",
    ])
    .expect("replace the root qdisc");
    daemon.wait_for_line(
        "replaced or removed behind qsockd's back",
        Duration::from_secs(5),
    );
    let client = Client::connect(&daemon);
    let socket = sender_udp(&bed);
    let (kind, message) = refusal(&client.attach(
        &bed,
        socket.as_fd(),
        stream_every(Duration::from_millis(20)),
    ));
    assert_eq!(kind, ReplyErrorKind::NotSupported, "{message}");
    assert!(
        message.contains("replaced behind qsockd's back"),
        "{message}"
    );
}
