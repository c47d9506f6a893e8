//! A client's classes live as long as its connection: a client killed with
//! SIGKILL loses its class within a second, seen in `tc class show`; and a
//! restart of qsockd keeps the classes of clients that still run, for them
//! to attach again.

mod support;

use std::os::fd::AsFd;
use std::time::Duration;

use qsock::daemon::protocol::{self, Reply};
use support::{
    attached, bed, client_reply, has_class, measure_until, sender_udp, spawn_client, stream_every,
    Client, Daemon,
};

#[test]
#[ignore = "the client process of the other tests; runs only when they start it"]
fn client_process_role() {
    support::client_process();
}

#[test]
fn a_client_killed_with_sigkill_loses_its_class_within_a_second() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    let (mut child, mut stdout) = spawn_client(&bed, &daemon, None, "client_process_role", 10, "");
    client_reply(&mut stdout); // Hello
    let reply: Reply = protocol::decode(client_reply(&mut stdout).as_bytes()).expect("a reply");
    let (_, class) = attached(&reply);
    assert!(has_class(&bed, &class), "{class} is not in tc class show");
    child.kill().expect("SIGKILL the client");
    child.wait().expect("reap the client");
    let gone = measure_until(Duration::from_secs(5), || !has_class(&bed, &class));
    let gone = gone.unwrap_or_else(|| {
        panic!(
            "class {class} outlived its killed client by 5 s; qsockd's log:\n{}",
            daemon.log()
        )
    });
    eprintln!("class {class} removed {gone:?} after its client was killed");
    assert!(
        gone < Duration::from_secs(1),
        "class {class} took {gone:?} to go"
    );
}

#[test]
fn a_restart_keeps_the_classes_of_running_clients_for_them_to_attach_again() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "100mbit", &[]);
    let socket_path = daemon.socket.clone();
    let udp = sender_udp(&bed);
    let client = Client::connect(&daemon);
    let (_, class) =
        attached(&client.attach(&bed, udp.as_fd(), stream_every(Duration::from_millis(5))));
    // The configured rate reaches the kernel after the reply: Info waits for it.
    client.call(&protocol::Request::Info { stream: 1 }, None);
    daemon.kill();
    drop(client);
    assert!(has_class(&bed, &class), "{class} went with the daemon");
    let daemon = Daemon::start_at(&bed, &socket_path, "100mbit", &[]);
    // The new daemon adopts what it finds before it listens.
    let kept = format!("kept class {class}");
    assert!(
        daemon.log().contains(&kept),
        "no {kept:?} in:\n{}",
        daemon.log()
    );
    assert!(has_class(&bed, &class), "{class} went at the restart");
    let client = Client::connect(&daemon);
    let (_, again) =
        attached(&client.attach(&bed, udp.as_fd(), stream_every(Duration::from_millis(5))));
    assert_eq!(again, class, "the socket's class was not taken back");
    drop(client);
    let gone = measure_until(Duration::from_secs(5), || !has_class(&bed, &class));
    assert!(gone.is_some(), "{class} outlived its second connection");
}
