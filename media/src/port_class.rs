//! The administrator's way: a static HTB class for one port, set up by hand
//! with tc, with no API and no deadlines.

use qsock_testbed::TestBed;

use crate::Result;

/// Makes HTB the sender's root qdisc at `link_kbit` (the bottleneck), with a
/// class of `class_kbit` for UDP to `port` (a u32 filter on the destination
/// port) and a default class for everything else; each may borrow what the
/// other leaves. The tc commands an administrator would type:
///
/// ```text
/// tc qdisc replace dev DEV root handle 1: htb default 20
/// tc class add dev DEV parent 1: classid 1:1 htb rate LINK
/// tc class add dev DEV parent 1:1 classid 1:10 htb rate CLASS ceil LINK prio 0
/// tc class add dev DEV parent 1:1 classid 1:20 htb rate LINK-CLASS ceil LINK prio 1
/// tc filter add dev DEV parent 1: protocol ip prio 1 u32 match ip protocol 17 0xff
///     match ip dport PORT 0xffff flowid 1:10
/// ```
pub fn install_port_class(bed: &TestBed, link_kbit: u64, port: u16, class_kbit: u64) -> Result<()> {
    let dev = bed.sender_dev();
    let (link, class) = (format!("{link_kbit}kbit"), format!("{class_kbit}kbit"));
    let rest = format!("{}kbit", link_kbit.saturating_sub(class_kbit).max(8));
    let port = port.to_string();
    let commands: [&[&str]; 5] = [
        &[
            "qdisc", "replace", "dev", dev, "root", "handle", "1:", "htb", "default", "20",
        ],
        &[
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", &link,
        ],
        &[
            "class", "add", "dev", dev, "parent", "1:1", "classid", "1:10", "htb", "rate", &class,
            "ceil", &link, "prio", "0",
        ],
        &[
            "class", "add", "dev", dev, "parent", "1:1", "classid", "1:20", "htb", "rate", &rest,
            "ceil", &link, "prio", "1",
        ],
        &[
            "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", &port, "0xffff",
            "flowid", "1:10",
        ],
    ];
    for args in commands {
        bed.tc_in_sender(args)?;
    }
    Ok(())
}
