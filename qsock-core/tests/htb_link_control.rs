//! The `htb` backend's filters for link control, against the real kernel in
//! network namespaces made for each test: ARP and IPv6 neighbour discovery
//! leave through HTB's direct queue, so that neighbours still resolve this
//! host while best effort's queue is seconds deep.
//!
//! Needs root (namespaces, qdiscs). Without it the tests fail, saying so,
//! unless `QSOCK_SKIP_PRIVILEGED=1`, which turns them into skips.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::ErrorKind as IoErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{setsockopt, sockopt};
use qsock::{qsockinit, report, reset, InitParams, Rate, SchedulerName};
use qsock_testbed::TestBed;
use support::{mbit, turn};

/// A neighbour gives up on an address after 3 unanswered solicitations one
/// second apart (`mcast_solicit`, `retrans_time_ms`), and drops what waited
/// for it: a probe not delivered by then never is.
const PROBE_WAIT: Duration = Duration::from_secs(5);
/// The backlog best effort must hold before a probe, in seconds of the link:
/// longer than a neighbour waits for an answer.
const BACKLOG_SECONDS: u64 = 4;

fn bed() -> Option<TestBed> {
    support::privileged_bed("the htb link-control tests")
}

fn htb_init(bed: &TestBed, rate: Rate) -> InitParams {
    InitParams::new(bed.sender_dev(), SchedulerName::Htb).with_link_rate(rate)
}

/// `tc filter show` on the sender's device.
fn filters(bed: &TestBed) -> String {
    bed.tc_in_sender(&["filter", "show", "dev", bed.sender_dev()])
        .expect("tc filter show")
}

/// The filter rules `tc filter show` lists (one line per u32 key node,
/// which carries the `flowid`), by protocol.
fn rules(shown: &str, protocol: &str) -> usize {
    shown
        .lines()
        .filter(|line| line.contains(&format!("protocol {protocol} ")))
        .filter(|line| line.contains("flowid 7173:"))
        .count()
}

#[test]
fn qsockinit_adds_the_link_control_filters_once() {
    let Some(bed) = bed() else { return };
    let init = htb_init(&bed, mbit(10));
    bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();
    let first = filters(&bed);
    assert_eq!(rules(&first, "arp"), 1, "{first}");
    assert_eq!(rules(&first, "ipv6"), 3, "{first}");
    assert!(first.contains("flowid 7173: "), "{first}");

    // Again, and with a new link rate: the same filters, once each.
    bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();
    let init = htb_init(&bed, mbit(5));
    bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();
    assert_eq!(filters(&bed), first);

    // An installed root without them (filters deleted by hand) gets them back.
    bed.tc_in_sender(&["filter", "del", "dev", bed.sender_dev(), "parent", "7173:"])
        .expect("tc filter del");
    assert_eq!(filters(&bed).trim(), "");
    bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();
    assert_eq!(filters(&bed), first);

    // Reset deletes them with the qdisc.
    let device = bed.sender_dev().to_owned();
    bed.run_in_sender(|| reset(&device)).unwrap().unwrap();
    assert_eq!(filters(&bed).trim(), "");
}

/// Datagrams sent from the sender's namespace to the receiver as fast as the
/// sender's buffer lets them leave, into best effort, until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    fn start(bed: &TestBed, to: SocketAddr) -> Flood {
        let socket = bed
            .run_in_sender(|| UdpSocket::bind((bed.sender_v4(), 0)))
            .unwrap()
            .unwrap();
        // The send buffer bounds what the queue holds (blocking sends wait for
        // it): large enough for seconds of a slow link, below the leaf
        // FIFO's 1000 packets, so that the loop blocks instead of spinning.
        setsockopt(&socket.as_fd(), sockopt::SndBufForce, &(1 << 20)).unwrap();
        socket.connect(to).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let payload = [0u8; 1000];
            while !running.load(Ordering::Relaxed) {
                // ECONNREFUSED from an earlier datagram's ICMP is no reason to stop.
                let _ = socket.send(&payload);
            }
        });
        Flood {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until best effort's queue holds `bytes`.
fn wait_for_backlog(bed: &TestBed, bytes: u64) {
    let device = bed.sender_dev().to_owned();
    let start = Instant::now();
    loop {
        let backlog = bed
            .run_in_sender(|| report(&device))
            .unwrap()
            .unwrap()
            .best_effort
            .map_or(0, |stats| stats.backlog_bytes);
        if backlog >= bytes {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "best effort's queue holds only {backlog} bytes, not {bytes}: the flood does not \
             fill it (is the send buffer too small?)"
        );
        // Polling a counter: there is no event for "the queue holds N bytes".
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes the receiver forget the sender's link-layer address (`ip neigh
/// flush`), sends one datagram to `to` (in the sender's namespace, where
/// `listener` waits) and says whether it arrived: it can only after the
/// sender has answered the receiver's ARP request or neighbour solicitation
/// through its HTB.
fn probe_arrives(bed: &TestBed, listener: &UdpSocket, to: SocketAddr, tag: &[u8]) -> bool {
    let family = if to.is_ipv4() { "-4" } else { "-6" };
    let status = bed
        .command_in_receiver("ip", [family, "neigh", "flush", "dev", bed.receiver_dev()])
        .status()
        .expect("ip neigh flush");
    assert!(status.success(), "ip neigh flush failed in the receiver");
    let from = match to.ip() {
        IpAddr::V4(_) => IpAddr::V4(bed.receiver_v4()),
        IpAddr::V6(_) => IpAddr::V6(bed.receiver_v6()),
    };
    let sender = bed
        .run_in_receiver(|| UdpSocket::bind((from, 0)))
        .unwrap()
        .unwrap();
    sender.send_to(tag, to).unwrap();
    let deadline = Instant::now() + PROBE_WAIT;
    let mut buf = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        listener.set_read_timeout(Some(left)).unwrap();
        match listener.recv(&mut buf) {
            Ok(n) if &buf[..n] == tag => return true,
            Ok(_) => {}
            Err(err) if matches!(err.kind(), IoErrorKind::WouldBlock | IoErrorKind::TimedOut) => {
                return false
            }
            Err(err) => panic!("receiving the probe: {err}"),
        }
    }
}

#[test]
fn neighbours_resolve_the_sender_behind_a_full_best_effort_queue() {
    let Some(bed) = bed() else { return };
    let _turn = turn();
    let rate = mbit(1);
    let init = htb_init(&bed, rate);
    bed.run_in_sender(|| qsockinit(&init)).unwrap().unwrap();

    let sink = bed
        .run_in_receiver(|| UdpSocket::bind((bed.receiver_v4(), 0)))
        .unwrap()
        .unwrap();
    let flood = Flood::start(&bed, sink.local_addr().unwrap());
    let listener_v4 = bed
        .run_in_sender(|| UdpSocket::bind((bed.sender_v4(), 0)))
        .unwrap()
        .unwrap();
    let listener_v6 = bed
        .run_in_sender(|| UdpSocket::bind((bed.sender_v6(), 0)))
        .unwrap()
        .unwrap();
    let backlog = rate.bits_per_second() / 8 * BACKLOG_SECONDS;
    wait_for_backlog(&bed, backlog);

    assert!(
        probe_arrives(
            &bed,
            &listener_v4,
            listener_v4.local_addr().unwrap(),
            b"arp"
        ),
        "the receiver could not resolve the sender over ARP behind {BACKLOG_SECONDS} s of best \
         effort: the ARP reply did not bypass HTB's classes\n{}",
        filters(&bed)
    );
    assert!(
        probe_arrives(&bed, &listener_v6, listener_v6.local_addr().unwrap(), b"nd"),
        "the receiver could not resolve the sender over neighbour discovery behind \
         {BACKLOG_SECONDS} s of best effort: the neighbour advertisement did not bypass HTB's \
         classes\n{}",
        filters(&bed)
    );

    // The control: without the filters the answers wait behind best effort
    // until the receiver gives up.
    bed.tc_in_sender(&["filter", "del", "dev", bed.sender_dev(), "parent", "7173:"])
        .expect("tc filter del");
    wait_for_backlog(&bed, backlog);
    assert!(
        !probe_arrives(
            &bed,
            &listener_v4,
            listener_v4.local_addr().unwrap(),
            b"arp without filter"
        ),
        "a probe reached the sender through ARP with no filter in place: the backlog does not \
         delay the ARP reply, so this test shows nothing about the filter"
    );
    drop(flood);
}
