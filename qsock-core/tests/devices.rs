//! What qsock reads of a network device: the MTU the kernel backends size a
//! stream's class for, read in the calling thread's namespace.

mod support;

use qsock::{device_mtu, ErrorKind};
use support::privileged_bed;

#[test]
fn the_mtu_is_the_devices_own_in_the_callers_namespace() {
    let Some(bed) = privileged_bed("the device tests") else {
        return;
    };
    bed.set_sender_mtu(9000)
        .expect("a 9000-byte MTU on the sender's veth");
    let (sender, loopback) = bed
        .run_in_sender(|| (device_mtu(bed.sender_dev()), device_mtu("lo")))
        .expect("enter the sender's namespace");
    assert_eq!(sender.expect("the sender's veth"), 9000);
    assert_eq!(loopback.expect("the namespace's loopback"), 65536);
    // This thread is still in its own namespace, where the veth is not.
    let outside = device_mtu(bed.sender_dev()).expect_err("no such device here");
    assert_eq!(outside.kind(), ErrorKind::NoDevice, "{outside}");
}

#[test]
fn a_bad_device_name_is_refused_with_the_reason() {
    let err = device_mtu("no/such device").expect_err("not a device name");
    assert_eq!(err.kind(), ErrorKind::NoDevice, "{err}");
    assert!(
        err.to_string().contains("not a valid interface name"),
        "{err}"
    );
}
