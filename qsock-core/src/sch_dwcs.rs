//! The numbers of sch_dwcs's uapi header,
//! `kmod-dwcs/include/uapi/linux/sch_dwcs.h`: netlink attribute numbers,
//! class flags, and the drop flag and frame start of the per-packet
//! `SCM_TXTIME` value. Every number of the header is here, also those qsock
//! does not send itself (PAD, MAX, masks), and the dwcs backend's tests
//! compile the header and fail when a value differs.

/// `TCA_DWCS_UNSPEC`.
pub const TCA_DWCS_UNSPEC: u16 = 0;
/// `TCA_DWCS_RATE`: u64, link rate in bytes/s; 0 = none.
pub const TCA_DWCS_RATE: u16 = 1;
/// `TCA_DWCS_LIMIT`: u32, packets queued at most (all classes).
pub const TCA_DWCS_LIMIT: u16 = 2;
/// `TCA_DWCS_RESOLUTION`: u64, ns; rule 1 compares deadline slots.
pub const TCA_DWCS_RESOLUTION: u16 = 3;
/// `TCA_DWCS_PAD`: alignment padding of the kernel's 64-bit attributes.
pub const TCA_DWCS_PAD: u16 = 4;
/// `TCA_DWCS_MAX`.
pub const TCA_DWCS_MAX: u16 = 4;

/// `TCA_DWCS_CLASS_UNSPEC`.
pub const TCA_DWCS_CLASS_UNSPEC: u16 = 0;
/// `TCA_DWCS_CLASS_PERIOD`: u64, request period T (ipg) in ns.
pub const TCA_DWCS_CLASS_PERIOD: u16 = 1;
/// `TCA_DWCS_CLASS_OLN`: u32, misses allowed per window.
pub const TCA_DWCS_CLASS_OLN: u16 = 2;
/// `TCA_DWCS_CLASS_OLD`: u32, window length in packets.
pub const TCA_DWCS_CLASS_OLD: u16 = 3;
/// `TCA_DWCS_CLASS_FLAGS`: u32, `TC_DWCS_CLASS_F_*`.
pub const TCA_DWCS_CLASS_FLAGS: u16 = 4;
/// `TCA_DWCS_CLASS_PAD`.
pub const TCA_DWCS_CLASS_PAD: u16 = 5;
/// `TCA_DWCS_CLASS_MAX`.
pub const TCA_DWCS_CLASS_MAX: u16 = 5;

/// Lossy class: late packets are dropped.
pub const TC_DWCS_CLASS_F_DROPPABLE: u32 = 1 << 0;
/// No pacing to one packet per period.
pub const TC_DWCS_CLASS_F_WORK_CONSERVING: u32 = 1 << 1;
/// No period: EDF on the packets' own deadlines.
pub const TC_DWCS_CLASS_F_APERIODIC: u32 = 1 << 2;
/// Every class flag the header defines.
pub const TC_DWCS_CLASS_F_MASK: u32 =
    TC_DWCS_CLASS_F_DROPPABLE | TC_DWCS_CLASS_F_WORK_CONSERVING | TC_DWCS_CLASS_F_APERIODIC;

/// `enum tc_dwcs_drop`: the class's flag decides.
pub const TC_DWCS_DROP_DEFAULT: u64 = 0;
/// `enum tc_dwcs_drop`: never dropped (sent late, or refused when full).
pub const TC_DWCS_DROP_NO: u64 = 1;
/// `enum tc_dwcs_drop`: droppable even in a lossless class.
pub const TC_DWCS_DROP_YES: u64 = 2;

/// The packet starts a frame.
pub const TC_DWCS_TXTIME_FRAME_START: u64 = 0x1;
/// Where the drop flag sits in the txtime value.
pub const TC_DWCS_TXTIME_DROP_SHIFT: u32 = 1;
/// The drop flag's bits.
pub const TC_DWCS_TXTIME_DROP_MASK: u64 = 0x6;
/// The bits that carry flags instead of the deadline.
pub const TC_DWCS_TXTIME_FLAGS_MASK: u64 = 0x7;
/// Values below this carry flags only, no deadline.
pub const TC_DWCS_TXTIME_NO_DEADLINE: u64 = 0x8;
