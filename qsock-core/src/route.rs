//! Which device traffic to a host leaves by, so that callers that only know
//! a destination (the GStreamer sink's `host`) can name the device a
//! scheduler must sit on, and how large a packet that device carries.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::route::RouteAttribute;
use rtnetlink::RouteMessageBuilder;

use crate::error::{Error, ErrorKind, Result};
use crate::tc::{rtnetlink_error, Context, Netlink};

/// The MTU of `device` in bytes (`ip link show dev DEVICE`), in the calling
/// thread's network namespace. The kernel backends size a stream's class for
/// packets of this size unless the stream gives its own packet size;
/// [`crate::link`] says what such a packet costs on the link.
pub fn device_mtu(device: &str) -> Result<u32> {
    let nl = Netlink::open()?;
    Ok(crate::tc::link::lookup(&nl, device)?.mtu)
}

/// The name of the device that traffic to `destination` leaves by (`ip route
/// get DESTINATION`), in the calling thread's network namespace.
pub fn egress_device(destination: IpAddr) -> Result<String> {
    let nl = Netlink::open()?;
    let what = format!("ip route get {destination}");
    let ctx = Context {
        what: &what,
        device: "(route lookup)",
    };
    let query = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(destination, full_prefix(destination))
        .map_err(|err| Error::invalid(format!("{what}: {err}")))?
        .build();
    let handle = nl.handle();
    let answer = nl.block_on(async move { handle.route().get(query).execute().try_next().await });
    let route = match answer {
        Ok(Some(route)) => route,
        Ok(None) => return Err(no_route(destination, "the kernel gave no answer")),
        Err(rtnetlink::Error::NetlinkError(err))
            if matches!(
                err.raw_code().abs(),
                libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ESRCH
            ) =>
        {
            return Err(no_route(destination, "no route matches it"));
        }
        Err(err) => return Err(rtnetlink_error(err, ctx)),
    };
    let index = route
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            RouteAttribute::Oif(index) => Some(*index),
            _ => None,
        })
        .ok_or_else(|| no_route(destination, "its route names no output device"))?;
    let name = nix::net::if_::if_indextoname(index).map_err(|err| {
        Error::new(
            ErrorKind::NoDevice,
            format!(
                "the route to {destination} leaves by interface index {index}, which has no \
                 name here ({err}): give the device by name"
            ),
        )
    })?;
    Ok(name.to_string_lossy().into_owned())
}

fn full_prefix(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn no_route(destination: IpAddr, why: &str) -> Error {
    Error::new(
        ErrorKind::NoDevice,
        format!(
            "cannot find the device traffic to {destination} leaves by ({why}): check `ip route \
             get {destination}`, or name the device yourself"
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed lookup should stop the test at once

    use super::*;

    #[test]
    fn loopback_leaves_by_lo() {
        assert_eq!(egress_device("127.0.0.1".parse().unwrap()).unwrap(), "lo");
    }
}
