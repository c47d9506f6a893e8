//! qsockd: holds CAP_NET_ADMIN so that applications need not. It installs
//! the configured packet scheduler on each device at start and keeps it;
//! applications connect over a Unix socket, pass the socket they want
//! scheduled, and get a class of their own within the share and quota the
//! configuration allows (see `qsock::daemon::protocol`).
//!
//! A restart keeps running streams' traffic scheduled: qsockd removes no
//! class when it stops, and at start it takes hold of the classes the
//! previous qsockd held (their records under `/run/qsock`, which must
//! survive the restart). A class whose client process still runs is kept,
//! its reservation counted, for 30 s, in which the client attaches the same
//! socket again and gets the same class back; a class whose client is gone,
//! or that nobody takes back in time, is removed.

mod admission;
mod clients;
mod config;
mod devices;
mod server;
mod worker;

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// qsockd: kernel packet scheduling for applications without CAP_NET_ADMIN.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The config file (TOML) naming the devices served.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Serve the one device the arguments name instead of a config file
    /// (for tests and containers); logs go to stderr either way.
    #[arg(long)]
    foreground: bool,
    /// The socket clients connect to [default: $QSOCK_DAEMON_SOCKET, else
    /// the config's `socket`, else /run/qsock/qsockd.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// With --foreground: the device to schedule.
    #[arg(long, value_name = "DEV", requires = "foreground")]
    device: Option<String>,
    /// With --foreground: its scheduler (htb or dwcs).
    #[arg(long, value_name = "NAME", requires = "device")]
    scheduler: Option<String>,
    /// With --foreground: its link rate, as tc writes rates (e.g. 100mbit).
    #[arg(long, value_name = "RATE", requires = "device")]
    rate: Option<String>,
    /// With --foreground: the deadline resolution of dwcs (e.g. 1ms).
    #[arg(long, value_name = "TIME", requires = "device")]
    resolution: Option<String>,
    /// With --foreground: the share of the link applications may reserve.
    #[arg(long, value_name = "SHARE", requires = "device")]
    reservable: Option<f64>,
    /// With --foreground: what one user may reserve [default: the whole share].
    #[arg(long, value_name = "RATE", requires = "device")]
    default_quota: Option<String>,
}

fn load(cli: &Cli) -> Result<config::Config, String> {
    let socket = cli.socket.clone();
    if cli.foreground && cli.config.is_none() {
        let (Some(device), Some(scheduler), Some(rate)) = (&cli.device, &cli.scheduler, &cli.rate)
        else {
            return Err(
                "--foreground without --config needs --device DEV --scheduler NAME --rate RATE"
                    .to_owned(),
            );
        };
        let arguments = config::Arguments {
            device: device.clone(),
            scheduler: scheduler.clone(),
            rate: rate.clone(),
            resolution: cli.resolution.clone(),
            reservable: cli.reservable,
            default_quota: cli.default_quota.clone(),
        };
        return config::from_arguments(&arguments, socket).map_err(|err| err.to_string());
    }
    if cli.device.is_some() {
        return Err(
            "--device is for --foreground without --config; a config file names its devices"
                .to_owned(),
        );
    }
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG));
    config::from_file(&path, socket).map_err(|err| err.to_string())
}

/// Raises the soft limit of open descriptors to the hard one: every client
/// holds one, and a thousand may connect at once.
fn raise_descriptor_limit() {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::warn!("cannot raise the descriptor limit from {soft} to {hard}: {err}");
            }
        }
        Ok(_) => {}
        Err(err) => log::warn!("cannot read the descriptor limit: {err}"),
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| writeln!(buf, "qsockd {}: {}", record.level(), record.args()))
        .init();
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(config) => config,
        Err(err) => {
            log::error!("{err}");
            std::process::exit(2);
        }
    };
    raise_descriptor_limit();
    match server::Server::start(config) {
        Ok(mut server) => server.run(),
        Err(err) => {
            log::error!("{err}");
            std::process::exit(1);
        }
    }
}
