//! The `dwcs` backend: sch_dwcs, the DWCS qdisc of kmod-dwcs, as the device's
//! root qdisc. This build knows where the module would be and says so; the
//! netlink control of the qdisc comes with kmod-dwcs.

use socket2::Socket;

use super::{Attachment, Backend, DeviceReport, InitReport};
use crate::error::{Error, ErrorKind, Result};
use crate::params::{InitParams, QosParams, SchedulerName};

/// sch_dwcs as root qdisc.
#[derive(Debug)]
pub(crate) struct Dwcs;

/// Where the kernel lists a loaded module.
const MODULE_PATH: &str = "/sys/module/sch_dwcs";

fn unavailable() -> Error {
    let loaded = std::path::Path::new(MODULE_PATH).exists();
    let why = if loaded {
        "the sch_dwcs module is loaded, but this build of qsock has no control path for it yet"
    } else {
        "the sch_dwcs kernel module is not loaded (build and install it from kmod-dwcs/ with \
         DKMS, then `modprobe sch_dwcs`)"
    };
    Error::new(
        ErrorKind::NotSupported,
        format!("{why}; the htb scheduler (CAP_NET_ADMIN) or the user scheduler (no privilege) work without it"),
    )
}

impl Backend for Dwcs {
    fn name(&self) -> SchedulerName {
        SchedulerName::Dwcs
    }

    fn install(&self, _init: &InitParams) -> Result<InitReport> {
        Err(unavailable())
    }

    fn is_installed(&self, _device: &str) -> Result<bool> {
        Ok(false)
    }

    fn attach(&self, _socket: &Socket, _params: &QosParams) -> Result<Box<dyn Attachment>> {
        Err(unavailable())
    }

    fn report(&self, _device: &str) -> Result<DeviceReport> {
        Err(unavailable())
    }

    fn reset(&self, _device: &str) -> Result<()> {
        Err(unavailable())
    }
}
