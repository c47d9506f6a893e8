//! What qsockd serves: the TOML file (`/etc/qsock/qsockd.toml`), or the
//! `--foreground` arguments standing in for it, read into one [`Config`]
//! with every name resolved (users to uids, groups to gids, rates parsed).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use qsock::{Rate, SchedulerName};
use serde::Deserialize;

/// The config file read when `--config` names none.
pub const DEFAULT_CONFIG: &str = "/etc/qsock/qsockd.toml";

/// The share of a link applications may reserve when the config names none:
/// the rest keeps best effort (and the host's own traffic) moving.
pub const DEFAULT_RESERVABLE: f64 = 0.8;

/// The largest share that may be given: HTB keeps a hundredth of the link
/// for best effort.
pub const MAX_RESERVABLE: f64 = 0.99;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    socket: Option<PathBuf>,
    #[serde(default, rename = "device")]
    devices: Vec<FileDevice>,
}

/// One `[[device]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDevice {
    name: String,
    scheduler: String,
    rate: String,
    resolution: Option<String>,
    reservable: Option<f64>,
    default_quota: Option<String>,
    allow_users: Option<Vec<String>>,
    allow_groups: Option<Vec<String>>,
    #[serde(default)]
    quota: BTreeMap<String, String>,
}

/// Where a setting is changed, for refusals to name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A config file.
    File(PathBuf),
    /// `--foreground` arguments.
    Arguments,
}

/// One device qsockd keeps.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The interface.
    pub name: String,
    /// Its scheduler (htb or dwcs).
    pub scheduler: SchedulerName,
    /// The link rate the scheduler is given.
    pub rate: Rate,
    /// The deadline resolution (dwcs).
    pub resolution: Option<Duration>,
    /// The share of the link applications may reserve in all.
    pub reservable: f64,
    /// What one user may reserve when `quotas` names no other figure;
    /// `None`: the whole reservable share.
    pub default_quota: Option<Rate>,
    /// Users (uids) allowed, besides those of `allow_groups`; `None` with
    /// `allow_groups` also `None`: every local user.
    pub allow_users: Option<Vec<u32>>,
    /// Groups (gids) whose members are allowed.
    pub allow_groups: Option<Vec<u32>>,
    /// Per-user quotas, by uid.
    pub quotas: HashMap<u32, Rate>,
}

/// Everything qsockd serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The socket clients connect to.
    pub socket: PathBuf,
    /// The devices.
    pub devices: Vec<DeviceConfig>,
    /// Where the settings come from.
    pub source: Source,
}

impl Config {
    /// How a refusal says to serve a device qsockd does not serve.
    pub fn how_to_serve(&self, device: &str) -> String {
        match &self.source {
            Source::File(path) => format!(
                "add a [[device]] named {device:?} to {} and restart qsockd",
                path.display()
            ),
            Source::Arguments => format!("start qsockd with --device {device}"),
        }
    }

    /// How a refusal names the setting `field` of `device`.
    pub fn setting(&self, device: &str, field: &str) -> String {
        match &self.source {
            Source::File(path) => format!(
                "`{field}` of the [[device]] named {device:?} in {}",
                path.display()
            ),
            Source::Arguments => {
                format!("qsockd's --{}", field.replace('_', "-"))
            }
        }
    }
}

/// A config that cannot be used, and why.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn parse_rate(text: &str, what: &str) -> Result<Rate, ConfigError> {
    Rate::from_str(text).map_err(|err| ConfigError(format!("{what}: {err}")))
}

fn parse_scheduler(text: &str, what: &str) -> Result<SchedulerName, ConfigError> {
    match SchedulerName::from_str(text) {
        Ok(name @ (SchedulerName::Htb | SchedulerName::Dwcs)) => Ok(name),
        _ => Err(ConfigError(format!(
            "{what}: scheduler {text:?} cannot be served: qsockd keeps the kernel schedulers, \
             htb or dwcs"
        ))),
    }
}

/// Reads a time written as `tc` writes one: a number and `ns`, `us`, `ms`
/// or `s`.
pub fn parse_time(text: &str, what: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let units = [("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)];
    let seconds = units.iter().find_map(|(unit, scale)| {
        let number = text.strip_suffix(unit)?;
        number.trim().parse::<f64>().ok().map(|value| value * scale)
    });
    match seconds {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 3600.0 => {
            Ok(Duration::from_secs_f64(seconds))
        }
        _ => Err(ConfigError(format!(
            "{what}: cannot read the time {text:?}: write a number and a unit, e.g. 1ms or 500us"
        ))),
    }
}

fn check_reservable(share: f64, what: &str) -> Result<f64, ConfigError> {
    if share > 0.0 && share <= MAX_RESERVABLE {
        return Ok(share);
    }
    Err(ConfigError(format!(
        "{what}: reservable = {share} is out of range: give a share of the link above 0 and at \
         most {MAX_RESERVABLE} (best effort keeps the rest)"
    )))
}

fn uid_of(name: &str, what: &str) -> Result<u32, ConfigError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        _ => Err(ConfigError(format!(
            "{what}: there is no local user {name:?} (`getent passwd {name}` finds none)"
        ))),
    }
}

fn gid_of(name: &str, what: &str) -> Result<u32, ConfigError> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(ConfigError(format!(
            "{what}: there is no local group {name:?} (`getent group {name}` finds none)"
        ))),
    }
}

impl FileDevice {
    fn resolve(self, path: &Path) -> Result<DeviceConfig, ConfigError> {
        let what = format!("{}: [[device]] {:?}", path.display(), self.name);
        qsock::validate_device(&self.name).map_err(|err| ConfigError(format!("{what}: {err}")))?;
        let quotas = self
            .quota
            .iter()
            .map(|(user, rate)| {
                let what = format!("{what}, quota of {user}");
                Ok((uid_of(user, &what)?, parse_rate(rate, &what)?))
            })
            .collect::<Result<_, ConfigError>>()?;
        let allow_users = self
            .allow_users
            .map(|users| users.iter().map(|user| uid_of(user, &what)).collect())
            .transpose()?;
        let allow_groups = self
            .allow_groups
            .map(|groups| groups.iter().map(|group| gid_of(group, &what)).collect())
            .transpose()?;
        Ok(DeviceConfig {
            scheduler: parse_scheduler(&self.scheduler, &what)?,
            rate: parse_rate(&self.rate, &what)?,
            resolution: self
                .resolution
                .as_deref()
                .map(|text| parse_time(text, &what))
                .transpose()?,
            reservable: check_reservable(self.reservable.unwrap_or(DEFAULT_RESERVABLE), &what)?,
            default_quota: self
                .default_quota
                .as_deref()
                .map(|text| parse_rate(text, &what))
                .transpose()?,
            allow_users,
            allow_groups,
            quotas,
            name: self.name,
        })
    }
}

/// Reads the config file at `path`; `socket` (from `--socket`) and then
/// `QSOCK_DAEMON_SOCKET` override the file's.
pub fn from_file(path: &Path, socket: Option<PathBuf>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigError(format!(
            "cannot read qsockd's config {}: {err} (write one from qsockd.example.toml, or run \
             `qsockd --foreground --device DEV --scheduler htb --rate RATE`)",
            path.display()
        ))
    })?;
    parse(&text, path, socket)
}

/// The socket `QSOCK_DAEMON_SOCKET` names, which clients look up too: it
/// wins over a config file's.
fn socket_from_environment() -> Option<PathBuf> {
    std::env::var_os(qsock::daemon::protocol::SOCKET_ENV)
        .filter(|path| !path.is_empty())
        .map(PathBuf::from)
}

/// Reads config text as if from `path`.
pub fn parse(text: &str, path: &Path, socket: Option<PathBuf>) -> Result<Config, ConfigError> {
    let file: FileConfig = toml::from_str(text)
        .map_err(|err| ConfigError(format!("{} is not a valid config: {err}", path.display())))?;
    if file.devices.is_empty() {
        return Err(ConfigError(format!(
            "{} names no [[device]]: qsockd has nothing to serve",
            path.display()
        )));
    }
    let devices: Vec<DeviceConfig> = file
        .devices
        .into_iter()
        .map(|device| device.resolve(path))
        .collect::<Result<_, _>>()?;
    for (i, device) in devices.iter().enumerate() {
        if devices[..i].iter().any(|other| other.name == device.name) {
            return Err(ConfigError(format!(
                "{}: the device {:?} is named twice",
                path.display(),
                device.name
            )));
        }
    }
    Ok(Config {
        socket: socket
            .or_else(socket_from_environment)
            .or(file.socket)
            .unwrap_or_else(qsock::daemon::protocol::socket_path),
        devices,
        source: Source::File(path.to_owned()),
    })
}

/// The `--foreground` arguments that stand in for a file.
#[derive(Debug, Clone)]
pub struct Arguments {
    /// `--device`.
    pub device: String,
    /// `--scheduler`.
    pub scheduler: String,
    /// `--rate`.
    pub rate: String,
    /// `--resolution`.
    pub resolution: Option<String>,
    /// `--reservable`.
    pub reservable: Option<f64>,
    /// `--default-quota`.
    pub default_quota: Option<String>,
}

/// The config of one device from arguments: every local user may reserve
/// up to the default share.
pub fn from_arguments(args: &Arguments, socket: Option<PathBuf>) -> Result<Config, ConfigError> {
    let what = "qsockd --foreground";
    qsock::validate_device(&args.device).map_err(|err| ConfigError(format!("{what}: {err}")))?;
    Ok(Config {
        socket: socket.unwrap_or_else(qsock::daemon::protocol::socket_path),
        devices: vec![DeviceConfig {
            name: args.device.clone(),
            scheduler: parse_scheduler(&args.scheduler, what)?,
            rate: parse_rate(&args.rate, what)?,
            resolution: args
                .resolution
                .as_deref()
                .map(|text| parse_time(text, what))
                .transpose()?,
            reservable: check_reservable(args.reservable.unwrap_or(DEFAULT_RESERVABLE), what)?,
            default_quota: args
                .default_quota
                .as_deref()
                .map(|text| parse_rate(text, what))
                .transpose()?,
            allow_users: None,
            allow_groups: None,
            quotas: HashMap::new(),
        }],
        source: Source::Arguments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_every_field_is_read() {
        let text = r#"
            socket = "qsockd.sock"
            [[device]]
            name = "eth0"
            scheduler = "htb"
            rate = "100mbit"
            resolution = "1ms"
            reservable = 0.5
            default_quota = "10mbit"
            allow_users = ["root"]
            allow_groups = ["root"]
            [device.quota]
            root = "20mbit"
        "#;
        let config = parse(text, Path::new("qsockd.toml"), None).expect("valid config");
        assert_eq!(config.socket, PathBuf::from("qsockd.sock"));
        let device = &config.devices[0];
        assert_eq!(device.scheduler, SchedulerName::Htb);
        assert_eq!(device.rate, Rate::from_bits_per_second(100_000_000));
        assert_eq!(device.resolution, Some(Duration::from_millis(1)));
        assert_eq!(device.allow_users, Some(vec![0]));
        assert_eq!(
            device.quotas.get(&0),
            Some(&Rate::from_bits_per_second(20_000_000))
        );
    }

    #[test]
    fn mistakes_are_named() {
        let path = Path::new("qsockd.toml");
        let unknown = "[[device]]\nname = \"eth0\"\nscheduler = \"htb\"\nrate = \"1mbit\"\nrat = 1";
        let err = parse(unknown, path, None).expect_err("unknown field");
        assert!(err.0.contains("rat"), "{err}");
        let user = "[[device]]\nname = \"eth0\"\nscheduler = \"user\"\nrate = \"1mbit\"";
        let err = parse(user, path, None).expect_err("user scheduler");
        assert!(err.0.contains("htb or dwcs"), "{err}");
        let share =
            "[[device]]\nname = \"eth0\"\nscheduler = \"htb\"\nrate = \"1mbit\"\nreservable = 1.5";
        let err = parse(share, path, None).expect_err("share above 1");
        assert!(err.0.contains("reservable"), "{err}");
    }
}
