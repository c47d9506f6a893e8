//! Scheduling for callers without CAP_NET_ADMIN through `qsockd`, the
//! service that holds the privilege: the wire protocol both sides speak
//! ([`protocol`]) and the class keeping the daemon does with the kernel
//! backends ([`classes`]).

pub mod classes;
pub(crate) mod client;
pub mod protocol;
