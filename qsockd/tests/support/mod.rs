//! What the qsockd tests share: a test bed with the real `qsockd
//! --foreground` on its sender's veth, a client speaking the protocol
//! module directly, and unprivileged users made for a test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qsock::daemon::protocol::{self, Reply, ReplyErrorKind, Request, PROTOCOL_VERSION};
use qsock::{QosParams, SchedulerName, StreamParams};
use qsock_testbed::TestBed;
pub use qsock_testbed::TestUser;

/// A bed, or a panic saying that the tests need root.
pub fn bed() -> TestBed {
    TestBed::new().unwrap_or_else(|err| {
        panic!(
            "the qsockd tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to build namespaces and \
             install qdiscs: {err}"
        )
    })
}

/// qsockd running in a bed's sender namespace, stopped (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    /// Its socket.
    pub socket: PathBuf,
    dir: PathBuf,
    log: Arc<Mutex<String>>,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    /// `qsockd --foreground` on the sender's veth with htb at `rate` and
    /// `extra` arguments; returns once it listens.
    pub fn start(bed: &TestBed, rate: &str, extra: &[&str]) -> Daemon {
        let socket = Daemon::scratch(bed).join("qsockd.sock");
        Daemon::start_at(bed, &socket, rate, extra)
    }

    /// `qsockd --config FILE` with `config` as the file, in which
    /// `DEVICE` stands for the sender's veth.
    pub fn start_with_config(bed: &TestBed, config: &str) -> Daemon {
        let socket = Daemon::scratch(bed).join("qsockd.sock");
        let file = socket.with_file_name("qsockd.toml");
        std::fs::write(&file, config.replace("DEVICE", bed.sender_dev()))
            .expect("write the config");
        let file = file.to_str().expect("a UTF-8 path").to_owned();
        let socket_arg = socket.to_str().expect("a UTF-8 socket path").to_owned();
        Daemon::spawn(bed, &socket, &["--config", &file, "--socket", &socket_arg])
    }

    /// A scratch directory others may search, for the socket.
    fn scratch(bed: &TestBed) -> PathBuf {
        let dir = qsock_testbed::scratch_dir(&format!("qsockd-{}", bed.sender_ns()));
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("make the scratch directory searchable");
        dir
    }

    /// The same, listening at `socket`.
    pub fn start_at(bed: &TestBed, socket: &Path, rate: &str, extra: &[&str]) -> Daemon {
        let socket_arg = socket.to_str().expect("a UTF-8 socket path");
        let mut args = vec![
            "--foreground",
            "--socket",
            socket_arg,
            "--device",
            bed.sender_dev(),
            "--scheduler",
            "htb",
            "--rate",
            rate,
        ];
        args.extend_from_slice(extra);
        Daemon::spawn(bed, socket, &args)
    }

    fn spawn(bed: &TestBed, socket: &Path, args: &[&str]) -> Daemon {
        let mut child = bed
            .command_in_sender(env!("CARGO_BIN_EXE_qsockd"), args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start qsockd");
        let stderr = child.stderr.take().expect("qsockd's stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[qsockd] {line}");
                kept.lock().expect("log").push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let daemon = Daemon {
            child,
            socket: socket.to_owned(),
            dir: socket.parent().expect("a directory").to_owned(),
            log,
            lines,
        };
        daemon.wait_for_line("listening on", Duration::from_secs(20));
        daemon
    }

    /// Waits until qsockd logs a line containing `needle`; panics with its
    /// log after `timeout`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "qsockd did not log {needle:?} within {timeout:?}; its log:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Everything qsockd logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many descriptors it holds open.
    pub fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("qsockd's /proc/PID/fd")
            .count()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it with SIGKILL (as a crash or `systemctl kill` would), leaving
    /// its classes and records behind.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A connection to qsockd that speaks the protocol module directly.
pub struct Client {
    /// The connection.
    pub fd: OwnedFd,
}

impl Client {
    /// Connects without saying Hello.
    pub fn raw(daemon: &Daemon) -> Client {
        let fd = protocol::connect_to(&daemon.socket).expect("connect to qsockd");
        Client { fd }
    }

    /// Connects and exchanges Hello.
    pub fn connect(daemon: &Daemon) -> Client {
        let client = Client::raw(daemon);
        let reply = client.call(
            &Request::Hello {
                version: PROTOCOL_VERSION,
            },
            None,
        );
        assert_eq!(
            reply,
            Reply::Hello {
                version: PROTOCOL_VERSION
            }
        );
        client
    }

    /// Sends `request` (with `fd`) and returns the reply.
    pub fn call(&self, request: &Request, fd: Option<BorrowedFd<'_>>) -> Reply {
        protocol::call(self.fd.as_fd(), request, fd).expect("a reply from qsockd")
    }

    /// Attaches `socket` as a stream of `stream` on the bed's sender device.
    pub fn attach(&self, bed: &TestBed, socket: BorrowedFd<'_>, stream: StreamParams) -> Reply {
        let params = QosParams::new(bed.sender_dev(), SchedulerName::Htb, stream);
        self.call(&Request::Attach { params }, Some(socket))
    }

    /// Whether qsockd closed the connection (a read finds end of file).
    pub fn closed_by_daemon(&self) -> bool {
        matches!(
            protocol::recv_frame(self.fd.as_fd(), nix::sys::socket::MsgFlags::empty()),
            Err(protocol::RecvError::Closed) | Err(protocol::RecvError::Io(_))
        )
    }
}

/// The refusal's kind and text, or a panic naming the reply.
pub fn refusal(reply: &Reply) -> (ReplyErrorKind, String) {
    match reply {
        Reply::Error(err) => (err.kind, err.message.clone()),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The stream id and class of an `Attached` reply, or a panic naming it.
pub fn attached(reply: &Reply) -> (u64, String) {
    match reply {
        Reply::Attached { stream, class, .. } => (*stream, class.clone()),
        other => panic!("expected Attached, got {other:?}"),
    }
}

/// A UDP socket in the bed's sender namespace.
pub fn sender_udp(bed: &TestBed) -> UdpSocket {
    bed.run_in_sender(|| UdpSocket::bind((bed.sender_v4(), 0)))
        .expect("enter the sender namespace")
        .expect("a UDP socket")
}

/// A stream of 1000-byte datagrams every `period`: 8.5 kbit per ms of
/// period less, with the 62 bytes of headers the scheduler counts.
pub fn stream_every(period: Duration) -> StreamParams {
    StreamParams::periodic(period, 0, 0).with_packet_size(1000)
}

/// `tc class show dev SENDER`.
pub fn classes(bed: &TestBed) -> String {
    bed.tc_in_sender(&["class", "show", "dev", bed.sender_dev()])
        .expect("tc class show")
}

/// Whether the sender's device has class `id` (e.g. `7173:2`).
pub fn has_class(bed: &TestBed, id: &str) -> bool {
    classes(bed)
        .lines()
        .any(|line| line.split_whitespace().nth(2) == Some(id))
}

/// The classes qsockd keeps prepared on a device when no stream holds one
/// (`PREPARED_CLASSES` of qsockd's `devices.rs`).
pub const PREPARED: usize = 128;

/// How many stream classes the sender's htb has (all but the link's and
/// best effort's).
pub fn stream_classes(bed: &TestBed) -> usize {
    classes(bed)
        .lines()
        .filter(|line| {
            let id = line.split_whitespace().nth(2).unwrap_or("");
            id.starts_with("7173:") && id != "7173:1" && id != "7173:fffe"
        })
        .count()
}

/// Polls `done` every 5 ms until it holds or `timeout` passes; how long it
/// took, or `None`.
pub fn measure_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if done() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The environment variable that makes this test binary a client process
/// (see [`client_process`]).
pub const CLIENT_ROLE: &str = "QSOCKD_TEST_CLIENT";

/// Starts this test binary as a client process in the bed's sender
/// namespace (as `user` when given): it attaches a UDP socket with a stream
/// of 1000-byte datagrams every `period_ms`, prints the reply, then runs
/// the requests named in `then` and waits until its stdin closes. `test`
/// names the test function that calls [`client_process`].
pub fn spawn_client(
    bed: &TestBed,
    daemon: &Daemon,
    user: Option<&TestUser>,
    test: &str,
    period_ms: u64,
    then: &str,
) -> (Child, BufReader<std::process::ChildStdout>) {
    let exe = std::env::current_exe().expect("this test binary");
    let exe = exe.to_str().expect("a UTF-8 path");
    let mut args: Vec<String> = Vec::new();
    if let Some(user) = user {
        args.extend(["runuser", "-u", user.name(), "--"].map(str::to_owned));
    }
    args.extend(
        [
            exe,
            "--exact",
            test,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]
        .map(str::to_owned),
    );
    let mut child = bed
        .command_in_sender(&args[0], &args[1..])
        .env(CLIENT_ROLE, "1")
        .env("QSOCKD_TEST_SOCKET", &daemon.socket)
        .env("QSOCKD_TEST_DEVICE", bed.sender_dev())
        .env("QSOCKD_TEST_SOURCE", bed.sender_v4().to_string())
        .env("QSOCKD_TEST_PERIOD_MS", period_ms.to_string())
        .env("QSOCKD_TEST_THEN", then)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start a client process");
    let stdout = BufReader::new(child.stdout.take().expect("the client's stdout"));
    (child, stdout)
}

/// Ends a client process the way it ends on its own: its stdin closes
/// and it exits (through `runuser`, which a signal would not reach).
pub fn finish(mut child: Child) {
    drop(child.stdin.take());
    let status = child.wait().expect("wait for the client process");
    assert!(status.success(), "the client process failed: {status}");
}

/// Reads the client process's lines until one holds `REPLY `; what follows it.
pub fn client_reply(stdout: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let read = stdout
            .read_line(&mut line)
            .expect("read the client's output");
        assert!(read > 0, "the client process ended without a reply");
        // libtest may have started the line with the test's name.
        if let Some(at) = line.find("REPLY ") {
            return line[at + "REPLY ".len()..].trim().to_owned();
        }
    }
}

/// The body of the client process: does nothing unless [`CLIENT_ROLE`] is
/// set. Attaches, prints `REPLY <json>`, then for each stream id in
/// `QSOCKD_TEST_THEN` (`close:N`, `info:N`) prints that reply too, and
/// waits for its stdin to close.
pub fn client_process() {
    if std::env::var_os(CLIENT_ROLE).is_none() {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is set"));
    let socket = protocol::connect_to(Path::new(&var("QSOCKD_TEST_SOCKET"))).expect("connect");
    let call = |request: &Request, fd: Option<BorrowedFd<'_>>| {
        let reply = protocol::call(socket.as_fd(), request, fd).expect("a reply");
        println!(
            "REPLY {}",
            String::from_utf8_lossy(&protocol::encode(&reply).expect("encode"))
        );
        reply
    };
    call(
        &Request::Hello {
            version: PROTOCOL_VERSION,
        },
        None,
    );
    let udp = UdpSocket::bind((var("QSOCKD_TEST_SOURCE").as_str(), 0)).expect("a UDP socket");
    let period = Duration::from_millis(var("QSOCKD_TEST_PERIOD_MS").parse().expect("a period"));
    let params = QosParams::new(
        var("QSOCKD_TEST_DEVICE"),
        SchedulerName::Htb,
        stream_every(period),
    );
    call(&Request::Attach { params }, Some(udp.as_fd()));
    for step in var("QSOCKD_TEST_THEN")
        .split(',')
        .filter(|step| !step.is_empty())
    {
        let (verb, id) = step.split_once(':').expect("verb:id");
        let stream = id.parse().expect("a stream id");
        match verb {
            "close" => call(&Request::Close { stream }, None),
            "info" => call(&Request::Info { stream }, None),
            other => panic!("unknown step {other}"),
        };
    }
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
}
