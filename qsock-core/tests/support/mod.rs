//! What the integration tests share: test beds and when to skip them, the
//! numbered packets streams send and the receivers that read them back, the
//! loss-window count, iperf3 as a bulk transfer, and `tc` output.
//!
//! Each test binary compiles this module for itself (`mod support;`).

// Every test binary uses only part of this module; the rest would be dead
// code in that binary, and the warning is not about anything that is wrong.
#![allow(dead_code)]
// A helper that unwraps fails its test with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};
use qsock::{PacketFlags, QSocket, Rate, SchedulerStats};
use qsock_testbed::TestBed;
use socket2::{Domain, Protocol, Type};

use qsock_testbed::dwcs_loaded;

/// A test bed for tests of sch_dwcs itself, or `None` (with a SKIPPED line)
/// where the module is not loaded and nobody said it would be.
pub fn dwcs_bed() -> Option<TestBed> {
    if !qsock_testbed::dwcs_test_runs() {
        return None;
    }
    Some(TestBed::new().unwrap_or_else(|err| {
        panic!("the dwcs tests need root to build network namespaces: {err}")
    }))
}

/// A test bed for tests that need root, or `None` (with a SKIPPED line)
/// when the process is not root and `QSOCK_SKIP_PRIVILEGED=1` asks for skips.
/// `what` names the tests in the messages.
pub fn privileged_bed(what: &str) -> Option<TestBed> {
    let root = nix::unistd::geteuid().is_root();
    if !root && std::env::var("QSOCK_SKIP_PRIVILEGED").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {what} need root; QSOCK_SKIP_PRIVILEGED=1 is set");
        return None;
    }
    match TestBed::new() {
        Ok(bed) => Some(bed),
        Err(err) => panic!(
            "{what} need root (CAP_SYS_ADMIN, CAP_NET_ADMIN) to build namespaces and install \
             qdiscs; set QSOCK_SKIP_PRIVILEGED=1 to skip them: {err}"
        ),
    }
}

/// Resolves the receiver's address before any measured packet: a burst sent
/// while ARP is pending waits in the neighbour queue, not in the scheduler.
pub fn resolve_receiver(bed: &TestBed) {
    let status = bed
        .command_in_sender(
            "ping",
            ["-c", "1", "-W", "5", &bed.receiver_v4().to_string()],
        )
        .stdout(Stdio::null())
        .status()
        .expect("ping");
    assert!(status.success(), "the receiver does not answer ping");
}

/// `tc -s -d WHAT show` on the sender's device.
pub fn tc_show(bed: &TestBed, what: &str) -> String {
    bed.tc_in_sender(&["-s", "-d", what, "show", "dev", bed.sender_dev()])
        .expect("tc show")
}

pub fn kbit(n: u64) -> Rate {
    Rate::from_bits_per_second(n * 1_000)
}

pub fn mbit(n: u64) -> Rate {
    Rate::from_bits_per_second(n * 1_000_000)
}

/// A lock for tests that measure time or rates: they take turns, so that
/// one test's senders do not take the CPU from under another's measurement.
pub fn turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock()
}

/// UDP payload of every numbered datagram.
pub const PAYLOAD: usize = 1000;
/// What a qdisc charges the link for one numbered datagram over IPv4:
/// payload, UDP (8), IPv4 (20) and Ethernet (14) headers, as
/// qdisc_pkt_len() sees it at a veth's root.
pub const WIRE: u64 = PAYLOAD as u64 + 8 + 20 + 14;

/// A numbered datagram. Bytes 0..4: stream, 4..8: sequence number, 8: 1 for
/// the end marker.
pub fn packet(stream: u32, sequence: u32, end: bool) -> Vec<u8> {
    let mut bytes = vec![0u8; PAYLOAD];
    bytes[0..4].copy_from_slice(&stream.to_be_bytes());
    bytes[4..8].copy_from_slice(&sequence.to_be_bytes());
    bytes[8] = u8::from(end);
    bytes
}

/// The end markers: non-droppable, so they arrive, and after everything
/// their stream sent, since a stream's packets leave in order.
pub fn end_flags() -> PacketFlags {
    PacketFlags::new().non_droppable()
}

/// A socket bound to `address` whose arrivals the kernel stamps
/// (SO_TIMESTAMPNS), with a receive buffer that holds a whole test's burst.
pub fn stamping_receiver(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    socket.set_recv_buffer_size(4 << 20)?;
    // A test that waits for a datagram that never comes fails instead of hanging.
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    socket.bind(&address.into())?;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, option and option length.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            std::ptr::addr_of!(on).cast(),
            std::mem::size_of_val(&on) as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket.into())
}

/// A stamping receiver on the receiver's IPv4 address, and that address.
pub fn bed_receiver(bed: &TestBed) -> (UdpSocket, SocketAddr) {
    let socket = bed
        .run_in_receiver(|| stamping_receiver((bed.receiver_v4(), 0).into()))
        .unwrap()
        .unwrap();
    let address = socket.local_addr().unwrap();
    (socket, address)
}

/// One datagram and the kernel's CLOCK_REALTIME stamp of its arrival.
pub fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, Duration)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // u64s for the cmsg header's alignment.
    let mut control = [0u64; 16];
    // SAFETY: msghdr is plain data; all zeroes is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // A signal to another thread of the test process (a child's exit, say)
    // interrupts the wait: wait again, as std's own reads are retried.
    let n = loop {
        // SAFETY: msg points at live buffers of the lengths it gives.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
        if n >= 0 {
            break n;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    // SAFETY: walking the control buffer recvmsg filled, by its own macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Ok((
                    n as usize,
                    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                ));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Err(io::Error::other("a datagram without SCM_TIMESTAMPNS"))
}

/// One numbered datagram as received.
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    pub stream: u32,
    pub sequence: u32,
    /// When the kernel received it (CLOCK_REALTIME).
    pub at: Duration,
}

/// One numbered datagram's stream and sequence number.
pub fn recv_numbered(socket: &UdpSocket) -> io::Result<(u32, u32)> {
    let mut buf = [0u8; 2048];
    let n = socket.recv(&mut buf)?;
    assert_eq!(n, PAYLOAD, "not a numbered datagram");
    Ok((
        u32::from_be_bytes(buf[0..4].try_into().unwrap()),
        u32::from_be_bytes(buf[4..8].try_into().unwrap()),
    ))
}

/// Receives from a stamping receiver until every stream in `streams` has
/// delivered its end marker; returns every other datagram, in arrival order
/// (other streams' included, as far as they arrived before the last end
/// marker).
pub fn receive_until_ends(socket: &UdpSocket, streams: &[u32]) -> Vec<Arrival> {
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut arrivals = Vec::new();
    let mut ended = Vec::new();
    let mut buf = [0u8; 2048];
    while ended.len() < streams.len() {
        let (n, at) = recv_stamped(socket, &mut buf)
            .unwrap_or_else(|err| panic!("end markers missing ({ended:?} seen): {err}"));
        assert_eq!(n, PAYLOAD);
        let stream = u32::from_be_bytes(buf[0..4].try_into().unwrap());
        let sequence = u32::from_be_bytes(buf[4..8].try_into().unwrap());
        if buf[8] == 1 {
            ended.push(stream);
        } else {
            arrivals.push(Arrival {
                stream,
                sequence,
                at,
            });
        }
    }
    arrivals
}

/// The sequence numbers of one stream's arrivals, in arrival order.
pub fn sequences(arrivals: &[Arrival], stream: u32) -> Vec<u32> {
    arrivals
        .iter()
        .filter(|a| a.stream == stream)
        .map(|a| a.sequence)
        .collect()
}

/// Most losses in one of the consecutive windows of `window` packets that
/// start at sequence 0. DWCS restarts x'/y' after every `old` packets, so its
/// guarantee is per consecutive window, not per sliding one (a feasible set
/// may lose `oln` at the end of one window and `oln` at the start of the next).
pub fn worst_window(received: &[u32], sent: u32, window: u32) -> u32 {
    let mut lost = vec![true; sent as usize];
    for &sequence in received {
        lost[sequence as usize] = false;
    }
    lost.chunks(window as usize)
        .map(|w| w.iter().filter(|&&l| l).count() as u32)
        .max()
        .unwrap_or(0)
}

/// A stream's counters.
pub fn stats(socket: &QSocket) -> SchedulerStats {
    socket.info().unwrap().stats
}

/// An unattached UDP socket in the sender's namespace: best effort. Non-
/// blocking, so that a full send buffer costs it a packet instead of
/// stalling the loop that also times the managed streams.
pub fn unmanaged(bed: &TestBed) -> UdpSocket {
    let socket = bed
        .run_in_sender(|| UdpSocket::bind((bed.sender_v4(), 0)))
        .unwrap()
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

/// Kills a child process when dropped, so a failing test leaves no iperf3.
#[derive(Debug)]
pub struct Reaped(pub Child);

impl Reaped {
    /// Waits for the child and returns its standard output.
    pub fn wait_for_output(mut self) -> String {
        let mut out = String::new();
        if let Some(mut stdout) = self.0.stdout.take() {
            let _ = io::Read::read_to_string(&mut stdout, &mut out);
        }
        let _ = self.0.wait();
        out
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `iperf3 -s -1` in the receiver's namespace and returns once it
/// says it is listening, so that the client never races its start.
pub fn iperf3_server(bed: &TestBed, port: &str) -> Reaped {
    let receiver = bed.receiver_v4().to_string();
    let mut child = bed
        .command_in_receiver(
            "iperf3",
            ["-s", "-1", "--forceflush", "-B", &receiver, "-p", port],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 is installed (apt-get install -y iperf3)");
    let stdout = child.stdout.take().expect("piped stdout");
    let server = Reaped(child);
    let mut lines = io::BufRead::lines(io::BufReader::new(stdout));
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("Server listening") => break,
            Some(Ok(_)) => {}
            _ => panic!("iperf3 -s exited before it was listening"),
        }
    }
    // Keep draining its reports so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    server
}

/// Packets and bytes the scheduler's best effort (where TCP goes) has sent
/// so far.
pub fn best_effort_sent(bed: &TestBed) -> (u64, u64) {
    let device = bed.sender_dev().to_owned();
    bed.run_in_sender(|| qsock::report(&device))
        .unwrap()
        .unwrap()
        .best_effort
        .map_or((0, 0), |stats| (stats.sent_packets, stats.sent_bytes))
}

/// Waits until best effort has sent `bytes`: a bulk TCP transfer is then
/// past slow start and its queue is standing.
pub fn wait_for_bulk(bed: &TestBed, bytes: u64, within: Duration) {
    let start = Instant::now();
    loop {
        let sent = best_effort_sent(bed).1;
        if sent >= bytes {
            return;
        }
        assert!(
            start.elapsed() < within,
            "the bulk transfer moved only {sent} bytes in {within:?}"
        );
        // Polling a counter: there is no event for "the class has sent N bytes".
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test bed for the tests of a kernel without sch_dwcs; `None` (a skip)
/// where the module is loaded, as tests/dwcs_vm.rs applies there.
pub fn bed_without_dwcs(what: &str) -> Option<TestBed> {
    if dwcs_loaded() {
        eprintln!("SKIPPED: sch_dwcs is loaded here; these tests are for a kernel without it");
        return None;
    }
    privileged_bed(what)
}

/// Asserts that `text` says how to get sch_dwcs and what to use meanwhile.
pub fn assert_says_how_to_get_dwcs(text: &str) {
    for needle in [
        "sch_dwcs",
        "modprobe sch_dwcs",
        "DKMS",
        "kmod-dwcs/",
        "htb",
        "user",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
}

/// Installs sch_dwcs in the bed's sender namespace with `params`.
pub fn install_dwcs(bed: &TestBed, params: &qsock::InitParams) {
    let done = bed.run_in_sender(|| qsock::qsockinit(params)).unwrap();
    assert!(done.is_ok(), "qsockinit dwcs: {done:?}");
}

/// A UDP qsocket in the bed's sender namespace, attached to dwcs.
pub fn dwcs_qsocket(bed: &TestBed, stream: qsock::StreamParams) -> QSocket {
    let params = qsock::QosParams::new(bed.sender_dev(), qsock::SchedulerName::Dwcs, stream);
    bed.run_in_sender(|| QSocket::new(Domain::IPV4, Type::DGRAM, None, &params))
        .unwrap()
        .expect("attach a socket to dwcs")
}
