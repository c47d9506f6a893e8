//! The perturbation: a bulk TCP transfer, as the paper's FTP transfer was.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Accepts connections and counts the bytes received on each, until `stop`.
pub fn sink(listener: TcpListener, received: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let mut readers = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let received = Arc::clone(&received);
                let stop = Arc::clone(&stop);
                readers.push(std::thread::spawn(move || drain(stream, &received, &stop)));
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => break,
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
}

fn drain(mut stream: TcpStream, received: &AtomicU64, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .is_err()
    {
        return;
    }
    let mut buffer = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(err) if crate::timed_out(&err) => {}
            Err(_) => return,
        }
    }
}

/// Sends as fast as TCP allows to `to` until `stop`.
pub fn send(to: SocketAddr, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    stream.set_write_timeout(Some(Duration::from_millis(100)))?;
    let chunk = vec![0x5au8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(err) if crate::timed_out(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
