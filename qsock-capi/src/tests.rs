//! The C ABI without C: conversions, and the check that `include/qsock.h`
//! matches the Rust side.

// A test that unwraps fails with the error, which is what it should do.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_void};
use std::mem::{align_of, size_of};
use std::path::Path;

use qsock::StreamKind;
use qsock_testbed::{assert_compiles, scratch_dir, strict_cc};

use super::*;

/// `_Static_assert`s of one struct's size, alignment and field offsets and
/// sizes, as Rust lays them out.
fn struct_asserts<T>(name: &str, fields: &[(&str, usize, usize)]) -> Vec<String> {
    let mut lines = vec![
        format!(
            "_Static_assert(sizeof(struct {name}) == {}, \"sizeof(struct {name})\");",
            size_of::<T>()
        ),
        format!(
            "_Static_assert(_Alignof(struct {name}) == {}, \"_Alignof(struct {name})\");",
            align_of::<T>()
        ),
    ];
    for (field, offset, size) in fields {
        lines.push(format!(
            "_Static_assert(offsetof(struct {name}, {field}) == {offset}, \"offset of {name}.{field}\");"
        ));
        lines.push(format!(
            "_Static_assert(sizeof(((struct {name} *)0)->{field}) == {size}, \"size of {name}.{field}\");"
        ));
    }
    lines
}

/// `_Static_assert`s of every struct's layout and every constant.
fn layout_asserts() -> Vec<String> {
    let mut lines = Vec::new();
    macro_rules! layout {
        ($($ty:ident),*) => {
            $(lines.extend(struct_asserts::<$ty>(stringify!($ty), $ty::FIELDS));)*
        };
    }
    layout!(
        qos_params,
        q_dwcs_attr,
        qsock_init_attr,
        packet_flags,
        qinfo
    );
    for (name, value) in [
        ("IFNAMSIZ", IFNAMSIZ as u32),
        ("DWCS_NON_DROPPABLE", DWCS_NON_DROPPABLE),
        ("DWCS_DROPPABLE", DWCS_DROPPABLE),
        ("DWCS_WORK_CONSERVING", DWCS_WORK_CONSERVING),
        ("DWCS_APERIODIC", DWCS_APERIODIC),
        ("DWCS_BEST_EFFORT", DWCS_BEST_EFFORT),
    ] {
        lines.push(format!(
            "_Static_assert({name} == {value}, \"{name} is {value} in Rust\");"
        ));
    }
    lines
}

/// Each exported function's Rust type, checked here by the compiler, and the
/// C type it must have in the header, checked by the C compiler.
fn prototype_asserts() -> (Vec<String>, BTreeSet<&'static str>) {
    use crate::sys as exported;
    let mut lines = Vec::new();
    let mut names = BTreeSet::new();
    macro_rules! prototypes {
        ($($name:ident : $rust:ty => $c:expr;)*) => {$(
            let _: $rust = exported::$name;
            names.insert(stringify!($name));
            lines.push(format!(
                "_Static_assert(__builtin_types_compatible_p(__typeof__(&{0}), {1}), \"{0} has type {1}\");",
                stringify!($name), $c
            ));
        )*};
    }
    prototypes! {
        qsockinit: unsafe extern "C" fn(*mut qos_params) -> c_int
            => "int (*)(struct qos_params *)";
        qsocket: unsafe extern "C" fn(c_int, c_int, c_int, *mut qos_params) -> c_int
            => "int (*)(int, int, int, struct qos_params *)";
        qattach: unsafe extern "C" fn(c_int, *mut qos_params) -> c_int
            => "int (*)(int, struct qos_params *)";
        qchange: unsafe extern "C" fn(c_int, *mut qos_params) -> c_int
            => "int (*)(int, struct qos_params *)";
        qsend: unsafe extern "C" fn(c_int, *const c_void, usize, c_int, *const packet_flags) -> isize
            => "ssize_t (*)(int, const void *, size_t, int, const struct packet_flags *)";
        qsendto: unsafe extern "C" fn(
            c_int, *const c_void, usize, c_int, *const libc::sockaddr, libc::socklen_t,
            *const packet_flags,
        ) -> isize
            => "ssize_t (*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t, const struct packet_flags *)";
        qsendframe: unsafe extern "C" fn(
            c_int, *const libc::iovec, usize, c_int, *const libc::sockaddr, libc::socklen_t,
            *const packet_flags,
        ) -> isize
            => "ssize_t (*)(int, const struct iovec *, size_t, int, const struct sockaddr *, socklen_t, const struct packet_flags *)";
        qinfo: unsafe extern "C" fn(c_int, *mut qinfo) -> c_int
            => "int (*)(int, struct qinfo *)";
        qclose: unsafe extern "C" fn(c_int) -> c_int => "int (*)(int)";
        qsock_last_error: extern "C" fn() -> *const c_char => "const char *(*)(void)";
    }
    (lines, names)
}

/// The functions the header declares: identifiers before `(` on lines that
/// start a declaration at column 0.
fn declared_functions(header: &str) -> BTreeSet<String> {
    header
        .lines()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_alphabetic()))
        .filter(|line| !line.starts_with("struct ") && !line.starts_with("extern"))
        .filter_map(|line| {
            let before = &line[..line.find('(')?];
            let name = before.rsplit([' ', '*']).next()?;
            Some(name.to_owned())
        })
        .collect()
}

#[test]
fn header_matches_rust() {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let header = std::fs::read_to_string(include.join("qsock.h")).expect("read qsock.h");
    let (prototypes, names) = prototype_asserts();
    let declared = declared_functions(&header);
    let exported: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(
        declared, exported,
        "qsock.h declares other functions than sys::capi exports"
    );

    let mut source = String::from("#include <stddef.h>\n#include \"qsock.h\"\n");
    for line in layout_asserts().into_iter().chain(prototypes) {
        source.push_str(&line);
        source.push('\n');
    }
    let dir = scratch_dir("header");
    let check = dir.join("check.c");
    std::fs::write(&check, &source).expect("write check.c");
    // Strict C11 as well as the GNU dialect: applications use either.
    for standard in ["c11", "gnu11"] {
        assert_compiles(
            strict_cc(standard, &include)
                .arg("-fsyntax-only")
                .arg(&check),
            &format!("qsock.h does not match the Rust side (-std={standard})"),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn c_name_field(name: &str) -> [c_char; IFNAMSIZ] {
    let mut field = [0 as c_char; IFNAMSIZ];
    for (slot, byte) in field.iter_mut().zip(name.bytes()) {
        *slot = byte as c_char;
    }
    field
}

fn params(dev: &str, name: &str) -> qos_params {
    qos_params {
        dev: c_name_field(dev),
        name: c_name_field(name),
        attributes: std::ptr::null_mut(),
    }
}

fn attr(oln: u32, old: u32, ipg: u32, stream_flags: u32) -> q_dwcs_attr {
    q_dwcs_attr {
        oln,
        old,
        ipg,
        stream_flags,
    }
}

#[test]
fn stream_attributes_convert() {
    let periodic = stream_params(&attr(0, 10, 10, DWCS_NON_DROPPABLE)).unwrap();
    assert_eq!(periodic.kind, StreamKind::Periodic);
    assert_eq!(periodic.ipg, Duration::from_micros(10));
    assert_eq!(periodic.window, WindowConstraint::new(0, 10));
    assert!(!periodic.droppable);
    assert!(!periodic.work_conserving);

    let lossy = stream_params(&attr(2, 10, 40_000, DWCS_WORK_CONSERVING)).unwrap();
    assert!(lossy.droppable && lossy.work_conserving);

    let aperiodic = stream_params(&attr(0, 0, 0, DWCS_APERIODIC)).unwrap();
    assert_eq!(aperiodic.kind, StreamKind::Aperiodic);
    let ignored_ipg = stream_params(&attr(0, 0, 123, DWCS_APERIODIC)).unwrap();
    assert_eq!(ignored_ipg.ipg, Duration::ZERO);
    let best_effort = stream_params(&attr(0, 0, 0, DWCS_BEST_EFFORT)).unwrap();
    assert_eq!(best_effort.kind, StreamKind::BestEffort);
}

#[test]
fn stream_attributes_refused() {
    for (bad, needle) in [
        (attr(3, 2, 10, 0), "must not exceed"),
        (attr(1, 0, 10, 0), "old (the window length) is 0"),
        (attr(0, 10, 0, 0), "ipg is 0"),
        (attr(0, 10, 10, 32), "unknown bits 0x20"),
        (attr(0, 10, 10, 1 << 31), "unknown bits"),
        (
            attr(0, 10, 10, DWCS_DROPPABLE | DWCS_NON_DROPPABLE),
            "choose one",
        ),
        (
            attr(0, 10, 10, DWCS_APERIODIC | DWCS_BEST_EFFORT),
            "choose one",
        ),
    ] {
        let err = stream_params(&bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert_eq!(err.errno(), libc::EINVAL);
        assert!(err.message().contains(needle), "{bad:?}: {err}");
    }
}

#[test]
fn names_must_be_terminated() {
    let attributes = attr(0, 10, 10, 0);
    let mut unterminated = params("lo", "user");
    unterminated.dev = [b'x' as c_char; IFNAMSIZ];
    let err = qos(&unterminated, Some(&attributes)).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(
        err.message()
            .contains("qos_params.dev is not NUL-terminated"),
        "{err}"
    );

    let mut unterminated = params("lo", "user");
    unterminated.name = [b'y' as c_char; IFNAMSIZ];
    let err = init_params(&unterminated, None).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(err.message().contains("qos_params.name"), "{err}");

    // Fifteen characters and the NUL fill IFNAMSIZ exactly: accepted.
    let longest = params("abcdefghijklmno", "user");
    assert_eq!(
        qos(&longest, Some(&attributes)).unwrap().device,
        "abcdefghijklmno"
    );
}

#[test]
fn params_refused_with_their_errno() {
    let attributes = attr(0, 10, 10, 0);
    let err = qos(&params("lo", "cbq"), Some(&attributes)).unwrap_err();
    assert_eq!(err.errno(), libc::EOPNOTSUPP);
    assert!(err.message().contains("dwcs, htb, user or auto"), "{err}");
    let err = qos(&params("lo", "user"), None).unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
    assert!(err.message().contains("attributes is NULL"), "{err}");
    let err = qos(&params("", "user"), Some(&attributes)).unwrap_err();
    assert_eq!(err.errno(), libc::ENODEV);
    let err = qos(&params("a/b", "user"), Some(&attributes)).unwrap_err();
    assert_eq!(err.errno(), libc::ENODEV);
}

#[test]
fn init_attributes() {
    let attributes = |rate, best_effort_kbit| qsock_init_attr {
        rate,
        limit: 0,
        best_effort_kbit,
    };
    let init = init_params(&params("lo", "user"), Some(&attributes(10_000_000, 0))).unwrap();
    assert_eq!(init.link_rate, Some(Rate::from_bits_per_second(10_000_000)));
    assert_eq!((init.limit, init.best_effort_rate), (None, None));
    let defaults = init_params(&params("lo", "auto"), None).unwrap();
    assert_eq!((defaults.link_rate, defaults.limit), (None, None));
    let capped = init_params(&params("lo", "htb"), Some(&attributes(0, 2_000))).unwrap();
    assert_eq!(
        capped.best_effort_rate,
        Some(Rate::from_bits_per_second(2_000_000))
    );
    let widest = init_params(&params("lo", "htb"), Some(&attributes(0, u32::MAX))).unwrap();
    assert_eq!(
        widest.best_effort_rate,
        Some(Rate::from_bits_per_second(u64::from(u32::MAX) * 1000))
    );
}

#[test]
fn packet_flag_values() {
    assert_eq!(flags(None).unwrap(), PacketFlags::new());
    let f = flags(Some(&packet_flags {
        drop_flag: DWCS_NON_DROPPABLE,
        deadline: 42,
    }))
    .unwrap();
    assert_eq!(f.drop, DropFlag::NonDroppable);
    assert_eq!(f.deadline, Some(Deadline::from_monotonic_nanos(42)));
    let f = flags(Some(&packet_flags {
        drop_flag: 0,
        deadline: 0,
    }))
    .unwrap();
    assert_eq!(f, PacketFlags::new());
    let err = flags(Some(&packet_flags {
        drop_flag: 3,
        deadline: 0,
    }))
    .unwrap_err();
    assert_eq!(err.errno(), libc::EINVAL);
}

#[test]
fn errors_reach_errno_and_the_message() {
    let result: c_int = call("qtest", -1, || Err(Error::invalid("it was wrong")));
    assert_eq!(result, -1);
    assert_eq!(nix::errno::Errno::last_raw(), libc::EINVAL);
    // SAFETY: last_error returns a NUL-terminated string owned by this thread.
    let text = unsafe { std::ffi::CStr::from_ptr(last_error()) };
    assert_eq!(text.to_str().unwrap(), "qtest: it was wrong");
}

#[test]
fn panics_become_eio() {
    let result: c_int = call("qtest", -1, || panic!("boom"));
    assert_eq!(result, -1);
    assert_eq!(nix::errno::Errno::last_raw(), libc::EIO);
    // SAFETY: as above.
    let text = unsafe { std::ffi::CStr::from_ptr(last_error()) };
    assert!(text.to_str().unwrap().contains("boom"));
}

#[test]
fn unknown_descriptors_are_ebadf() {
    let err = qinfo_of(-1).unwrap_err();
    assert_eq!(err.errno(), libc::EBADF);
    let err = qclose(-1).unwrap_err();
    assert_eq!(err.errno(), libc::EBADF);
}
