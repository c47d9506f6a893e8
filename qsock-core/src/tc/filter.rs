//! Filters on a root qdisc that send link-control traffic (ARP, IPv6
//! neighbour discovery) to the qdisc's direct queue, past every class.
//!
//! A shaping root puts what no stream claims in its default class, behind
//! bulk traffic. Neighbour replies waiting there for seconds let the next
//! hop's neighbour entry for this host expire, and the next hop then drops
//! everything toward the host. HTB serves packets whose filter result is the
//! qdisc's own handle (`MAJOR:0`) from its direct queue before any class
//! (`htb_classify` in the kernel's `net/sched/sch_htb.c`).
//!
//! Each rule is one u32 filter at its own priority, so that a priority
//! identifies a rule: `tc filter add dev DEV parent 7173: protocol arp prio 1
//! u32 match u32 0 0 flowid 7173:0`, and for neighbour discovery `protocol
//! ipv6 prio 2..4 u32 match ip6 protocol 58 0xff match u8 TYPE MASK at 40
//! flowid 7173:0`.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::tc::{
    TcAttribute, TcFilterU32, TcFilterU32Option, TcHandle, TcMessage, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::Link;
use super::qdisc::link_index;
use super::{handle_to_string, Context, Netlink};
use crate::error::Result;

/// `ETH_P_ARP`.
const ETH_P_ARP: u16 = 0x0806;
/// `ETH_P_IPV6`.
const ETH_P_IPV6: u16 = 0x86dd;

/// One u32 match: the 32-bit word at byte `offset` of the network header,
/// masked with `mask`, equals `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Match {
    mask: u32,
    value: u32,
    offset: i32,
}

/// Any packet: a key with mask 0 matches every packet.
const ANY: Match = Match {
    mask: 0,
    value: 0,
    offset: 0,
};

/// An IPv6 header whose next header is ICMPv6 (58, byte 6).
const NEXT_HEADER_ICMPV6: Match = Match {
    mask: 0x0000_ff00,
    value: 0x0000_3a00,
    offset: 4,
};

/// The ICMPv6 type (the first byte after a 40-byte IPv6 header, as
/// neighbour discovery sends it: RFC 4861 messages carry no extension
/// headers) under `mask`.
const fn icmpv6_type(value: u8, mask: u8) -> Match {
    Match {
        mask: (mask as u32) << 24,
        value: ((value & mask) as u32) << 24,
        offset: 40,
    }
}

/// A filter that sends what it matches to the direct queue.
#[derive(Debug, Clone, Copy)]
struct BypassRule {
    /// The filter's priority, unique to the rule.
    prio: u16,
    /// The ethertype it applies to.
    protocol: u16,
    /// What the packet must match, all of it.
    matches: &'static [Match],
}

/// ARP, then neighbour discovery: router solicitation (133), router
/// advertisement (134) and neighbour solicitation (135), neighbour
/// advertisement (136) and redirect (137).
const RULES: [BypassRule; 4] = [
    BypassRule {
        prio: 1,
        protocol: ETH_P_ARP,
        matches: &[ANY],
    },
    BypassRule {
        prio: 2,
        protocol: ETH_P_IPV6,
        matches: &[NEXT_HEADER_ICMPV6, icmpv6_type(133, 0xff)],
    },
    BypassRule {
        prio: 3,
        protocol: ETH_P_IPV6,
        matches: &[NEXT_HEADER_ICMPV6, icmpv6_type(134, 0xfe)],
    },
    BypassRule {
        prio: 4,
        protocol: ETH_P_IPV6,
        matches: &[NEXT_HEADER_ICMPV6, icmpv6_type(136, 0xfe)],
    },
];

/// `tcm_info` of a filter: its priority above its protocol in network order.
fn filter_info(prio: u16, protocol: u16) -> u32 {
    (u32::from(prio) << 16) | u32::from(protocol.to_be())
}

/// A u32 filter as the kernel dumps it: its priority, protocol, matches and
/// target class. The hash table every u32 priority also dumps has no
/// selector and is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
struct U32Filter {
    prio: u16,
    protocol: u16,
    matches: Vec<Match>,
    classid: Option<TcHandle>,
}

impl U32Filter {
    fn parse(msg: &TcMessage) -> Option<U32Filter> {
        let is_u32 = msg
            .attributes
            .iter()
            .any(|a| matches!(a, TcAttribute::Kind(kind) if kind == TcFilterU32::KIND));
        if !is_u32 {
            return None;
        }
        let options = msg.attributes.iter().find_map(|a| match a {
            TcAttribute::Options(options) => Some(options),
            _ => None,
        })?;
        let mut matches = None;
        let mut classid = None;
        for option in options {
            match option {
                TcOption::U32(TcFilterU32Option::Selector(selector)) => {
                    matches = Some(
                        selector
                            .keys
                            .iter()
                            .map(|key| Match {
                                mask: key.mask,
                                value: key.val,
                                offset: key.off,
                            })
                            .collect(),
                    );
                }
                TcOption::U32(TcFilterU32Option::ClassId(handle)) => classid = Some(*handle),
                _ => {}
            }
        }
        Some(U32Filter {
            prio: (msg.header.info >> 16) as u16,
            protocol: u16::from_be(msg.header.info as u16),
            matches: matches?,
            classid,
        })
    }

    fn is(&self, rule: &BypassRule, qdisc: TcHandle) -> bool {
        self.prio == rule.prio
            && self.protocol == rule.protocol
            && self.matches == rule.matches
            && self.classid == Some(qdisc)
    }
}

/// A filter message on `qdisc` of `link`; `info` holds a priority and
/// protocol (see [`filter_info`]), 0 for every filter.
fn message(link: &Link, qdisc: TcHandle, info: u32) -> TcMessage {
    let mut msg = TcMessage::with_index(link_index(link));
    msg.header.parent = qdisc;
    msg.header.info = info;
    msg
}

/// Sends `request` with `flags`; errors name it as `tc filter VERB parent
/// MAJOR: REST` on the device.
fn send(
    nl: &Netlink,
    link: &Link,
    qdisc: TcHandle,
    verb_and_rest: (&str, &str),
    request: RouteNetlinkMessage,
    flags: u16,
) -> Result<Vec<RouteNetlinkMessage>> {
    let (verb, rest) = verb_and_rest;
    let what = format!("tc filter {verb} parent {} {rest}", handle_to_string(qdisc));
    let ctx = Context {
        what: what.trim_end(),
        device: &link.name,
    };
    nl.request(request, flags, ctx)
}

/// How `tc` names a filter's priority and protocol.
fn describe(prio: u16, protocol: u16) -> String {
    format!("protocol {protocol:#06x} prio {prio}")
}

/// The u32 filters attached to `qdisc` (`tc filter show dev DEV parent
/// MAJOR:`).
fn list(nl: &Netlink, link: &Link, qdisc: TcHandle) -> Result<Vec<U32Filter>> {
    let request = RouteNetlinkMessage::GetTrafficFilter(message(link, qdisc, 0));
    let replies = send(nl, link, qdisc, ("show", ""), request, NLM_F_DUMP)?;
    let ours = |msg: &TcMessage| msg.header.index == link_index(link) && msg.header.parent == qdisc;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewTrafficFilter(msg) if ours(&msg) => U32Filter::parse(&msg),
            _ => None,
        })
        .collect())
}

/// `tc filter add dev DEV parent MAJOR: protocol P prio N u32 ... flowid
/// MAJOR:0`.
fn add(nl: &Netlink, link: &Link, qdisc: TcHandle, rule: &BypassRule) -> Result<()> {
    let mut selector = TcU32Selector::default();
    selector.flags = TcU32SelectorFlags::Terminal;
    selector.keys = rule
        .matches
        .iter()
        .map(|m| {
            let mut key = TcU32Key::default();
            key.mask = m.mask;
            key.val = m.value;
            key.off = m.offset;
            key
        })
        .collect();
    selector.nkeys = u8::try_from(selector.keys.len()).unwrap_or(u8::MAX);
    let mut msg = message(link, qdisc, filter_info(rule.prio, rule.protocol));
    msg.attributes
        .push(TcAttribute::Kind(TcFilterU32::KIND.to_owned()));
    msg.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::ClassId(qdisc)),
        TcOption::U32(TcFilterU32Option::Selector(selector)),
    ]));
    let rest = format!("{} u32", describe(rule.prio, rule.protocol));
    let request = RouteNetlinkMessage::NewTrafficFilter(msg);
    send(
        nl,
        link,
        qdisc,
        ("add", &rest),
        request,
        NLM_F_CREATE | NLM_F_EXCL,
    )?;
    Ok(())
}

/// `tc filter del dev DEV parent MAJOR: protocol P prio N`: every filter at
/// the priority of `filter`.
fn delete_prio(nl: &Netlink, link: &Link, qdisc: TcHandle, filter: &U32Filter) -> Result<()> {
    let msg = message(link, qdisc, filter_info(filter.prio, filter.protocol));
    let rest = describe(filter.prio, filter.protocol);
    let request = RouteNetlinkMessage::DelTrafficFilter(msg);
    send(nl, link, qdisc, ("del", &rest), request, 0)?;
    Ok(())
}

/// Makes ARP and IPv6 neighbour discovery leaving `link` skip the classes of
/// the root qdisc `qdisc` for its direct queue. Idempotent: a rule already in
/// place is left alone, and whatever else holds a rule's priority is
/// replaced. Filters go with the qdisc when it is deleted.
pub(crate) fn bypass_link_control(nl: &Netlink, link: &Link, qdisc: TcHandle) -> Result<()> {
    let present = list(nl, link, qdisc)?;
    for rule in &RULES {
        let at_prio: Vec<&U32Filter> = present.iter().filter(|f| f.prio == rule.prio).collect();
        if at_prio.len() == 1 && at_prio[0].is(rule, qdisc) {
            continue;
        }
        if let Some(stale) = at_prio.first() {
            delete_prio(nl, link, qdisc, stale)?;
        }
        add(nl, link, qdisc, rule)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_info_holds_prio_and_protocol_in_network_order() {
        let info = filter_info(1, ETH_P_ARP);
        assert_eq!(info >> 16, 1);
        assert_eq!((info as u16).to_ne_bytes(), [0x08, 0x06]);
    }

    #[test]
    fn icmpv6_types_cover_neighbour_discovery_only() {
        let covered: Vec<u8> = (0..=255u8)
            .filter(|t| {
                RULES[1..].iter().any(|rule| {
                    let key = rule.matches[1];
                    (u32::from(*t) << 24) & key.mask == key.value
                })
            })
            .collect();
        assert_eq!(covered, vec![133, 134, 135, 136, 137]);
    }
}
