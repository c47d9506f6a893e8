//! Which scheduler backends an experiment runs, and where each can run.

use std::path::Path;

use qsock::SchedulerName;

/// Parses one `--schedulers` item; `auto` is refused, since every figure
/// names the backend it measured.
pub fn parse(text: &str) -> Result<SchedulerName, String> {
    let name: SchedulerName = text.parse().map_err(|err: qsock::Error| err.to_string())?;
    if name == SchedulerName::Auto {
        return Err("name the scheduler (dwcs, htb or user), not auto: each result is labelled with the backend that produced it".into());
    }
    Ok(name)
}

/// What runs here when no list was given: `user` always, `htb` as root
/// (it needs CAP_NET_ADMIN, and the test bed needs root anyway), `dwcs`
/// when the sch_dwcs module is loaded (only in the kernel-test VMs).
pub fn available() -> Vec<SchedulerName> {
    let mut names = vec![SchedulerName::User];
    if nix::unistd::geteuid().is_root() {
        names.push(SchedulerName::Htb);
        if Path::new("/sys/module/sch_dwcs").exists() {
            names.push(SchedulerName::Dwcs);
        }
    }
    names
}

/// The list given, or what runs here.
pub fn chosen(given: &[SchedulerName]) -> Vec<SchedulerName> {
    if given.is_empty() {
        available()
    } else {
        given.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_auto_is_refused() {
        assert_eq!(parse("htb"), Ok(SchedulerName::Htb));
        assert_eq!(parse("dwcs"), Ok(SchedulerName::Dwcs));
        let err = parse("auto").unwrap_err();
        assert!(err.contains("name the scheduler"), "{err}");
        assert!(parse("cbq").is_err());
    }
}
