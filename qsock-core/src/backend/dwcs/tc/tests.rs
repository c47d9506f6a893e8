//! The Rust mirror of sch_dwcs.h against the header itself, and the bytes of
//! the options and per-packet values.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use netlink_packet_core::{Emitable, NlaBuffer};

use super::*;
use crate::flags::Deadline;
use crate::sch_dwcs::*;
use qsock_testbed::{assert_compiles, scratch_dir, strict_cc};

/// Every constant of the header, with its Rust value.
fn constants() -> Vec<(&'static str, u64)> {
    macro_rules! list {
        ($($name:ident),* $(,)?) => { vec![$((stringify!($name), u64::from($name))),*] };
    }
    list![
        TCA_DWCS_UNSPEC,
        TCA_DWCS_RATE,
        TCA_DWCS_LIMIT,
        TCA_DWCS_RESOLUTION,
        TCA_DWCS_PAD,
        TCA_DWCS_MAX,
        TC_DWCS_CLASS_F_DROPPABLE,
        TC_DWCS_CLASS_F_WORK_CONSERVING,
        TC_DWCS_CLASS_F_APERIODIC,
        TC_DWCS_CLASS_F_MASK,
        TCA_DWCS_CLASS_UNSPEC,
        TCA_DWCS_CLASS_PERIOD,
        TCA_DWCS_CLASS_OLN,
        TCA_DWCS_CLASS_OLD,
        TCA_DWCS_CLASS_FLAGS,
        TCA_DWCS_CLASS_PAD,
        TCA_DWCS_CLASS_MAX,
        TC_DWCS_DROP_DEFAULT,
        TC_DWCS_DROP_NO,
        TC_DWCS_DROP_YES,
        TC_DWCS_TXTIME_FRAME_START,
        TC_DWCS_TXTIME_DROP_SHIFT,
        TC_DWCS_TXTIME_DROP_MASK,
        TC_DWCS_TXTIME_FLAGS_MASK,
        TC_DWCS_TXTIME_NO_DEADLINE,
    ]
}

/// The structs: C name, size, fields.
fn structs() -> Vec<(&'static str, usize, Vec<FieldLayout>)> {
    vec![
        (
            TcDwcsXstats::C_NAME,
            std::mem::size_of::<TcDwcsXstats>(),
            TcDwcsXstats::layout(TcDwcsXstats::C_NAME, 0),
        ),
        (
            TcDwcsQdiscXstats::C_NAME,
            std::mem::size_of::<TcDwcsQdiscXstats>(),
            TcDwcsQdiscXstats::layout(TcDwcsQdiscXstats::C_NAME, 0),
        ),
    ]
}

/// A C program printing, one per line, each constant, each struct's size and
/// each field's offset and size, and the same lines as Rust sees them.
fn program_and_expected() -> (String, String) {
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include \"uapi/linux/sch_dwcs.h\"\nint main(void)\n{\n",
    );
    let mut expected = String::new();
    for (name, value) in constants() {
        c += &format!("\tprintf(\"{name} = %llu\\n\", (unsigned long long)({name}));\n");
        expected += &format!("{name} = {value}\n");
    }
    for (name, size, fields) in structs() {
        c += &format!("\tprintf(\"sizeof(struct {name}) = %zu\\n\", sizeof(struct {name}));\n");
        expected += &format!("sizeof(struct {name}) = {size}\n");
        for (field, offset, size) in fields {
            c += &format!(
                "\tprintf(\"{name}.{field} at %zu size %zu\\n\", offsetof(struct {name}, {field}), \
                 sizeof(((struct {name} *)0)->{field}));\n"
            );
            expected += &format!("{name}.{field} at {offset} size {size}\n");
        }
    }
    c += "\treturn 0;\n}\n";
    (c, expected)
}

fn include_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kmod-dwcs/include")
}

#[test]
fn uapi_matches_the_c_header() {
    let (program, expected) = program_and_expected();
    let dir = scratch_dir("dwcs-uapi");
    let source = dir.join("uapi.c");
    let binary = dir.join("uapi");
    std::fs::write(&source, program).unwrap();
    assert_compiles(
        strict_cc("gnu11", &include_dir())
            .arg("-o")
            .arg(&binary)
            .arg(&source),
        "sch_dwcs.h does not compile with the names Rust mirrors",
    );
    let run = std::process::Command::new(&binary).output().unwrap();
    assert!(run.status.success());
    let printed = String::from_utf8(run.stdout).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        printed, expected,
        "sch_dwcs.h (left) and Rust (right) differ"
    );
}

#[test]
fn every_name_of_the_header_is_mirrored() {
    let header = std::fs::read_to_string(include_dir().join("uapi/linux/sch_dwcs.h")).unwrap();
    let in_header: BTreeSet<&str> = header
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| token.starts_with("TCA_DWCS_") || token.starts_with("TC_DWCS_"))
        // Prefixes in comments (`TCA_DWCS_*`) name no constant.
        .filter(|token| !token.ends_with('_'))
        .collect();
    let in_rust: BTreeSet<&str> = constants().into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        in_header, in_rust,
        "the header (left) names constants that Rust (right) does not mirror, or the reverse"
    );
    for (name, _, _) in structs() {
        assert!(header.contains(&format!("struct {name} {{")), "{name}");
    }
}

/// The bytes of an attribute, header included, as they go on the wire.
fn wire(attribute: &TcAttribute) -> Vec<u8> {
    let mut out = vec![0; attribute.buffer_len()];
    attribute.emit(&mut out);
    out
}

fn nested_value(bytes: &[u8]) -> Vec<u8> {
    NlaBuffer::new(bytes).value().to_vec()
}

#[test]
fn qdisc_options_golden_bytes() {
    // tc qdisc replace dev DEV root handle 7173: dwcs rate 10mbit limit 1000 resolution 1ms
    let options = DwcsQdiscOptions {
        rate: Some(1_250_000),
        limit: Some(1000),
        resolution_ns: Some(1_000_000),
    };
    #[rustfmt::skip]
    let golden: Vec<u8> = [
        &[36, 0, 0x02, 0x80][..],                      // TCA_OPTIONS | NLA_F_NESTED, 36 bytes
        &[12, 0, 1, 0], &1_250_000u64.to_ne_bytes(),   // TCA_DWCS_RATE
        &[8, 0, 2, 0], &1000u32.to_ne_bytes(),         // TCA_DWCS_LIMIT
        &[12, 0, 3, 0], &1_000_000u64.to_ne_bytes(),   // TCA_DWCS_RESOLUTION
    ]
    .concat();
    let bytes = wire(&options.attribute());
    assert_eq!(bytes, golden);
    assert_eq!(DwcsQdiscOptions::parse(&nested_value(&bytes)), options);

    // A change that names only the rate sends only the rate.
    let rate_only = DwcsQdiscOptions {
        rate: Some(2_500_000),
        ..DwcsQdiscOptions::default()
    };
    let golden: Vec<u8> = [
        &[16, 0, 0x02, 0x80][..],
        &[12, 0, 1, 0],
        &2_500_000u64.to_ne_bytes(),
    ]
    .concat();
    assert_eq!(wire(&rate_only.attribute()), golden);
}

#[test]
fn class_options_golden_bytes() {
    // tc class add ... dwcs period 40ms oln 1 old 4 flags droppable
    let options = DwcsClassOptions {
        period_ns: Some(40_000_000),
        oln: Some(1),
        old: Some(4),
        flags: Some(TC_DWCS_CLASS_F_DROPPABLE),
    };
    #[rustfmt::skip]
    let golden: Vec<u8> = [
        &[40, 0, 0x02, 0x80][..],
        &[12, 0, 1, 0], &40_000_000u64.to_ne_bytes(),  // TCA_DWCS_CLASS_PERIOD
        &[8, 0, 2, 0], &1u32.to_ne_bytes(),            // TCA_DWCS_CLASS_OLN
        &[8, 0, 3, 0], &4u32.to_ne_bytes(),            // TCA_DWCS_CLASS_OLD
        &[8, 0, 4, 0], &1u32.to_ne_bytes(),            // TCA_DWCS_CLASS_FLAGS
    ]
    .concat();
    let bytes = wire(&options.attribute());
    assert_eq!(bytes, golden);
    assert_eq!(DwcsClassOptions::parse(&nested_value(&bytes)), options);
}

#[test]
fn dumps_with_padding_and_unknown_attributes_parse() {
    // The kernel dumps u64s with nla_put_u64_64bit, which may put a PAD
    // attribute before them; a newer module may add attributes.
    #[rustfmt::skip]
    let nested: Vec<u8> = [
        &[4, 0, 4, 0][..],                              // TCA_DWCS_PAD
        &[12, 0, 1, 0], &125_000u64.to_ne_bytes(),
        &[8, 0, 99, 0], &7u32.to_ne_bytes(),            // unknown
        &[8, 0, 2, 0], &5u32.to_ne_bytes(),
    ]
    .concat();
    assert_eq!(
        DwcsQdiscOptions::parse(&nested),
        DwcsQdiscOptions {
            rate: Some(125_000),
            limit: Some(5),
            resolution_ns: None
        }
    );
}

#[test]
fn xstats_parse_at_the_header_offsets() {
    let stats = TcDwcsXstats {
        counters: DwcsCounters {
            sent_packets: 1,
            sent_bytes: 2,
            drops_late: 3,
            drops_window: 4,
            drops_frame: 5,
            drops_queue_full: 6,
            refused: 7,
            deadline_misses: 8,
            window_violations: 9,
        },
        queue_delay_sum_ns: 10,
        queue_delay_max_ns: 11,
        backlog_packets: 12,
        backlog_bytes: 13,
        x: 14,
        y: 15,
        oln: 16,
        old: 17,
    };
    let bytes = stats.to_bytes();
    assert_eq!(bytes.len(), 13 * 8 + 4 * 4);
    // `x` follows the thirteen u64s.
    assert_eq!(&bytes[104..108], &14u32.to_ne_bytes());
    assert_eq!(TcDwcsXstats::parse(&bytes), Some(stats));
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xff; 8]);
    assert_eq!(TcDwcsXstats::parse(&longer), Some(stats));
    assert_eq!(TcDwcsXstats::parse(&bytes[..bytes.len() - 1]), None);

    let qdisc = TcDwcsQdiscXstats {
        classes: 2,
        be_backlog_packets: 9,
        ..TcDwcsQdiscXstats::default()
    };
    let bytes = qdisc.to_bytes();
    assert_eq!(bytes.len(), 8 + 14 * 8);
    assert_eq!(TcDwcsQdiscXstats::parse(&bytes), Some(qdisc));
}

#[test]
fn txtime_values() {
    let none = PacketFlags::new();
    assert_eq!(txtime_value(&none, false), 0, "nothing to say: no cmsg");
    assert_eq!(txtime_value(&none, true), TC_DWCS_TXTIME_FRAME_START);
    assert_eq!(txtime_value(&none.non_droppable(), false), 0b010);
    assert_eq!(txtime_value(&none.droppable(), true), 0b101);
    // Flags only: below TC_DWCS_TXTIME_NO_DEADLINE.
    assert!(txtime_value(&none.droppable(), true) < TC_DWCS_TXTIME_NO_DEADLINE);

    let deadline = Deadline::from_monotonic_nanos(1_000_000_007);
    let flags = none.with_deadline(deadline);
    // The low three bits of the deadline give way to the flags.
    assert_eq!(txtime_value(&flags, false), 1_000_000_000);
    assert_eq!(
        txtime_value(&flags.non_droppable(), true),
        1_000_000_000 | 0b011
    );
    assert_eq!(
        txtime_value(&flags.droppable(), false),
        1_000_000_000 | 0b100
    );
    // A deadline in the clock's first 8 ns is still a deadline.
    let early = none.with_deadline(Deadline::from_monotonic_nanos(3));
    assert_eq!(txtime_value(&early, false), TC_DWCS_TXTIME_NO_DEADLINE);
}
