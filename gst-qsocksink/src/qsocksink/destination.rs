//! Where the packets go: the destination address, the local address they
//! leave from, and the device whose scheduler must see them.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::settings::Settings;

/// The `bind-address` property as an address, if one is given.
pub(super) fn bind_address(settings: &Settings) -> Result<Option<IpAddr>, gst::ErrorMessage> {
    if settings.bind_address.is_empty() {
        return Ok(None);
    }
    settings.bind_address.parse().map(Some).map_err(|_| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            (
                "bind-address {:?} is not an IP address: give one of this host's addresses, or \
                 leave it empty",
                settings.bind_address
            )
        )
    })
}

fn family(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// The address `host` resolves to; with a `bind_address`, the first of its
/// family, as a socket bound to it can send to no other.
pub(super) fn resolve_destination(
    settings: &Settings,
    bind_address: Option<IpAddr>,
) -> Result<SocketAddr, gst::ErrorMessage> {
    let port = u16::try_from(settings.port).map_err(|_| {
        gst::error_msg!(
            gst::ResourceError::Settings,
            ("port {} is out of range: give 1 to 65535", settings.port)
        )
    })?;
    let addresses: Vec<SocketAddr> = (settings.host.as_str(), port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    let Some(&first) = addresses.first() else {
        return Err(gst::error_msg!(
            gst::ResourceError::NotFound,
            (
                "cannot resolve host {:?}: give an IP address or a name this host can resolve",
                settings.host
            )
        ));
    };
    let Some(bind_address) = bind_address else {
        return Ok(first);
    };
    addresses
        .iter()
        .find(|address| address.is_ipv4() == bind_address.is_ipv4())
        .copied()
        .ok_or_else(|| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "bind-address {bind_address} is an {} address but host {:?} is {} ({}): a \
                     socket sends only within one family. Give a bind-address of the host's \
                     family, or leave it empty",
                    family(bind_address),
                    settings.host,
                    family(first.ip()),
                    first.ip()
                )
            )
        })
}

/// The device whose scheduler must see the packets to `destination`: the
/// one the route leaves by; a `device` property naming another is refused,
/// as that scheduler would never see them.
pub(super) fn egress_device(
    settings: &Settings,
    destination: SocketAddr,
) -> Result<String, gst::ErrorMessage> {
    let route_device = qsock::egress_device(destination.ip());
    match (settings.device.as_str(), route_device) {
        ("", Ok(route_device)) => Ok(route_device),
        ("", Err(err)) => Err(gst::error_msg!(
            gst::ResourceError::NotFound,
            ("{err}; or set the device property")
        )),
        (device, Ok(route_device)) if device == route_device => Ok(route_device),
        (device, Ok(route_device)) => {
            if let Err(err) = qsock::device_mtu(device) {
                return Err(gst::error_msg!(
                    gst::ResourceError::NotFound,
                    (
                        "device={device}: {err}; the route to {} leaves by {route_device}",
                        destination.ip()
                    )
                ));
            }
            Err(gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "device={device}, but the route to {} leaves by {route_device}: the \
                         scheduler on {device} would never see the stream's packets. Set \
                         device={route_device}, or leave device empty for the route's device",
                    destination.ip()
                )
            ))
        }
        (device, Err(err)) => Err(gst::error_msg!(
            gst::ResourceError::NotFound,
            (
                "cannot check that traffic to {} leaves by device={device}: {err}",
                destination.ip()
            )
        )),
    }
}
