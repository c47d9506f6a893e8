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
