//! Who owns qsock's root qdiscs and stream classes. The kernel keeps no
//! owner for either, so qsock keeps records of its own beside them, one
//! directory per device under [`RUN_DIR`] (keyed by network namespace and
//! interface index, as the kernel keys devices):
//!
//! - `root`: written by qsockinit when it installs a root qdisc; a qdisc with
//!   qsock's handle but no record was not installed by qsock, and qsock
//!   neither adopts nor removes it.
//! - `class-MINOR`: written by the process that creates a stream's class, and
//!   held locked (`flock`) by it for as long as the stream lives. The kernel
//!   drops the lock when that process ends in any way, `kill -9` included, so
//!   a class whose record nobody holds has lost its owner.
//! - `lock`: serialises the changes to one device's classes (claiming a
//!   minor, admission, removing classes whose owner is gone) among processes.
//!
//! Everything about these records lives in this module, so that another
//! keeper of ownership can replace it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::StreamOwner;
use crate::error::{Error, ErrorKind, Result};
use crate::tc::link::Link;

/// Where the records live: a tmpfs, emptied at boot like the qdiscs.
pub(crate) const RUN_DIR: &str = "/run/qsock";

/// The records of one device.
#[derive(Debug, Clone)]
pub(crate) struct DeviceRecords {
    dir: PathBuf,
    device: String,
}

/// Whether a class's owner still holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ownership {
    /// A live process holds the record.
    Held(Option<StreamOwner>),
    /// Nobody holds it: the owner ended without removing the class, or (no
    /// record at all) the class was made outside qsock's attach.
    Gone(Option<StreamOwner>),
}

impl Ownership {
    /// What the record says about the owner.
    pub(crate) fn owner(&self) -> Option<&StreamOwner> {
        match self {
            Ownership::Held(owner) | Ownership::Gone(owner) => owner.as_ref(),
        }
    }

    /// No process holds the class.
    pub(crate) fn is_gone(&self) -> bool {
        matches!(self, Ownership::Gone(_))
    }
}

/// The device-wide lock, held while classes are claimed or removed.
#[derive(Debug)]
pub(crate) struct DeviceLock {
    _lock: Flock<File>,
}

/// A stream's hold on its class: the locked record. Dropping it without
/// [`ClassClaim::release`] leaves the record for others to find unheld.
#[derive(Debug)]
pub(crate) struct ClassClaim {
    lock: Flock<File>,
    path: PathBuf,
}

impl ClassClaim {
    /// Records `owner` as the process the class is held for (a daemon
    /// holding classes for its clients), in place of the holder.
    pub(crate) fn record_owner(&mut self, owner: &StreamOwner) -> io::Result<()> {
        write_owner(&mut self.lock, owner)
    }

    /// Removes the record once its class is gone, then lets go of it.
    pub(crate) fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.lock);
    }
}

/// A class found without a live owner and removed by the caller.
#[derive(Debug)]
pub(crate) struct Orphan {
    lock: Option<Flock<File>>,
    path: PathBuf,
}

impl Orphan {
    /// Forgets the record of a class that has been deleted.
    pub(crate) fn forget(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.lock);
    }
}

/// Does this process have CAP_NET_ADMIN in its effective set?
pub(crate) fn has_net_admin() -> bool {
    crate::sys::has_net_admin()
}

impl DeviceRecords {
    fn io_error(&self, what: &str, path: &Path, err: impl Into<io::Error>) -> Error {
        let err = err.into();
        if err.kind() != io::ErrorKind::PermissionDenied {
            return Error::os(format!("cannot {what} {}", path.display()), err);
        }
        if !has_net_admin() {
            // What is missing first is the privilege the kernel would ask for.
            return Error::needs_net_admin("changing qsock's scheduler", &self.device);
        }
        Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "cannot {what} {}: qsock keeps its records of {} under {RUN_DIR}, which this user \
                 may not write; run as root, or let this user write there (`install -d -m 1777 \
                 {RUN_DIR}`)",
                path.display(),
                self.device
            ),
        )
    }
}

/// This process's description, for the records.
fn this_process() -> StreamOwner {
    process(std::process::id(), nix::unistd::getuid().as_raw())
}

/// The description of process `pid` of user `uid`, for the records: its
/// command line, and now as the time it took the stream.
pub(crate) fn process(pid: u32, uid: u32) -> StreamOwner {
    let command = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|arg| !arg.is_empty())
                .map(|arg| String::from_utf8_lossy(arg).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    StreamOwner {
        pid,
        uid,
        command,
        since_unix_seconds: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
    }
}

fn read_owner(file: &mut File) -> Option<StreamOwner> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_owner(file: &mut File, owner: &StreamOwner) -> io::Result<()> {
    let text = serde_json::to_string(owner).map_err(io::Error::other)?;
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

/// The record's file still is the one at `path` (nobody removed it between
/// our open and our lock).
fn still_linked(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(open), Ok(linked)) => open.ino() == linked.ino() && open.dev() == linked.dev(),
        _ => false,
    }
}

impl DeviceRecords {
    /// The records of `link` in the calling thread's network namespace,
    /// keyed by the namespace's cookie: its inode number is reused once the
    /// namespace is gone, and records of the old one would pass for the new
    /// one's. Kernels before 5.14 have no cookie; the inode stands in there.
    pub(crate) fn of(link: &Link) -> Result<DeviceRecords> {
        let probe = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::DGRAM, None)
            .map_err(|err| Error::os("cannot open a socket to find the network namespace", err))?;
        let namespace = match crate::sys::netns_cookie(probe.as_fd()) {
            Ok(cookie) => format!("netns{cookie}"),
            Err(err) => {
                crate::notice::once(
                    "netns-cookie",
                    &format!(
                        "this kernel does not give network namespace cookies ({err}): qsock keys \
                         its records by the namespace's inode, which a later namespace may reuse"
                    ),
                );
                let netns = Path::new("/proc/thread-self/ns/net");
                let inode = fs::metadata(netns)
                    .map_err(|err| {
                        Error::os("cannot read the network namespace of this thread", err)
                    })?
                    .ino();
                format!("net{inode}")
            }
        };
        Ok(DeviceRecords {
            dir: Path::new(RUN_DIR).join(format!("{namespace}-if{}", link.index)),
            device: link.name.clone(),
        })
    }

    fn create_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|err| self.io_error("create", &self.dir, err))
    }

    fn class_path(&self, minor: u16) -> PathBuf {
        self.dir.join(format!("class-{minor:x}"))
    }

    fn root_path(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Waits for the device's lock: other processes claiming or removing
    /// classes on the device wait for it too.
    pub(crate) fn lock(&self) -> Result<DeviceLock> {
        self.create_dir()?;
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| self.io_error("open", &path, err))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| self.io_error("lock", &path, errno))?;
        Ok(DeviceLock { _lock: lock })
    }

    /// Takes the record of class `minor` for this process; `None` when a
    /// live process holds it. Call with the device locked.
    pub(crate) fn claim(&self, minor: u16) -> Result<Option<ClassClaim>> {
        self.create_dir()?;
        let path = self.class_path(minor);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|err| self.io_error("open", &path, err))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => return Err(self.io_error("lock", &path, errno)),
        };
        if !still_linked(&lock, &path) {
            return Ok(None);
        }
        write_owner(&mut lock, &this_process())
            .map_err(|err| self.io_error("write", &path, err))?;
        Ok(Some(ClassClaim { lock, path }))
    }

    /// Who holds class `minor`, asked without waiting.
    pub(crate) fn ownership(&self, minor: u16) -> Ownership {
        self.probe(minor).0
    }

    /// Takes hold of class `minor`'s record if its owner is gone, so that
    /// the caller can delete the class; `None` when a live process holds it.
    /// Call with the device locked.
    pub(crate) fn orphan(&self, minor: u16) -> Option<(Orphan, Option<StreamOwner>)> {
        let path = self.class_path(minor);
        match self.probe(minor) {
            (Ownership::Held(_), _) => None,
            (Ownership::Gone(owner), lock) => Some((Orphan { lock, path }, owner)),
        }
    }

    fn probe(&self, minor: u16) -> (Ownership, Option<Flock<File>>) {
        let Ok(file) = File::open(self.class_path(minor)) else {
            return (Ownership::Gone(None), None);
        };
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let owner = read_owner(&mut lock);
                (Ownership::Gone(owner), Some(lock))
            }
            Err((mut file, _)) => (Ownership::Held(read_owner(&mut file)), None),
        }
    }

    /// Records that qsock installed a root qdisc of `kind` on the device.
    pub(crate) fn record_root(&self, kind: &str) -> Result<()> {
        self.create_dir()?;
        let path = self.root_path();
        let record = RootRecord {
            kind: kind.to_owned(),
            installed_by: this_process(),
        };
        let text = serde_json::to_string(&record).map_err(io::Error::other);
        text.and_then(|text| fs::write(&path, text))
            .map_err(|err| self.io_error("write", &path, err))
    }

    /// The kind of root qdisc qsock recorded installing, if it did.
    pub(crate) fn recorded_root(&self) -> Option<String> {
        let text = fs::read_to_string(self.root_path()).ok()?;
        serde_json::from_str::<RootRecord>(&text)
            .ok()
            .map(|record| record.kind)
    }

    /// Forgets the device's root qdisc and every class record, once the root
    /// qdisc (and with it every class) is gone.
    pub(crate) fn forget_all(&self) {
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// Forgets the root record only (an install that failed).
    pub(crate) fn forget_root(&self) {
        let _ = fs::remove_file(self.root_path());
    }

    /// The device the records are about.
    pub(crate) fn device(&self) -> &str {
        &self.device
    }
}

/// The `root` record.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RootRecord {
    kind: String,
    installed_by: StreamOwner,
}

/// Refusal for a root qdisc that has qsock's handle and kind but that qsock
/// did not install (`why` says what gave it away).
pub(crate) fn not_ours(device: &str, described: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::Busy,
        format!(
            "{device}'s root qdisc {described} has qsock's handle, but qsock did not install it \
             ({why}): qsock will neither use nor remove it. If nobody needs it, remove it by \
             hand with `tc qdisc del dev {device} root`, then run `qsockctl init --dev {device}`"
        ),
    )
}
