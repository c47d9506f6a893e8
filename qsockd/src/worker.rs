//! The kernel's side of qsockd's work on a thread of its own, so that the
//! event loop answers an attach from memory while netlink requests (a
//! class's options, its removal, the next prepared class) take their
//! hundreds of microseconds. Jobs run in the order they are sent, so a
//! stream's options are set before it is changed, read or removed; classes
//! are prepared only while no other job waits.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread;

use qsock::daemon::classes::{ClassKey, DeviceClasses, Reservation, StreamClass};
use qsock::daemon::protocol::{ReplyError, StreamId};
use qsock::{Rate, SchedulerStats, StreamParams};

use crate::devices::PREPARED_CLASSES;

/// A client waiting for a job's outcome before its reply.
#[derive(Debug)]
pub struct Waiter {
    /// The client's token.
    pub token: u64,
    /// The stream the request named.
    pub stream: StreamId,
    /// What the reply is.
    pub request: Waiting,
}

/// The request whose reply waits for the kernel.
#[derive(Debug)]
pub enum Waiting {
    /// A change; `asked` is held already, `previous` is what to hold again
    /// if the kernel refuses.
    Change {
        /// What the stream reserves once changed.
        asked: Reservation,
        /// What it reserved before.
        previous: Reservation,
        /// Its attributes before.
        previous_params: StreamParams,
    },
    /// A close.
    Close,
    /// A read of the stream's figures.
    Info,
}

/// Work for the kernel.
#[derive(Debug)]
pub enum Job {
    /// Gives a class its stream's options.
    Configure {
        /// The device's index.
        device: usize,
        /// The class.
        class: ClassKey,
        /// The stream's attributes.
        params: StreamParams,
        /// The device's link rate.
        link_rate: Rate,
        /// Who waits for the outcome, if anyone.
        waiter: Option<Waiter>,
    },
    /// Deletes a class.
    Remove {
        /// The device's index.
        device: usize,
        /// The class.
        class: StreamClass,
        /// Why, for the log.
        why: String,
        /// Who waits for the outcome, if anyone.
        waiter: Option<Waiter>,
    },
    /// Reads a class's figures.
    Stats {
        /// The device's index.
        device: usize,
        /// The class.
        class: ClassKey,
        /// Who waits for them.
        waiter: Waiter,
    },
    /// Tops a device's prepared classes up to [`PREPARED_CLASSES`].
    Replenish(usize),
    /// Logs a line after the jobs before it.
    Log(String),
}

/// A job's outcome for a waiting client: the figures a read asked for, or
/// the kernel's refusal.
#[derive(Debug)]
pub struct Finished {
    /// Who waits.
    pub waiter: Waiter,
    /// The outcome.
    pub result: Result<Option<SchedulerStats>, ReplyError>,
}

/// The event loop's handle on the worker thread.
#[derive(Debug)]
pub struct Worker {
    jobs: Sender<Job>,
    /// Jobs held until the event loop's replies are sent: waking the
    /// worker before them would have it compete for the CPU with them.
    held: Vec<Job>,
    finished: Receiver<Finished>,
    /// Readable when outcomes wait: the event loop polls it.
    wake: UnixStream,
}

impl Worker {
    /// Starts the thread for the devices' classes, in the devices' order.
    pub fn start(devices: Vec<Arc<DeviceClasses>>) -> io::Result<Worker> {
        let (jobs, incoming) = mpsc::channel();
        let (outcomes, finished) = mpsc::channel();
        let (wake, waker) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        waker.set_nonblocking(true)?;
        thread::Builder::new()
            .name("qsockd-kernel".to_owned())
            .spawn(move || serve(&devices, &incoming, &outcomes, waker))?;
        Ok(Worker {
            jobs,
            held: Vec::new(),
            finished,
            wake,
        })
    }

    /// Queues `job`, for [`Worker::start_held`] to hand over.
    pub fn send(&mut self, job: Job) {
        self.held.push(job);
    }

    /// Hands the queued jobs to the worker thread, in order.
    pub fn start_held(&mut self) {
        for job in self.held.drain(..) {
            if self.jobs.send(job).is_err() {
                log::error!("the kernel worker thread ended: a job was lost");
            }
        }
    }

    /// The descriptor that is readable while outcomes wait.
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The outcomes ready now.
    pub fn finished(&self) -> Vec<Finished> {
        let mut drained = [0u8; 256];
        while matches!((&self.wake).read(&mut drained), Ok(n) if n > 0) {}
        self.finished.try_iter().collect()
    }
}

/// The worker thread: runs jobs until the event loop's handle is dropped.
fn serve(
    devices: &[Arc<DeviceClasses>],
    incoming: &Receiver<Job>,
    outcomes: &Sender<Finished>,
    mut waker: UnixStream,
) {
    let mut short: BTreeSet<usize> = BTreeSet::new();
    loop {
        let job = match incoming.try_recv() {
            Ok(job) => job,
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                if let Some(&device) = short.first() {
                    if !prepare_one(&devices[device]) {
                        short.remove(&device);
                    }
                    continue;
                }
                match incoming.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
        };
        if let Job::Replenish(device) = job {
            short.insert(device);
            continue;
        }
        if let Some(finished) = run(devices, job) {
            if outcomes.send(finished).is_err() {
                return;
            }
            // A full pipe already wakes the loop, which then takes every
            // outcome sent.
            let _ = waker.write(&[1]);
        }
    }
}

/// Prepares one more class on `classes` if it has fewer than
/// [`PREPARED_CLASSES`]; whether it may want another.
fn prepare_one(classes: &DeviceClasses) -> bool {
    let have = classes.prepared();
    if have >= PREPARED_CLASSES {
        return false;
    }
    match classes.prepare(have + 1) {
        Ok(_) => true,
        Err(err) => {
            log::warn!("{}: cannot prepare classes ahead: {err}", classes.device());
            false
        }
    }
}

fn run(devices: &[Arc<DeviceClasses>], job: Job) -> Option<Finished> {
    match job {
        Job::Configure {
            device,
            class,
            params,
            link_rate,
            waiter,
        } => {
            let classes = &devices[device];
            let result = classes.configure(class, &params, link_rate);
            match waiter {
                Some(waiter) => Some(Finished {
                    waiter,
                    result: result.map(|()| None).map_err(|err| ReplyError::from(&err)),
                }),
                None => {
                    if let Err(err) = result {
                        log::warn!(
                            "{}: cannot give a stream's class its options: {err}",
                            classes.device()
                        );
                    }
                    None
                }
            }
        }
        Job::Remove {
            device,
            class,
            why,
            waiter,
        } => {
            let classes = &devices[device];
            let id = class.id();
            match classes.remove(class) {
                Ok(()) => log::info!("{}: removed class {id}: {why}", classes.device()),
                Err(err) => log::warn!(
                    "{}: cannot remove class {id} ({why}): {err}",
                    classes.device()
                ),
            }
            waiter.map(|waiter| Finished {
                waiter,
                result: Ok(None),
            })
        }
        Job::Stats {
            device,
            class,
            waiter,
        } => Some(Finished {
            waiter,
            result: devices[device]
                .stats(class)
                .map(Some)
                .map_err(|err| ReplyError::from(&err)),
        }),
        Job::Log(line) => {
            log::info!("{line}");
            None
        }
        Job::Replenish(_) => None,
    }
}
