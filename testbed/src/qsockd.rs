//! What the tests of scheduling through `qsockd` share: an unprivileged
//! user made for the test ([`TestUser`]), `qsockd --foreground` running as
//! root in a bed's sender namespace ([`Qsockd`]), and a copy of a test
//! binary that such a user may run ([`RunnableCopy`]).

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::TestBed;

/// A local user created with `useradd` for one test and removed with
/// `userdel` when dropped, also when the test panics.
#[derive(Debug)]
pub struct TestUser {
    name: String,
    uid: u32,
}

impl TestUser {
    /// Creates user `name` (no home, no login shell). A user of that name
    /// left by an earlier, killed run is removed first.
    pub fn create(name: &str) -> TestUser {
        let _ = Command::new("userdel").arg(name).output();
        let output = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", name])
            .output()
            .expect("run useradd (the passwd package)");
        assert!(
            output.status.success(),
            "useradd {name} failed (the qsockd tests need root to create their users): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let id = Command::new("id")
            .args(["-u", name])
            .output()
            .expect("run id");
        let uid = String::from_utf8_lossy(&id.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("`id -u {name}` printed no uid"));
        TestUser {
            name: name.to_owned(),
            uid,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// `ip netns exec SENDER runuser -u USER -- PROGRAM ARGS`: the program
    /// in the bed's sender namespace as this user, without capabilities.
    pub fn command_in_sender<I, S>(&self, bed: &TestBed, program: &Path, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = bed.command_in_sender("runuser", ["-u", &self.name, "--"]);
        command.arg(program).args(args);
        command
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let output = Command::new("userdel").arg(&self.name).output();
        if !output.is_ok_and(|output| output.status.success()) {
            eprintln!(
                "qsock-testbed: could not remove test user {}: `userdel {}` by hand",
                self.name, self.name
            );
        }
    }
}

/// A copy of an executable in a directory every user may read, removed
/// when dropped: the build's own may sit where a test user cannot reach.
#[derive(Debug)]
pub struct RunnableCopy {
    dir: PathBuf,
    exe: PathBuf,
}

impl RunnableCopy {
    /// Copies `exe` (e.g. `std::env::current_exe()`) under `tag`.
    pub fn of(exe: &Path, tag: &str) -> RunnableCopy {
        let dir = std::env::temp_dir().join(format!("qsock-{tag}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create a directory for the copy");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))
            .expect("open the copy's directory to every user");
        let name = exe.file_name().expect("an executable has a file name");
        let copy = dir.join(name);
        if let Err(err) = fs::copy(exe, &copy) {
            let _ = fs::remove_dir_all(&dir);
            panic!("copy {}: {err}", exe.display());
        }
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755))
            .expect("make the copy executable");
        RunnableCopy { dir, exe: copy }
    }

    /// The copy.
    pub fn path(&self) -> &Path {
        &self.exe
    }

    /// The directory it is in, which every user may write.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunnableCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `qsockd --foreground` as root in a bed's sender namespace, stopped when
/// dropped.
#[derive(Debug)]
pub struct Qsockd {
    child: Child,
    device: String,
    scheduler: String,
    rate: String,
    socket: PathBuf,
    log: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Qsockd {
    /// The `qsockd` binary of the build the running program belongs to:
    /// beside it (`target/release/qsock-eval`), or beside the folder of a
    /// test binary (`target/release/deps/TEST`).
    pub fn binary() -> PathBuf {
        let exe = std::env::current_exe().expect("the running program's path");
        let dir = exe.parent().expect("a program sits in a folder");
        let found = [Some(dir), dir.parent()]
            .into_iter()
            .flatten()
            .map(|dir| dir.join("qsockd"))
            .find(|binary| binary.is_file());
        found.unwrap_or_else(|| {
            panic!(
                "no qsockd beside {}: build it first (`cargo build --release -p qsockd`)",
                exe.display()
            )
        })
    }

    /// Starts `qsockd --foreground --socket SOCKET --device DEV --scheduler
    /// SCHEDULER --rate RATE` on the bed's sender device and waits until its
    /// socket accepts connections (or fails the test with its log).
    pub fn start(bed: &TestBed, scheduler: &str, rate: &str, socket: &Path) -> Qsockd {
        Qsockd::start_on(bed, bed.sender_dev(), scheduler, rate, socket)
    }

    /// [`Qsockd::start`] on another device of the sender's namespace.
    pub fn start_on(
        bed: &TestBed,
        device: &str,
        scheduler: &str,
        rate: &str,
        socket: &Path,
    ) -> Qsockd {
        let binary = Qsockd::binary();
        let socket_arg = socket.to_string_lossy().into_owned();
        let mut child = bed
            .command_in_sender(
                &binary.to_string_lossy(),
                [
                    "--foreground",
                    "--socket",
                    &socket_arg,
                    "--device",
                    device,
                    "--scheduler",
                    scheduler,
                    "--rate",
                    rate,
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", binary.display()));
        let stderr = child.stderr.take().expect("qsockd's stderr is piped");
        let (sender, log) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("qsockd: {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Qsockd {
            child,
            device: device.to_owned(),
            scheduler: scheduler.to_owned(),
            rate: rate.to_owned(),
            socket: socket.to_owned(),
            log,
            lines: Vec::new(),
        };
        daemon.wait_listening();
        daemon
    }

    /// Waits for the socket to accept a connection: qsockd binds it once
    /// its devices are set up.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if seqpacket_connects(&self.socket) {
                return;
            }
            let socket = self.socket.display().to_string();
            if let Ok(Some(status)) = self.child.try_wait() {
                // The log thread reads to the end and hangs up once qsockd is gone.
                while let Ok(line) = self.log.recv_timeout(Duration::from_secs(2)) {
                    self.lines.push(line);
                }
                panic!(
                    "qsockd exited ({status}) before listening at {socket}:\n{}",
                    self.log_text()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "qsockd did not listen at {socket} within 20 s:\n{}",
                    self.log_text()
                );
            }
            // The log thread wakes us at each line qsockd writes.
            if let Ok(line) = self.log.recv_timeout(Duration::from_millis(50)) {
                self.lines.push(line);
            }
        }
    }

    /// Everything qsockd has logged so far.
    pub fn log_text(&mut self) -> String {
        while let Ok(line) = self.log.try_recv() {
            self.lines.push(line);
        }
        self.lines.join("\n")
    }

    /// The socket it listens at.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Whether a `SOCK_SEQPACKET` connection to `path` is accepted.
fn seqpacket_connects(path: &Path) -> bool {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    let Ok(address) = UnixAddr::new(path) else {
        return false;
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &address).is_ok()
}

impl Qsockd {
    /// Stops qsockd (SIGTERM, SIGKILL after five seconds) and waits for it.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            let _ = self.log.recv_timeout(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops qsockd and starts it again with the same arguments, as a
    /// service manager restarts it; returns once the new one listens.
    pub fn restart(&mut self, bed: &TestBed) {
        self.stop();
        let _ = fs::remove_file(&self.socket);
        *self = Qsockd::start_on(bed, &self.device, &self.scheduler, &self.rate, &self.socket);
    }
}

impl Drop for Qsockd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bed whose sender runs qsockd on htb, with a UDP receiver that never
/// reads (its buffer fills and the kernel drops the rest) and a copy of an
/// executable that test users may run, beside qsockd's socket.
#[derive(Debug)]
pub struct QsockdBed {
    /// The bed; qsockd schedules its sender's veth.
    pub bed: TestBed,
    /// qsockd.
    pub daemon: Qsockd,
    /// The copy users run.
    pub copy: RunnableCopy,
    /// Where the traffic goes.
    pub receiver: std::net::SocketAddr,
    _receiver_socket: std::net::UdpSocket,
}

impl QsockdBed {
    /// A bed, qsockd on htb at `rate` (listening in `copy`'s folder), a
    /// receiver at `port` and a copy of `exe` under `tag`. Fails the test
    /// when not run as root.
    pub fn start(exe: &Path, tag: &str, rate: &str, port: u16) -> QsockdBed {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the qsockd tests need root: they build namespaces, create users and run qsockd"
        );
        let bed = TestBed::new().expect("a test bed");
        let copy = RunnableCopy::of(exe, tag);
        let daemon = Qsockd::start(&bed, "htb", rate, &copy.dir().join("qsockd.sock"));
        let receiver = std::net::SocketAddr::from((bed.receiver_v4(), port));
        let receiver_socket = bed
            .run_in_receiver(move || std::net::UdpSocket::bind(receiver))
            .expect("enter the receiver's namespace")
            .unwrap_or_else(|err| panic!("bind the receiver at {receiver}: {err}"));
        QsockdBed {
            bed,
            daemon,
            copy,
            receiver,
            _receiver_socket: receiver_socket,
        }
    }

    /// qsock's stream classes on the sender's veth with their byte counts
    /// (`tc -s class show`): every `7173:N` but the link's and best effort's,
    /// qsockd's prepared ones included.
    pub fn stream_classes(&self) -> Vec<(String, u64)> {
        let shown = self
            .bed
            .tc_in_sender(&["-s", "class", "show", "dev", self.bed.sender_dev()])
            .expect("tc class show");
        let mut classes = Vec::new();
        let mut current: Option<String> = None;
        for line in shown.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(&"class") => {
                    current = words
                        .get(2)
                        .filter(|id| {
                            id.starts_with("7173:") && **id != "7173:1" && **id != "7173:fffe"
                        })
                        .map(|id| (*id).to_owned());
                }
                Some(&"Sent") => {
                    if let Some(id) = current.take() {
                        let bytes = words.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
                        classes.push((id, bytes));
                    }
                }
                _ => {}
            }
        }
        classes
    }

    /// The byte count of class `id`, if it exists.
    pub fn bytes_of(&self, id: &str) -> Option<u64> {
        self.stream_classes()
            .into_iter()
            .find(|(class, _)| class == id)
            .map(|(_, bytes)| bytes)
    }

    /// Waits until class `id` is gone (qsockd removes a stream's class once
    /// its client closed it), or fails the test after five seconds.
    pub fn wait_gone(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.bytes_of(id).is_some() {
            assert!(
                Instant::now() < deadline,
                "qsockd left the closed stream's class {id} behind: {:?}",
                self.stream_classes()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}
