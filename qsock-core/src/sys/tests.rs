//! The control messages this module builds, byte for byte, and through a real
//! socket as an unprivileged user.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::*;

#[test]
fn txtime_cmsg_bytes() {
    let value = 0x0102_0304_0506_0708u64;
    let bytes = txtime_cmsg(value);
    // SAFETY: CMSG_LEN and CMSG_SPACE only compute sizes.
    let (len, space) = unsafe { (libc::CMSG_LEN(8) as usize, libc::CMSG_SPACE(8) as usize) };
    assert_eq!(bytes.len(), space);
    assert_eq!(cmsg_len(8), len);
    let mut golden = Vec::new();
    golden.extend_from_slice(&len.to_ne_bytes()); // cmsg_len (size_t on glibc)
    golden.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
    golden.extend_from_slice(&libc::SCM_TXTIME.to_ne_bytes());
    golden.resize(cmsg_align(golden.len()), 0);
    golden.extend_from_slice(&value.to_ne_bytes());
    golden.resize(space, 0);
    assert_eq!(bytes, golden);
    if cfg!(all(target_arch = "x86_64", target_env = "gnu")) {
        #[rustfmt::skip]
        let x86_64: [u8; 24] = [
            24, 0, 0, 0, 0, 0, 0, 0, // CMSG_LEN(8): a 16-byte header and the u64
            1, 0, 0, 0,              // SOL_SOCKET
            61, 0, 0, 0,             // SCM_TXTIME
            8, 7, 6, 5, 4, 3, 2, 1,  // the value
        ];
        assert_eq!(bytes, x86_64);
    }
}

/// Sends a frame with txtimes through loopback; run unprivileged by
/// `txtime_needs_no_privilege` when the tests run as root.
#[test]
fn txtime_frames_reach_a_loopback_receiver() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let to = SockAddr::from(receiver.local_addr().unwrap());
    let packets: [&[u8]; 3] = [b"first", b"second", b"third"];
    let deadline = (monotonic_nanos() + 10_000_000) & !7;
    // Frame start and non-droppable on the first; droppable; nothing at all.
    let txtimes = [deadline | 0b011, deadline | 0b100, 0];

    // Without SO_TXTIME the kernel refuses an SCM_TXTIME cmsg: proof that
    // what we build is parsed as one.
    let plain = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    let err =
        send_datagrams_with_txtime(plain.as_fd(), &packets, Some(&to), &txtimes, 0, &mut |_| {
            false
        })
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");

    let sender = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
    enable_txtime_monotonic(sender.as_fd()).expect("SO_TXTIME on CLOCK_MONOTONIC");
    assert!(!recv_err(sender.as_fd(), false).unwrap());
    set_recv_err(sender.as_fd(), false, true).unwrap();
    assert!(recv_err(sender.as_fd(), false).unwrap());
    let sent = send_datagrams_with_txtime(
        sender.as_fd(),
        &packets,
        Some(&to),
        &txtimes,
        0,
        &mut |_| false,
    )
    .unwrap();
    assert_eq!(sent, 3);
    // One packet alone goes through sendmmsg too.
    let sent = send_datagrams_with_txtime(
        sender.as_fd(),
        &[b"fourth"],
        Some(&to),
        &[deadline],
        0,
        &mut |_| false,
    )
    .unwrap();
    assert_eq!(sent, 1);
    let mut buf = [0u8; 64];
    for expected in [&b"first"[..], b"second", b"third", b"fourth"] {
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], expected);
    }
    let err =
        send_datagrams_with_txtime(sender.as_fd(), &packets, Some(&to), &[1], 0, &mut |_| false)
            .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    println!("txtime sends as uid {}: ok", nix::unistd::geteuid());
}

#[test]
fn txtime_needs_no_privilege() {
    if !nix::unistd::geteuid().is_root() {
        // Already unprivileged: the test above shows it.
        return;
    }
    // Run the send test again as nobody, with no capabilities, from a copy
    // of this test binary that nobody may read wherever the build put it.
    let dir = qsock_testbed::scratch_dir("txtime-nobody");
    let exe = dir.join("sys-tests");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let output = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "sys::tests::txtime_frames_reach_a_loopback_receiver",
            "--nocapture",
        ])
        .output()
        .expect("run setpriv (util-linux)");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("txtime sends as uid 65534: ok"),
        "the txtime send failed as an unprivileged user:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
