//! The administrator's way: a static HTB class per port, set up by hand with
//! tc, with no API and no deadlines.

use qsock_testbed::TestBed;

use crate::{Error, Result};

/// The first class id of the ports' classes (`1:10`, `1:11`, ...).
const FIRST_PORT_CLASS: u16 = 0x10;
/// The default class's minor (`1:2`): everything that goes to no port with
/// a class.
const DEFAULT_MINOR: &str = "2";

/// Makes HTB the sender's root qdisc at `link_kbit` (the bottleneck), with a
/// class of `class_kbit` for UDP to each of `ports` (a u32 filter on the
/// destination port) and a default class for everything else; each may
/// borrow what the others leave. The tc commands an administrator would
/// type, for one port:
///
/// ```text
/// tc qdisc replace dev DEV root handle 1: htb default 2
/// tc class add dev DEV parent 1: classid 1:1 htb rate LINK
/// tc class add dev DEV parent 1:1 classid 1:2 htb rate LINK-CLASS ceil LINK prio 1
/// tc class add dev DEV parent 1:1 classid 1:10 htb rate CLASS ceil LINK prio 0
/// tc filter add dev DEV parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff
///     match ip dport PORT 0xffff flowid 1:10
/// ```
pub fn install_port_classes(
    bed: &TestBed,
    link_kbit: u64,
    ports: &[u16],
    class_kbit: u64,
) -> Result<()> {
    let reserved = class_kbit.saturating_mul(ports.len() as u64);
    if ports.is_empty() || ports.len() > 0xf0 || reserved >= link_kbit {
        return Err(Error::Setup(format!(
            "{} port classes of {class_kbit} kbit/s do not fit a {link_kbit} kbit/s link \
             beside a default class: give fewer ports or smaller classes",
            ports.len()
        )));
    }
    let dev = bed.sender_dev();
    let link = format!("{link_kbit}kbit");
    let class = format!("{class_kbit}kbit");
    let rest = format!("{}kbit", link_kbit - reserved);
    let default_class = format!("1:{DEFAULT_MINOR}");
    bed.tc_in_sender(&[
        "qdisc",
        "replace",
        "dev",
        dev,
        "root",
        "handle",
        "1:",
        "htb",
        "default",
        DEFAULT_MINOR,
    ])?;
    bed.tc_in_sender(&[
        "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", &link,
    ])?;
    bed.tc_in_sender(&[
        "class",
        "add",
        "dev",
        dev,
        "parent",
        "1:1",
        "classid",
        &default_class,
        "htb",
        "rate",
        &rest,
        "ceil",
        &link,
        "prio",
        "1",
    ])?;
    for (i, port) in ports.iter().enumerate() {
        let classid = format!("1:{:x}", FIRST_PORT_CLASS + i as u16);
        let port = port.to_string();
        bed.tc_in_sender(&[
            "class", "add", "dev", dev, "parent", "1:1", "classid", &classid, "htb", "rate",
            &class, "ceil", &link, "prio", "0",
        ])?;
        bed.tc_in_sender(&[
            "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", &port, "0xffff",
            "flowid", &classid,
        ])?;
    }
    Ok(())
}
