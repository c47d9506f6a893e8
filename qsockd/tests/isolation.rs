//! Two unprivileged users (made with useradd for the test) each attach a
//! stream through qsockd; neither can read, change or close the other's.

mod support;

use std::time::Duration;

use qsock::daemon::protocol::{self, Reply, ReplyErrorKind};
use support::{
    attached, bed, client_reply, finish, has_class, refusal, spawn_client, Daemon, TestUser,
};

#[test]
#[ignore = "the client process of the other tests; runs only when they start it"]
fn client_process_role() {
    support::client_process();
}

fn reply(line: &str) -> Reply {
    protocol::decode(line.as_bytes()).expect("a reply")
}

#[test]
fn a_user_cannot_touch_another_users_stream() {
    let bed = bed();
    let first_user = TestUser::create("qsockdt1");
    let second_user = TestUser::create("qsockdt2");
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    let (first, mut first_out) = spawn_client(
        &bed,
        &daemon,
        Some(&first_user),
        "client_process_role",
        10,
        "",
    );
    client_reply(&mut first_out);
    let (stream, class) = attached(&reply(&client_reply(&mut first_out)));
    assert!(daemon
        .wait_for_line(&format!("uid {}", first_user.uid()), Duration::from_secs(5))
        .contains(&class));
    // The second user attaches its own stream, then tries the first's
    // number: its own stream has that number on its own connection, so it
    // asks for the next one too, which is nobody's.
    let then = format!("info:{},close:{}", stream + 1, stream + 1);
    let (second, mut second_out) = spawn_client(
        &bed,
        &daemon,
        Some(&second_user),
        "client_process_role",
        10,
        &then,
    );
    client_reply(&mut second_out);
    let (_, second_class) = attached(&reply(&client_reply(&mut second_out)));
    assert_ne!(second_class, class);
    for _ in 0..2 {
        let (kind, message) = refusal(&reply(&client_reply(&mut second_out)));
        assert_eq!(kind, ReplyErrorKind::NotAttached, "{message}");
        assert!(message.contains("its own connection"), "{message}");
    }
    assert!(has_class(&bed, &class), "the first user's class went");
    finish(second);
    finish(first);
}

#[test]
fn a_config_files_users_and_quotas_decide_who_may_reserve_what() {
    let bed = bed();
    let allowed = TestUser::create("qsockdt3");
    let other = TestUser::create("qsockdt4");
    // One stream of 1062 bytes every 10 ms is 849.6 kbit/s: one fits
    // qsockdt3's quota, two do not.
    let daemon = Daemon::start_with_config(
        &bed,
        r#"
        [[device]]
        name = "DEVICE"
        scheduler = "htb"
        rate = "100mbit"
        allow_users = ["qsockdt3"]
        [device.quota]
        qsockdt3 = "1mbit"
        "#,
    );
    let (first, mut first_out) =
        spawn_client(&bed, &daemon, Some(&allowed), "client_process_role", 10, "");
    client_reply(&mut first_out);
    attached(&reply(&client_reply(&mut first_out)));
    let (second, mut second_out) =
        spawn_client(&bed, &daemon, Some(&allowed), "client_process_role", 10, "");
    client_reply(&mut second_out);
    let (kind, message) = refusal(&reply(&client_reply(&mut second_out)));
    assert_eq!(kind, ReplyErrorKind::Busy, "{message}");
    qsock_testbed::assert_mentions(
        &message,
        &["qsockdt3", "1mbit", "[device.quota]", "qsockd.toml"],
    );
    let (third, mut third_out) =
        spawn_client(&bed, &daemon, Some(&other), "client_process_role", 10, "");
    client_reply(&mut third_out);
    let (kind, message) = refusal(&reply(&client_reply(&mut third_out)));
    assert_eq!(kind, ReplyErrorKind::PermissionDenied, "{message}");
    qsock_testbed::assert_mentions(&message, &["qsockdt4", "allow_users"]);
    for child in [first, second, third] {
        finish(child);
    }
}
