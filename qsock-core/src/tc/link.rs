//! A network device as traffic control needs it: index, MTU and speed.

use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;

use super::{rtnetlink_error, Context, Netlink};
use crate::error::{Error, ErrorKind, Result};
use crate::params::{validate_device, Rate};

/// A device of the calling thread's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    /// Its name.
    pub(crate) name: String,
    /// Its interface index.
    pub(crate) index: u32,
    /// Its MTU in bytes.
    pub(crate) mtu: u32,
}

/// Looks `name` up (`ip link show dev NAME`); `NoDevice` when there is none.
pub(crate) fn lookup(nl: &Netlink, name: &str) -> Result<Link> {
    validate_device(name)?;
    let ctx = Context {
        what: "ip link show",
        device: name,
    };
    let handle = nl.handle();
    let message = nl.block_on(async move {
        handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await
    });
    let message = match message {
        Ok(Some(message)) => message,
        Ok(None) => return Err(no_device(name)),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => {
            return Err(no_device(name))
        }
        Err(e) => return Err(rtnetlink_error(e, ctx)),
    };
    let mtu = message
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        })
        // Every device reports an MTU; Ethernet's is the safe guess if not.
        .unwrap_or(1500);
    Ok(Link {
        name: name.to_owned(),
        index: message.header.index,
        mtu,
    })
}

/// The error for a device that does not exist.
pub(crate) fn no_device(name: &str) -> Error {
    Error::new(
        ErrorKind::NoDevice,
        format!("there is no network device {name:?} (check `ip link`)"),
    )
}

/// The link's speed from `/sys/class/net/DEV/speed`, or `None` where the
/// driver does not know it. Sysfs shows the devices of the namespace it was
/// mounted in, which need not be the calling thread's: the speed is only
/// believed when the device's index there matches `link.index`.
pub(crate) fn speed(link: &Link) -> Option<Rate> {
    let dir = std::path::Path::new("/sys/class/net").join(&link.name);
    let index: u32 = std::fs::read_to_string(dir.join("ifindex"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if index != link.index {
        return None;
    }
    // Reading fails with EINVAL when the link is down or has no speed, and
    // some drivers report -1 or 0 for unknown.
    let mbit: i64 = std::fs::read_to_string(dir.join("speed"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if mbit <= 0 || mbit == i64::from(u32::MAX) {
        return None;
    }
    Some(Rate::from_bits_per_second(
        u64::try_from(mbit).ok()? * 1_000_000,
    ))
}
