//! What `qsocket` costs through qsockd on htb: a UDP socket made and
//! attached (one round trip with the socket passed), against `socket()`
//! alone. Prints the medians; asserts only that every attach was admitted,
//! as wall-clock figures depend on the machine and its load.

mod support;

use std::net::UdpSocket;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use qsock::daemon::protocol::{Reply, Request};
use support::{attached, bed, stream_every, Client, Daemon};

const ROUNDS: usize = 200;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn qsocket_through_qsockd_costs_one_round_trip_on_a_prepared_class() {
    let bed = bed();
    let daemon = Daemon::start(&bed, "1gbit", &[]);
    let client = Client::connect(&daemon);
    let source = (bed.sender_v4(), 0);
    let (plain, floor, paced, back_to_back, awake) = bed
        .run_in_sender(|| {
            let mut plain = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let start = Instant::now();
                let socket = UdpSocket::bind(source).expect("a UDP socket");
                plain.push(start.elapsed());
                drop(socket);
            }
            // A request qsockd answers from memory: the round trip's floor.
            let mut floor = Vec::with_capacity(ROUNDS);
            for _ in 0..ROUNDS {
                let start = Instant::now();
                let reply = client.call(&Request::Info { stream: 0 }, None);
                floor.push(start.elapsed());
                assert!(matches!(reply, Reply::Error(_)), "{reply:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
            let measure = |stream: qsock::StreamParams, pause: Option<Duration>| {
                let mut samples = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    let start = Instant::now();
                    let socket = UdpSocket::bind(source).expect("a UDP socket");
                    let reply = client.attach(&bed, socket.as_fd(), stream);
                    samples.push(start.elapsed());
                    let (stream, _) = attached(&reply);
                    assert_eq!(
                        client.call(&Request::Close { stream }, None),
                        Reply::Closed { stream }
                    );
                    // An application opening a socket now and then: qsockd
                    // prepares the next class in between.
                    if let Some(pause) = pause {
                        std::thread::sleep(pause);
                    }
                }
                samples
            };
            let periodic = stream_every(Duration::from_millis(20));
            let paced = measure(periodic, Some(Duration::from_millis(5)));
            let back_to_back = measure(periodic, None);
            // No class, so no work after the reply: the protocol's own cost
            // with both sides awake.
            let awake = measure(qsock::StreamParams::best_effort(), None);
            (plain, floor, paced, back_to_back, awake)
        })
        .expect("enter the sender namespace");
    eprintln!(
        "socket(): median {:?}; a round trip to qsockd answered from memory: median {:?}; \
         socket() + Attach through qsockd on htb: median {:?} one at a time (5 ms apart), {:?} \
         back to back; a best-effort Attach back to back (no class work after it): median {:?} \
         ({ROUNDS} rounds each)",
        median(plain),
        median(floor),
        median(paced),
        median(back_to_back),
        median(awake)
    );
}
