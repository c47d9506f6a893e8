//! A bulk TCP transfer across a test bed, from the sender's namespace to the
//! receiver's: the perturbation the QSockets paper made with FTP.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use parking_lot::{Condvar, Mutex};

use crate::{Error, Result, TestBed};

/// How often blocked reads and writes look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// A TCP connection that sends as fast as TCP allows until it is stopped or
/// dropped; the receiving side counts what arrived.
#[derive(Debug)]
pub struct BulkTransfer {
    stop: Arc<AtomicBool>,
    received: Arc<(Mutex<u64>, Condvar)>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl BulkTransfer {
    /// Listens on the receiver's IPv4 address at `port`, connects from the
    /// sender's namespace and starts sending.
    pub fn start(bed: &TestBed, port: u16) -> Result<BulkTransfer> {
        BulkTransfer::start_from(bed, bed.sender_ns(), port)
    }

    /// Like [`BulkTransfer::start`], connecting from the namespace
    /// `from` (a [`RouterHost`](crate::RouterHost)'s, say) instead.
    pub fn start_from(bed: &TestBed, from: &str, port: u16) -> Result<BulkTransfer> {
        let to = SocketAddr::from((bed.receiver_v4(), port));
        let listener = bed
            .run_in_receiver(move || TcpListener::bind(to))?
            .map_err(|source| traffic(format!("bulk transfer: cannot listen on {to}"), source))?;
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new((Mutex::new(0u64), Condvar::new()));

        let (stop_rx, counted) = (Arc::clone(&stop), Arc::clone(&received));
        let receiving = std::thread::spawn(move || {
            let Some(stream) = accept(&listener, &stop_rx)
                .map_err(|source| traffic("bulk transfer: accept".into(), source))?
            else {
                return Ok(());
            };
            drain(stream, &counted, &stop_rx)
                .map_err(|source| traffic("bulk transfer: receiving".into(), source))
        });
        let stop_tx = Arc::clone(&stop);
        let sending = crate::spawn_in(from.to_owned(), move || {
            send(to, &stop_tx)
                .map_err(|source| traffic(format!("bulk transfer: sending to {to}"), source))
        });
        let mut transfer = BulkTransfer {
            stop,
            received,
            threads: vec![receiving],
        };
        transfer.threads.push(std::thread::spawn(move || {
            sending.join().unwrap_or_else(|_| {
                Err(traffic(
                    "bulk transfer".into(),
                    std::io::Error::other("the sending thread panicked"),
                ))
            })?
        }));
        Ok(transfer)
    }

    /// Bytes received so far.
    pub fn received_bytes(&self) -> u64 {
        *self.received.0.lock()
    }

    /// Waits until at least `bytes` have arrived (TCP is then past slow start
    /// and its queue stands at the bottleneck), or `timeout` passes; returns
    /// whether they did.
    pub fn wait_for(&self, bytes: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (count, arrived) = &*self.received;
        let mut got = count.lock();
        while *got < bytes {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            arrived.wait_for(&mut got, left);
        }
        true
    }

    /// Stops the transfer and returns the bytes received, or the first error
    /// either side met.
    pub fn stop(mut self) -> Result<u64> {
        self.stop_and_join()?;
        Ok(self.received_bytes())
    }

    fn stop_and_join(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let mut first_error = Ok(());
        for thread in self.threads.drain(..) {
            let outcome = thread.join().unwrap_or_else(|_| {
                Err(traffic(
                    "bulk transfer".into(),
                    std::io::Error::other("a transfer thread panicked"),
                ))
            });
            if first_error.is_ok() {
                first_error = outcome;
            }
        }
        first_error
    }
}

impl Drop for BulkTransfer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

fn traffic(what: String, source: std::io::Error) -> Error {
    Error::Traffic { what, source }
}

fn timed_out(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The sender's connection, or None when stopped before it came.
fn accept(listener: &TcpListener, stop: &AtomicBool) -> std::io::Result<Option<TcpStream>> {
    use std::os::fd::AsFd;

    let poll_ms = u16::try_from(POLL.as_millis()).unwrap_or(u16::MAX);
    while !stop.load(Ordering::Relaxed) {
        let mut ready = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        if poll(&mut ready, PollTimeout::from(poll_ms))? > 0 {
            return listener.accept().map(|(stream, _)| Some(stream));
        }
    }
    Ok(None)
}

fn drain(
    mut stream: TcpStream,
    received: &(Mutex<u64>, Condvar),
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    let mut buffer = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                *received.0.lock() += n as u64;
                received.1.notify_all();
            }
            Err(err) if timed_out(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn send(to: SocketAddr, stop: &AtomicBool) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    stream.set_write_timeout(Some(POLL))?;
    let chunk = vec![0x5au8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(err) if timed_out(&err) => {}
            // Stopping closes the receiving end, possibly while a write is
            // under way: the write then fails, and that is the stop, not an error.
            Err(_) if stop.load(Ordering::Relaxed) => return Ok(()),
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
