//! sch_dwcs's wire side, after `kmod-dwcs/include/uapi/linux/sch_dwcs.h`
//! (its numbers are `crate::sch_dwcs`): the qdisc and class options as nested
//! attributes, the xstats structs, and the per-packet value carried in the
//! `SCM_TXTIME` cmsg. `tests::uapi_matches_the_c_header` compiles the header
//! and fails when the two disagree.

use netlink_packet_core::{DefaultNla, Emitable, NlasIterator, NLA_F_NESTED};
use netlink_packet_route::tc::TcAttribute;

use crate::flags::{DropFlag, PacketFlags};
use crate::sch_dwcs::{
    TCA_DWCS_CLASS_FLAGS, TCA_DWCS_CLASS_OLD, TCA_DWCS_CLASS_OLN, TCA_DWCS_CLASS_PERIOD,
    TCA_DWCS_LIMIT, TCA_DWCS_RATE, TCA_DWCS_RESOLUTION, TC_DWCS_DROP_DEFAULT, TC_DWCS_DROP_NO,
    TC_DWCS_DROP_YES, TC_DWCS_TXTIME_DROP_MASK, TC_DWCS_TXTIME_DROP_SHIFT,
    TC_DWCS_TXTIME_FLAGS_MASK, TC_DWCS_TXTIME_FRAME_START, TC_DWCS_TXTIME_NO_DEADLINE,
};

/// The qdisc kind, as `tc` names it.
pub(crate) const KIND: &str = "dwcs";

/// `TCA_OPTIONS` of `struct tcmsg` (linux/rtnetlink.h).
const TCA_OPTIONS: u16 = 2;

/// The `SCM_TXTIME` value of one packet: the deadline with its low three bits
/// replaced by the drop flag and frame start. 0 (no deadline, the stream's
/// drop flag, no frame start) needs no cmsg at all.
pub(crate) fn txtime_value(flags: &PacketFlags, frame_start: bool) -> u64 {
    let drop = match flags.drop {
        DropFlag::StreamDefault => TC_DWCS_DROP_DEFAULT,
        DropFlag::NonDroppable => TC_DWCS_DROP_NO,
        DropFlag::Droppable => TC_DWCS_DROP_YES,
    };
    // A deadline in the first 8 ns of the clock would read as "no deadline":
    // it is long past anyway, so the earliest representable one says the same.
    let deadline = flags.deadline.map_or(0, |d| {
        d.as_monotonic_nanos().max(TC_DWCS_TXTIME_NO_DEADLINE) & !TC_DWCS_TXTIME_FLAGS_MASK
    });
    let start = if frame_start {
        TC_DWCS_TXTIME_FRAME_START
    } else {
        0
    };
    deadline | ((drop << TC_DWCS_TXTIME_DROP_SHIFT) & TC_DWCS_TXTIME_DROP_MASK) | start
}

/// `TCA_OPTIONS` with `NLA_F_NESTED`, which the kernel's strict
/// `nla_parse_nested` requires (iproute2 sets it for such qdiscs too).
fn nested_options(nlas: &[DefaultNla]) -> TcAttribute {
    let mut value = vec![0; nlas.buffer_len()];
    nlas.emit(&mut value);
    TcAttribute::Other(DefaultNla::new(TCA_OPTIONS | NLA_F_NESTED, value))
}

/// Declares options carried as nested attributes, one fixed-width integer
/// attribute per field, each optional: absent from a request, it keeps the
/// kernel's current value. Both the encoder and the parser come from the one
/// table of fields and attribute numbers, so the two cannot disagree.
macro_rules! nested_options {
    ($(#[$meta:meta])* $name:ident {
        $($(#[$field_meta:meta])* $field:ident: $ty:ident = $attribute:ident,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub(crate) struct $name {
            $($(#[$field_meta])* pub(crate) $field: Option<$ty>,)*
        }

        impl $name {
            fn nlas(&self) -> Vec<DefaultNla> {
                let mut out = Vec::new();
                $(if let Some(value) = self.$field {
                    out.push(DefaultNla::new($attribute, value.to_ne_bytes().to_vec()));
                })*
                out
            }

            /// The request's `TCA_OPTIONS` attribute.
            pub(crate) fn attribute(&self) -> TcAttribute {
                nested_options(&self.nlas())
            }

            /// Reads the options from the nested attributes of a dump
            /// (`TCA_OPTIONS`' value); unknown attributes are skipped, so
            /// that a newer module's additions do not break an older qsock.
            // The class options are read back by the tests only.
            #[allow(dead_code)]
            pub(crate) fn parse(nested: &[u8]) -> $name {
                let mut options = $name::default();
                for nla in NlasIterator::new(nested).map_while(|nla| nla.ok()) {
                    let value = nla.value();
                    match nla.kind() {
                        $($attribute => {
                            options.$field = value
                                .get(..std::mem::size_of::<$ty>())
                                .and_then(|bytes| bytes.try_into().ok())
                                .map($ty::from_ne_bytes);
                        })*
                        _ => {}
                    }
                }
                options
            }
        }
    };
}

nested_options! {
    /// The qdisc's options (`tc qdisc ... dwcs rate R limit L resolution N`);
    /// an absent one keeps its current value (or the module's default).
    DwcsQdiscOptions {
        /// Link rate in bytes/s; 0 = no shaping.
        rate: u64 = TCA_DWCS_RATE,
        /// Packets queued at most, over all classes.
        limit: u32 = TCA_DWCS_LIMIT,
        /// Deadline resolution in ns.
        resolution_ns: u64 = TCA_DWCS_RESOLUTION,
    }
}

nested_options! {
    /// A class's options (`tc class ... dwcs period T oln X old Y flags F`); a
    /// change keeps what it does not name.
    DwcsClassOptions {
        /// Request period in ns; absent for aperiodic classes.
        period_ns: u64 = TCA_DWCS_CLASS_PERIOD,
        /// Misses allowed per window.
        oln: u32 = TCA_DWCS_CLASS_OLN,
        /// Window length in packets.
        old: u32 = TCA_DWCS_CLASS_OLD,
        /// `TC_DWCS_CLASS_F_*`.
        flags: u32 = TCA_DWCS_CLASS_FLAGS,
    }
}

/// A struct field's name, offset and size.
#[cfg(test)]
pub(crate) type FieldLayout = (&'static str, usize, usize);

/// A field of a uapi struct: a fixed-width integer, or a group of fields that
/// C declares flat in each struct holding them (see [`DwcsCounters`]).
pub(crate) trait UapiField: Sized {
    /// Reads the value from exactly its bytes.
    fn read(bytes: &[u8]) -> Option<Self>;

    /// Writes the value into exactly its bytes.
    #[cfg(test)]
    fn write(&self, out: &mut [u8]);

    /// The C fields the value stands for at `offset`: an integer is the one
    /// field `name`, a group is its own fields.
    #[cfg(test)]
    fn layout(name: &'static str, offset: usize) -> Vec<FieldLayout>;

    /// Reads the struct from the kernel's bytes. Longer input is accepted (a
    /// newer module may append fields); shorter is not.
    fn parse(bytes: &[u8]) -> Option<Self> {
        bytes
            .get(..std::mem::size_of::<Self>())
            .and_then(Self::read)
    }

    /// The struct's bytes as the kernel would send them.
    #[cfg(test)]
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0; std::mem::size_of::<Self>()];
        self.write(&mut out);
        out
    }
}

macro_rules! uapi_integers {
    ($($ty:ident),*) => {$(
        impl UapiField for $ty {
            fn read(bytes: &[u8]) -> Option<Self> {
                Some($ty::from_ne_bytes(bytes.try_into().ok()?))
            }

            #[cfg(test)]
            fn write(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_ne_bytes());
            }

            #[cfg(test)]
            fn layout(name: &'static str, offset: usize) -> Vec<FieldLayout> {
                vec![(name, offset, std::mem::size_of::<$ty>())]
            }
        }
    )*};
}

uapi_integers!(u32, u64);

/// Declares a `#[repr(C)]` mirror of a uapi struct (or of a group of its
/// fields) whose reader, writer and field table all go by each field's
/// `offset_of!`, so the test that checks the table against C also checks the
/// reader.
macro_rules! uapi_struct {
    ($(#[$meta:meta])* $name:ident $(= $c_name:literal)? {
        $($(#[$field_meta:meta])* $field:ident: $ty:ident,)*
    }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub(crate) struct $name {
            $($(#[$field_meta])* pub(crate) $field: $ty,)*
        }

        $(
            impl $name {
                /// The C struct's name.
                #[cfg(test)]
                pub(crate) const C_NAME: &'static str = $c_name;
            }
        )?

        impl UapiField for $name {
            fn read(bytes: &[u8]) -> Option<Self> {
                if bytes.len() != std::mem::size_of::<$name>() {
                    return None;
                }
                Some($name {
                    $($field: {
                        let at = std::mem::offset_of!($name, $field);
                        $ty::read(bytes.get(at..at + std::mem::size_of::<$ty>())?)?
                    },)*
                })
            }

            #[cfg(test)]
            fn write(&self, out: &mut [u8]) {
                $({
                    let at = std::mem::offset_of!($name, $field);
                    self.$field.write(&mut out[at..at + std::mem::size_of::<$ty>()]);
                })*
            }

            #[cfg(test)]
            fn layout(_: &'static str, offset: usize) -> Vec<FieldLayout> {
                [$($ty::layout(stringify!($field), offset + std::mem::offset_of!($name, $field)),)*]
                    .concat()
            }
        }
    };
}

uapi_struct! {
    /// The counters each class keeps, which `struct tc_dwcs_xstats` carries
    /// for one class and `struct tc_dwcs_qdisc_xstats` sums over all, best
    /// effort included (sch_dwcs.c's `dwcs_add_counters`). Both structs
    /// declare them flat, in this order.
    DwcsCounters {
        /// Packets sent.
        sent_packets: u64,
        /// Bytes sent.
        sent_bytes: u64,
        /// Late, dropped with x' > 0.
        drops_late: u64,
        /// Late, dropped with x' == 0.
        drops_window: u64,
        /// The rest of a late frame.
        drops_frame: u64,
        /// Droppable, queue full.
        drops_queue_full: u64,
        /// Non-droppable, queue full: the sender got ENOBUFS.
        refused: u64,
        /// Deadlines missed.
        deadline_misses: u64,
        /// Window-constraints broken.
        window_violations: u64,
    }
}

uapi_struct! {
    /// `struct tc_dwcs_xstats`: one class's counters.
    TcDwcsXstats = "tc_dwcs_xstats" {
        /// What the class sent, dropped and missed.
        counters: DwcsCounters,
        /// Queueing delay summed over sent packets.
        queue_delay_sum_ns: u64,
        /// Largest queueing delay.
        queue_delay_max_ns: u64,
        /// Packets queued.
        backlog_packets: u64,
        /// Bytes queued.
        backlog_bytes: u64,
        /// Current x'.
        x: u32,
        /// Current y'.
        y: u32,
        /// The class's oln.
        oln: u32,
        /// The class's old.
        old: u32,
    }
}

uapi_struct! {
    /// `struct tc_dwcs_qdisc_xstats`: totals over the classes, and best effort.
    TcDwcsQdiscXstats = "tc_dwcs_qdisc_xstats" {
        /// Classes.
        classes: u32,
        /// Padding.
        pad: u32,
        /// The counters summed over the streams and best effort.
        totals: DwcsCounters,
        /// Best effort's packets sent.
        be_sent_packets: u64,
        /// Best effort's bytes sent.
        be_sent_bytes: u64,
        /// Best effort's drops, queue full.
        be_drops_queue_full: u64,
        /// Best effort's refusals.
        be_refused: u64,
        /// Best effort's packets queued.
        be_backlog_packets: u64,
    }
}

#[cfg(test)]
mod tests;
