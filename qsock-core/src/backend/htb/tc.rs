//! HTB's netlink options (`include/uapi/linux/pkt_sched.h`), which
//! `netlink-packet-route` does not model: `struct tc_htb_glob` for the qdisc,
//! `struct tc_htb_opt` (two `struct tc_ratespec`) for a class, and the
//! 64-bit rate attributes for rates of 4 GB/s and more.
//!
//! The bytes are the ones `tc` sends (iproute2's `q_htb.c` and `tc_core.c`),
//! except that no rate tables are sent: the kernel uses them only to guess
//! the link layer when the ratespec does not name one, and ours does.

use netlink_packet_core::{DefaultNla, NlasIterator};
use netlink_packet_route::tc::{TcAttribute, TcOption};

use crate::params::Rate;
use crate::tc::class::ClassInfo;

/// The qdisc kind, as `tc` names it.
pub(crate) const KIND: &str = "htb";

/// `TCA_HTB_PARMS`: a class's `struct tc_htb_opt`.
const TCA_HTB_PARMS: u16 = 1;
/// `TCA_HTB_INIT`: the qdisc's `struct tc_htb_glob`.
const TCA_HTB_INIT: u16 = 2;
/// `TCA_HTB_RATE64`: the rate in bytes/s when it does not fit 32 bits.
const TCA_HTB_RATE64: u16 = 6;
/// `TCA_HTB_CEIL64`: the ceil in bytes/s when it does not fit 32 bits.
const TCA_HTB_CEIL64: u16 = 7;

/// `TC_HTB_PROTOVER`: the HTB protocol version the kernel expects.
const TC_HTB_PROTOVER: u32 = 3;
/// `TC_LINKLAYER_ETHERNET`.
const TC_LINKLAYER_ETHERNET: u8 = 1;
/// Nanoseconds per psched tick: the kernel's `PSCHED_SHIFT` is 6.
const NANOS_PER_TICK: u128 = 64;
/// The largest quantum the kernel takes without warning in the log.
pub(crate) const MAX_QUANTUM: u32 = 200_000;

/// `struct tc_ratespec`: a rate in bytes per second and how packets are sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct RateSpec {
    /// `cell_log`: log2 of the rate table's cell size (tables are not sent).
    pub(crate) cell_log: u8,
    /// `linklayer`: `TC_LINKLAYER_ETHERNET` (1), so no table is needed.
    pub(crate) linklayer: u8,
    /// `overhead`: bytes added to each packet's length.
    pub(crate) overhead: u16,
    /// `cell_align`.
    pub(crate) cell_align: i16,
    /// `mpu`: minimum packet unit.
    pub(crate) mpu: u16,
    /// `rate` in bytes per second, `u32::MAX` when a 64-bit attribute carries it.
    pub(crate) rate: u32,
}

impl RateSpec {
    /// Wire size.
    pub(crate) const LEN: usize = 12;

    /// The ratespec `tc` fills for `rate`: cell_log 3 (for its default MTU of
    /// 2047), cell_align -1, Ethernet link layer.
    pub(crate) fn for_rate(rate: Rate) -> RateSpec {
        RateSpec {
            cell_log: 3,
            linklayer: TC_LINKLAYER_ETHERNET,
            overhead: 0,
            cell_align: -1,
            mpu: 0,
            rate: u32::try_from(rate.bytes_per_second()).unwrap_or(u32::MAX),
        }
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.cell_log);
        out.push(self.linklayer);
        out.extend_from_slice(&self.overhead.to_ne_bytes());
        out.extend_from_slice(&self.cell_align.to_ne_bytes());
        out.extend_from_slice(&self.mpu.to_ne_bytes());
        out.extend_from_slice(&self.rate.to_ne_bytes());
    }

    fn parse(b: &[u8]) -> Option<RateSpec> {
        let b: &[u8; Self::LEN] = b.get(..Self::LEN)?.try_into().ok()?;
        Some(RateSpec {
            cell_log: b[0],
            linklayer: b[1],
            overhead: u16::from_ne_bytes([b[2], b[3]]),
            cell_align: i16::from_ne_bytes([b[4], b[5]]),
            mpu: u16::from_ne_bytes([b[6], b[7]]),
            rate: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

/// Appends `values` as the kernel lays out consecutive `__u32` fields.
fn push_u32s<const N: usize>(out: &mut Vec<u8>, values: [u32; N]) {
    for value in values {
        out.extend_from_slice(&value.to_ne_bytes());
    }
}

/// `struct tc_htb_glob`: the qdisc's options (`tc qdisc ... htb r2q R default D`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HtbGlob {
    /// `version`: `TC_HTB_PROTOVER`.
    pub(crate) version: u32,
    /// `rate2quantum`: a class's quantum is its rate (bytes/s) divided by this,
    /// unless the class gives its own.
    pub(crate) rate2quantum: u32,
    /// `defcls`: the minor of the class unclassified traffic goes to.
    pub(crate) defcls: u32,
    /// `debug`.
    pub(crate) debug: u32,
    /// `direct_pkts`: read-only counter.
    pub(crate) direct_pkts: u32,
}

impl HtbGlob {
    /// Wire size.
    pub(crate) const LEN: usize = 20;

    /// Options for a qdisc whose unclassified traffic goes to minor `default`.
    pub(crate) fn new(rate2quantum: u32, default: u16) -> HtbGlob {
        HtbGlob {
            version: TC_HTB_PROTOVER,
            rate2quantum,
            defcls: u32::from(default),
            debug: 0,
            direct_pkts: 0,
        }
    }

    /// The bytes of the struct.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        push_u32s(
            &mut out,
            [
                self.version,
                self.rate2quantum,
                self.defcls,
                self.debug,
                self.direct_pkts,
            ],
        );
        out
    }

    /// The qdisc's TCA_OPTIONS: `TCA_HTB_INIT` only (`tc` adds
    /// `TCA_HTB_DIRECT_QLEN` only when asked).
    pub(crate) fn options(self) -> Vec<TcOption> {
        vec![TcOption::Other(DefaultNla::new(
            TCA_HTB_INIT,
            self.to_bytes(),
        ))]
    }
}

/// The default class's minor of an HTB qdisc (`defcls` of its
/// `TCA_HTB_INIT`), from the nested attributes of its dumped `TCA_OPTIONS`.
pub(crate) fn default_class(nested: &[u8]) -> Option<u32> {
    NlasIterator::new(nested)
        .filter_map(|nla| nla.ok())
        .find(|nla| nla.kind() == TCA_HTB_INIT)
        .and_then(|nla| {
            let defcls = nla.value().get(8..12)?;
            Some(u32::from_ne_bytes(defcls.try_into().ok()?))
        })
}

/// `struct tc_htb_opt`: a class's options (`tc class ... htb rate R ceil C
/// burst B cburst CB prio P quantum Q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HtbOpt {
    /// Guaranteed rate.
    pub(crate) rate: RateSpec,
    /// Most the class may borrow up to.
    pub(crate) ceil: RateSpec,
    /// `buffer`: burst at `rate`, as the time it takes to send, in psched ticks.
    pub(crate) buffer: u32,
    /// `cbuffer`: burst at `ceil`, in psched ticks.
    pub(crate) cbuffer: u32,
    /// `quantum`: bytes served per round among siblings of one priority; 0
    /// lets the kernel derive it from r2q.
    pub(crate) quantum: u32,
    /// `level`: read-only.
    pub(crate) level: u32,
    /// `prio`: 0 is served first.
    pub(crate) prio: u32,
}

impl HtbOpt {
    /// Wire size.
    pub(crate) const LEN: usize = 2 * RateSpec::LEN + 20;

    /// The bytes of the struct.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        self.rate.emit(&mut out);
        self.ceil.emit(&mut out);
        push_u32s(
            &mut out,
            [
                self.buffer,
                self.cbuffer,
                self.quantum,
                self.level,
                self.prio,
            ],
        );
        out
    }

    /// Reads the struct; `None` when `b` is too short.
    pub(crate) fn parse(b: &[u8]) -> Option<HtbOpt> {
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        let base = 2 * RateSpec::LEN;
        Some(HtbOpt {
            rate: RateSpec::parse(b.get(..RateSpec::LEN)?)?,
            ceil: RateSpec::parse(b.get(RateSpec::LEN..base)?)?,
            buffer: u32_at(base)?,
            cbuffer: u32_at(base + 4)?,
            quantum: u32_at(base + 8)?,
            level: u32_at(base + 12)?,
            prio: u32_at(base + 16)?,
        })
    }
}

/// What a class should be; turned into [`HtbOpt`] and the 64-bit attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HtbClassSpec {
    /// Guaranteed rate.
    pub(crate) rate: Rate,
    /// Ceiling.
    pub(crate) ceil: Rate,
    /// Burst at `rate`, in bytes.
    pub(crate) burst: u32,
    /// Burst at `ceil`, in bytes.
    pub(crate) cburst: u32,
    /// Priority, 0 (first) to 7.
    pub(crate) prio: u32,
    /// Quantum in bytes; 0 for the kernel's r2q rule.
    pub(crate) quantum: u32,
}

impl HtbClassSpec {
    /// The wire struct.
    pub(crate) fn opt(&self) -> HtbOpt {
        HtbOpt {
            rate: RateSpec::for_rate(self.rate),
            ceil: RateSpec::for_rate(self.ceil),
            buffer: transmit_ticks(self.rate, self.burst),
            cbuffer: transmit_ticks(self.ceil, self.cburst),
            quantum: self.quantum,
            level: 0,
            prio: self.prio,
        }
    }

    /// The class's `TCA_OPTIONS` attribute, see [`HtbClassSpec::options`].
    pub(crate) fn attribute(&self) -> TcAttribute {
        TcAttribute::Options(self.options())
    }

    /// The class's TCA_OPTIONS: `TCA_HTB_PARMS`, preceded like in `tc` by
    /// `TCA_HTB_RATE64`/`TCA_HTB_CEIL64` for rates of 2^32 bytes/s or more.
    pub(crate) fn options(&self) -> Vec<TcOption> {
        let mut options = Vec::new();
        for (kind, rate) in [(TCA_HTB_RATE64, self.rate), (TCA_HTB_CEIL64, self.ceil)] {
            if rate.bytes_per_second() >= 1 << 32 {
                options.push(TcOption::Other(DefaultNla::new(
                    kind,
                    rate.bytes_per_second().to_ne_bytes().to_vec(),
                )));
            }
        }
        options.push(TcOption::Other(DefaultNla::new(
            TCA_HTB_PARMS,
            self.opt().to_bytes(),
        )));
        options
    }
}

/// How long `bytes` take at `rate`, in psched ticks of 64 ns (`tc`'s
/// `tc_calc_xmittime`), saturating at `u32::MAX`.
pub(crate) fn transmit_ticks(rate: Rate, bytes: u32) -> u32 {
    let bytes_per_second = u128::from(rate.bytes_per_second().max(1));
    let nanos = u128::from(bytes) * 1_000_000_000 / bytes_per_second;
    u32::try_from(nanos / NANOS_PER_TICK).unwrap_or(u32::MAX)
}

/// A class's rate and ceil read back from a dump, 64-bit attributes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HtbClassParams {
    /// The struct as the kernel reports it.
    pub(crate) opt: HtbOpt,
    /// Rate.
    pub(crate) rate: Rate,
    /// Ceil.
    pub(crate) ceil: Rate,
}

/// Reads a dumped HTB class's options: the nested attributes inside
/// TCA_OPTIONS (the value of `nested`).
pub(crate) fn parse_class_options(nested: &[u8]) -> Option<HtbClassParams> {
    let mut opt = None;
    let mut rate64 = None;
    let mut ceil64 = None;
    for nla in NlasIterator::new(nested) {
        let nla = nla.ok()?;
        let value = nla.value();
        let as_u64 = || Some(u64::from_ne_bytes(value.get(..8)?.try_into().ok()?));
        match nla.kind() {
            TCA_HTB_PARMS => opt = HtbOpt::parse(value),
            TCA_HTB_RATE64 => rate64 = as_u64(),
            TCA_HTB_CEIL64 => ceil64 = as_u64(),
            _ => {}
        }
    }
    let opt = opt?;
    let bytes = |spec: RateSpec, wide: Option<u64>| {
        Rate::from_bits_per_second(wide.unwrap_or(u64::from(spec.rate)).saturating_mul(8))
    };
    Some(HtbClassParams {
        opt,
        rate: bytes(opt.rate, rate64),
        ceil: bytes(opt.ceil, ceil64),
    })
}

/// An HTB class's parameters as a dump of the class gives them.
pub(crate) trait HtbClassInfo {
    /// The class's HTB parameters; `None` for classes of other kinds.
    fn htb(&self) -> Option<HtbClassParams>;

    /// The class's guaranteed rate, for HTB classes.
    fn rate(&self) -> Option<Rate> {
        self.htb().map(|h| h.rate)
    }
}

impl HtbClassInfo for ClassInfo {
    fn htb(&self) -> Option<HtbClassParams> {
        parse_class_options(&self.options)
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::Emitable;

    use super::*;
    use crate::backend::htb::mbit;

    /// The value of a dumped `TCA_OPTIONS` holding `options`.
    fn nested(options: &[TcOption]) -> Vec<u8> {
        let mut nested = vec![0; options.buffer_len()];
        options.emit(&mut nested);
        nested
    }

    /// `tc qdisc add dev D root handle 7173: htb r2q 10 default fffe` sends
    /// exactly this TCA_HTB_INIT (iproute2 q_htb.c: version 3, rate2quantum,
    /// defcls, debug 0, direct_pkts 0).
    #[test]
    fn glob_bytes_match_tc() {
        let bytes = HtbGlob::new(10, 0xfffe).to_bytes();
        let expected: Vec<u8> = [3u32, 10, 0xfffe, 0, 0]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), HtbGlob::LEN);
    }

    /// `tc class add dev D parent 7173:1 classid 7173:2 htb rate 2mbit ceil
    /// 2mbit burst 6000 cburst 6000 prio 0 quantum 1500`: tc fills each
    /// ratespec with cell_log 3 (MTU 2047), linklayer 1, cell_align -1 and the
    /// rate in bytes/s; buffer is tc_calc_xmittime(rate, burst): 6000 bytes at
    /// 250000 B/s = 24 ms = 375000 ticks of 64 ns.
    #[test]
    fn class_opt_bytes_match_tc() {
        let spec = HtbClassSpec {
            rate: mbit(2),
            ceil: mbit(2),
            burst: 6000,
            cburst: 6000,
            prio: 0,
            quantum: 1500,
        };
        let bytes = spec.opt().to_bytes();
        #[rustfmt::skip]
        let ratespec: [u8; 12] = [
            3, 1,                   // cell_log, linklayer
            0, 0,                   // overhead
            0xff, 0xff,             // cell_align -1
            0, 0,                   // mpu
            0x90, 0xd0, 0x03, 0x00, // 250000 bytes/s
        ];
        let mut expected = Vec::new();
        expected.extend_from_slice(&ratespec);
        expected.extend_from_slice(&ratespec);
        for v in [375_000u32, 375_000, 1500, 0, 0] {
            expected.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(bytes, expected);
        assert_eq!(bytes.len(), HtbOpt::LEN);
        assert_eq!(HtbOpt::parse(&bytes), Some(spec.opt()));
        // Only PARMS below 4 GB/s.
        assert_eq!(spec.options().len(), 1);
    }

    #[test]
    fn rates_beyond_32_bits_use_the_64_bit_attributes() {
        let fast = Rate::from_bits_per_second(40_000_000_000);
        let spec = HtbClassSpec {
            rate: mbit(2),
            ceil: fast,
            burst: 1500,
            cburst: 1500,
            prio: 1,
            quantum: 0,
        };
        assert_eq!(spec.opt().ceil.rate, u32::MAX);
        let options = spec.options();
        assert_eq!(options.len(), 2);
        let parsed = parse_class_options(&nested(&options)).expect("parses");
        assert_eq!(parsed.ceil, fast);
        assert_eq!(parsed.rate, mbit(2));
    }

    #[test]
    fn default_class_is_read_from_the_qdisc_options() {
        let nested = nested(&HtbGlob::new(10, 0xfffe).options());
        assert_eq!(default_class(&nested), Some(0xfffe));
        assert_eq!(default_class(&[]), None);
    }

    #[test]
    fn ticks_are_64_ns() {
        // 1500 bytes at 10 Mbit/s take 1.2 ms = 18750 ticks.
        assert_eq!(transmit_ticks(mbit(10), 1500), 18_750);
        assert_eq!(
            transmit_ticks(Rate::from_bits_per_second(8), u32::MAX),
            u32::MAX
        );
    }
}
