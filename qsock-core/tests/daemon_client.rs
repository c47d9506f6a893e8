//! Kernel scheduling for a caller without CAP_NET_ADMIN, through the real
//! `qsockd --foreground` running as root in a test bed's sender namespace.
//!
//! Each test runs as root: it builds the bed, starts qsockd, creates its
//! users with `useradd` (removed at the end, also on failure) and runs a
//! copy of this binary as them (`runuser`), in the sender's namespace; the
//! `role_*` tests are what those copies run, and do nothing when run
//! directly. Root then checks the kernel's side with `tc`.
//!
//! Needs root and `target/release/qsockd` (`cargo build --release -p
//! qsockd`).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use qsock::daemon::protocol::{self, Reply, ReplyErrorKind, Request, PROTOCOL_VERSION};
use qsock::{ErrorKind, InitParams, PacketFlags, QSocket, QosParams, SchedulerName, StreamParams};
use qsock_testbed::{QsockdBed, TestUser};
use socket2::{Domain, Protocol, Type};

const ROLE: &str = "QSOCK_TEST_ROLE";
const DEVICE: &str = "QSOCK_TEST_DEVICE";
const RECEIVER: &str = "QSOCK_TEST_RECEIVER";
const RECEIVER_PORT: u16 = 5004;
/// The link qsockd gives the device: small enough that one stream of the
/// role's can over-subscribe it.
const LINK_RATE: &str = "100mbit";

/// What a role runs with, when this process is that role.
fn role(name: &str) -> Option<(String, SocketAddr)> {
    if std::env::var(ROLE).ok()? != name {
        return None;
    }
    let device = std::env::var(DEVICE).expect("the device is given");
    let receiver = std::env::var(RECEIVER)
        .expect("the receiver is given")
        .parse()
        .expect("the receiver is an address");
    Some((device, receiver))
}

/// This process has no capability at all (runuser dropped them).
fn assert_unprivileged() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(
        u64::from_str_radix(&effective, 16).unwrap(),
        0,
        "the role must run without capabilities"
    );
}

/// Waits for root's go-ahead on standard input.
fn wait_for_root() {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
}

fn periodic(device: &str, ipg: Duration) -> QosParams {
    QosParams::new(
        device,
        SchedulerName::Htb,
        StreamParams::periodic(ipg, 0, 0).with_packet_size(1000),
    )
}

/// As the test user: qsockinit, a stream on htb that sends, qinfo, qchange,
/// an over-subscribing stream refused, qclose.
#[test]
fn role_stream_through_qsockd() {
    let Some((device, receiver)) = role("stream") else {
        return;
    };
    assert_unprivileged();
    let report = qsock::qsockinit(&InitParams::new(&device, SchedulerName::Htb)).unwrap();
    assert_eq!(report.scheduler, SchedulerName::Htb);
    assert!(report.reason.contains("qsockd"), "{}", report.reason);
    let report = qsock::qsockinit(&InitParams::new(&device, SchedulerName::Auto)).unwrap();
    assert_eq!(report.scheduler, SchedulerName::Htb, "{}", report.reason);
    // auto prefers qsockd's kernel scheduler to the user scheduler.
    let auto = QSocket::new(
        Domain::IPV4,
        Type::DGRAM,
        Some(Protocol::UDP),
        &QosParams {
            scheduler: SchedulerName::Auto,
            ..periodic(&device, Duration::from_millis(10))
        },
    )
    .unwrap();
    assert_eq!(auto.scheduler(), SchedulerName::Htb);
    auto.close().unwrap();
    let err = qsock::qsockinit(&InitParams::new(&device, SchedulerName::Dwcs)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.message().contains("qsockd"), "{err}");

    let mut qsocket = stream_of_a_millisecond(&device);
    assert_eq!(qsocket.scheduler(), SchedulerName::Htb);
    let info = send_and_wait(&qsocket, receiver, 100);
    assert_eq!(info.scheduler, SchedulerName::Htb);
    assert!(
        info.stats.sent_packets >= 100 && info.stats.sent_bytes >= 100_000,
        "qinfo through qsockd: {info:?}"
    );
    assert_eq!(
        info.link_rate.map(|rate| rate.to_string()).as_deref(),
        Some(LINK_RATE)
    );
    println!(
        "ATTACHED class={} sent_bytes={}",
        class_of(&qsocket),
        info.stats.sent_bytes
    );
    std::io::stdout().flush().unwrap();
    wait_for_root();

    qsocket
        .change(&periodic(&device, Duration::from_millis(2)))
        .unwrap();

    // 1000 bytes every 100 µs is some 85 Mbit/s: within the link, beyond
    // the 80 % of it qsockd lets users reserve.
    let refused = QSocket::new(
        Domain::IPV4,
        Type::DGRAM,
        Some(Protocol::UDP),
        &periodic(&device, Duration::from_micros(100)),
    )
    .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::AdmissionRefused, "{refused}");
    assert_eq!(refused.errno(), libc::EBUSY, "{refused}");
    assert!(refused.message().starts_with("qsockd: "), "{refused}");
    println!("REFUSED {refused}");

    qsocket.close().unwrap();
    println!("ROLE OK");
}

/// As the test user: a stream attached, then (once root restarted qsockd)
/// asked for its figures, which attaches it again on a new connection; its
/// packets then count in the class its socket is in.
#[test]
fn role_restart() {
    let Some((device, receiver)) = role("restart") else {
        return;
    };
    assert_unprivileged();
    let qsocket = stream_of_a_millisecond(&device);
    println!("ATTACHED class={}", class_of(&qsocket));
    std::io::stdout().flush().unwrap();
    wait_for_root();
    let before = qsocket.info().unwrap().stats.sent_bytes;
    let after = send_and_wait(&qsocket, receiver, 50).stats.sent_bytes;
    assert!(
        after >= before + 50_000,
        "the re-attached stream sent {} of 50,000 bytes",
        after - before
    );
    println!("REATTACHED class={}", class_of(&qsocket));
    std::io::stdout().flush().unwrap();
    wait_for_root();
    qsocket.close().unwrap();
    println!("ROLE OK");
}

/// An htb stream of 1000-byte packets a millisecond apart: about 8.5
/// Mbit/s on the wire.
fn stream_of_a_millisecond(device: &str) -> QSocket {
    QSocket::new(
        Domain::IPV4,
        Type::DGRAM,
        Some(Protocol::UDP),
        &periodic(device, Duration::from_millis(1)),
    )
    .unwrap()
}

/// Sends `count` packets of 1000 bytes and waits (ten seconds at most)
/// until qinfo counts them sent; the last qinfo.
fn send_and_wait(qsocket: &QSocket, receiver: SocketAddr, count: u64) -> qsock::QInfo {
    let payload = [0x5a; 1000];
    let before = qsocket.info().unwrap().stats.sent_packets;
    for _ in 0..count {
        qsocket
            .send_to(&payload, &receiver, &PacketFlags::new())
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = qsocket.info().unwrap();
        if info.stats.sent_packets >= before + count || Instant::now() > deadline {
            return info;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The class qsockd put the socket in: its SO_PRIORITY, major:minor.
fn class_of(qsocket: &QSocket) -> String {
    let priority = qsocket.socket().priority().unwrap();
    format!("{:x}:{:x}", priority >> 16, priority & 0xffff)
}

/// As a second user: qsockd's stream numbers 0..16 name nothing of this
/// user's, whoever holds them on other connections: every change, figure
/// and close is refused.
#[test]
fn role_meddle() {
    let Some(_) = role("meddle") else {
        return;
    };
    assert_unprivileged();
    let socket = protocol::connect_to(&protocol::socket_path()).unwrap();
    let hello = protocol::call(
        socket.as_fd(),
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
        None,
    )
    .unwrap();
    assert_eq!(
        hello,
        Reply::Hello {
            version: PROTOCOL_VERSION
        }
    );
    for stream in 0..16 {
        for request in [
            Request::Change {
                stream,
                params: StreamParams::periodic(Duration::from_micros(20), 0, 0),
            },
            Request::Info { stream },
            Request::Close { stream },
        ] {
            match protocol::call(socket.as_fd(), &request, None).unwrap() {
                Reply::Error(refusal) => assert!(
                    matches!(
                        refusal.kind,
                        ReplyErrorKind::NotAttached | ReplyErrorKind::PermissionDenied
                    ),
                    "{request:?}: {refusal:?}"
                ),
                other => panic!("{request:?} of another user's stream was answered {other:?}"),
            }
        }
    }
    println!("ROLE OK");
}

fn setup(tag: &str) -> QsockdBed {
    let exe = std::env::current_exe().unwrap();
    QsockdBed::start(&exe, tag, LINK_RATE, RECEIVER_PORT)
}

/// A role running as a test user: this binary's `role_NAME` test in the
/// sender's namespace, talking to qsockd, read line by line.
struct Role {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// Everything it printed so far.
    seen: String,
}

impl Role {
    fn start(setup: &QsockdBed, user: &TestUser, name: &str) -> Role {
        let test = format!("role_{}", role_test_name(name));
        let mut child = user
            .command_in_sender(
                &setup.bed,
                setup.copy.path(),
                ["--exact", &test, "--nocapture", "--test-threads=1"],
            )
            .env(protocol::SOCKET_ENV, setup.daemon.socket())
            .env(ROLE, name)
            .env(DEVICE, setup.bed.sender_dev())
            .env(RECEIVER, setup.receiver.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Role {
            stdin: child.stdin.take(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            seen: String::new(),
        }
    }

    /// Reads up to the line that holds `marker` (libtest may write "test
    /// NAME ... " ahead of it) and returns that line; fails with everything
    /// the role said when it ends first.
    fn expect(&mut self, marker: &str) -> String {
        loop {
            let mut line = String::new();
            let read = self.stdout.read_line(&mut line).unwrap();
            self.seen.push_str(&line);
            if line.contains(marker) {
                return line;
            }
            if read == 0 {
                self.stdin.take();
                let output = stderr_once_ended(&mut self.child);
                panic!(
                    "the role ended before saying {marker:?}:\n{}\n{output}",
                    self.seen
                );
            }
        }
    }

    /// Lets the role go on past its wait for root.
    fn go(&mut self) {
        writeln!(self.stdin.as_mut().unwrap(), "go").unwrap();
    }

    /// Waits for the role to end, and fails with its output unless it
    /// passed; everything it printed.
    fn finish(mut self) -> String {
        self.stdin.take();
        self.expect("ROLE OK");
        let stderr = stderr_once_ended(&mut self.child);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the role failed ({status}):\n{}\n{stderr}",
            self.seen
        );
        self.seen
    }
}

/// Waits for `child` to end; what it wrote on standard error.
fn stderr_once_ended(child: &mut Child) -> String {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let _ = child.wait();
    stderr
}

fn role_test_name(name: &str) -> &str {
    match name {
        "stream" => "stream_through_qsockd",
        "restart" => "restart",
        other => other,
    }
}

/// The class the role said its socket is in (`ATTACHED class=7173:N`).
fn attached_class(seen: &str) -> String {
    seen.split_whitespace()
        .find_map(|word| word.strip_prefix("class="))
        .unwrap_or_else(|| panic!("the role named no class:\n{seen}"))
        .to_owned()
}

#[test]
fn unprivileged_stream_gets_its_htb_class_through_qsockd() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let setup = setup("daemon-client-stream");
    let user = TestUser::create("qsockt1");
    let mut role = Role::start(&setup, &user, "stream");
    let class = attached_class(&role.expect("ATTACHED"));
    let bytes = setup.bytes_of(&class);
    assert!(
        bytes.is_some_and(|bytes| bytes >= 100_000),
        "the stream's class {class} counted {bytes:?} bytes of the 100,000 sent"
    );
    role.go();
    let said = role.finish();
    assert!(said.contains("REFUSED qsockd: "), "{said}");
    setup.wait_gone(&class);
    drop(user);
}

#[test]
fn a_second_user_cannot_change_or_close_the_first_users_stream() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let setup = setup("daemon-client-meddle");
    let first = TestUser::create("qsockt2");
    let second = TestUser::create("qsockt3");
    let mut holder = Role::start(&setup, &first, "stream");
    let class = attached_class(&holder.expect("ATTACHED"));
    let before = setup.stream_classes();
    assert!(
        setup.bytes_of(&class).is_some(),
        "{class} is not in {before:?}"
    );

    Role::start(&setup, &second, "meddle").finish();
    assert_eq!(
        setup.bytes_of(&class),
        before
            .iter()
            .find(|(id, _)| *id == class)
            .map(|(_, bytes)| *bytes),
        "the second user's requests changed the first user's class {class}: before {before:?}, \
         after {:?}",
        setup.stream_classes()
    );

    holder.go();
    holder.finish();
    setup.wait_gone(&class);
}

#[test]
fn a_stream_is_attached_again_after_qsockd_restarts() {
    if std::env::var_os(ROLE).is_some() {
        return;
    }
    let mut setup = setup("daemon-client-restart");
    let user = TestUser::create("qsockt6");
    let mut role = Role::start(&setup, &user, "restart");
    role.expect("ATTACHED");
    setup.daemon.restart(&setup.bed);
    role.go();
    let class = attached_class(&role.expect("REATTACHED"));
    let bytes = setup.bytes_of(&class);
    assert!(
        bytes.is_some_and(|bytes| bytes >= 50_000),
        "after the restart the stream's class {class} counted {bytes:?} bytes of the 50,000 \
         sent; classes: {:?}\n{}",
        setup.stream_classes(),
        setup.daemon.log_text()
    );
    role.go();
    role.finish();
    setup.wait_gone(&class);
}
