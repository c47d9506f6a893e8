//! qsockctl: install, inspect and remove qsock's packet schedulers.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use qsock::{InitParams, Rate, SchedulerName};

mod duration;
mod report;

use duration::parse_duration;
use report::{describe_pruned, print_report};

/// Install, inspect and remove the packet schedulers that qsockets attach to.
///
/// A qsocket's traffic is ordered and paced by a scheduler on the device it
/// leaves by. `qsockctl init` puts one there (the paper's qsockinit), `show`
/// prints it with its streams, `prune` removes the streams of processes
/// that ended without closing them, `reset` takes the scheduler away again.
#[derive(Debug, Parser)]
#[command(
    name = "qsockctl",
    version,
    about,
    long_about,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install a scheduler as the device's root queueing discipline (qsockinit).
    ///
    /// Run once per device, as root (CAP_NET_ADMIN), before applications
    /// attach sockets. Running it again with the same scheduler changes
    /// nothing but the rate. A queueing discipline someone else installed on
    /// purpose is left alone: remove it first. The user scheduler is not
    /// installed here: it runs inside each application that asks for it.
    ///
    /// Example: qsockctl init --dev eth0 --scheduler htb --rate 10mbit
    Init {
        /// The network interface the traffic leaves by (see `ip link`).
        #[arg(long = "dev", value_name = "DEV")]
        device: Option<String>,
        /// dwcs (kernel DWCS, needs the sch_dwcs module), htb (kernel HTB: rate
        /// isolation only), or auto (the first of these that works here).
        #[arg(long, value_name = "NAME", default_value = "auto")]
        scheduler: String,
        /// The rate the scheduler may send at, as tc writes it (10mbit,
        /// 500kbit, 2mbps = bytes per second), from 8bit to
        /// 18446744073709551615bit. It becomes the bottleneck where queues
        /// form and are ordered. Defaults to the device's speed.
        #[arg(long, value_name = "RATE")]
        rate: Option<String>,
        /// The most the device's traffic of no stream may send (htb only),
        /// as tc writes rates: where the host's traffic crosses a narrower
        /// bottleneck further on, its bulk traffic waits here while the
        /// streams keep the link. A rate at or above the link's lifts the
        /// cap; left out, the cap stays as it is.
        #[arg(long, value_name = "RATE")]
        best_effort_rate: Option<String>,
        /// Most packets queued in the scheduler at once.
        #[arg(long, value_name = "PACKETS")]
        limit: Option<u32>,
        /// How finely the scheduler tells deadlines apart (dwcs), e.g. 1ms,
        /// 500us: deadlines in the same slot are ordered by loss window.
        /// Defaults to 1ms.
        #[arg(long, value_name = "TIME")]
        resolution: Option<String>,
    },
    /// Print the device's scheduler, its streams and their statistics, like `tc -s class show`.
    ///
    /// Each stream names the process that attached it; a stream whose
    /// process ended without closing it (e.g. killed) is marked stale: its
    /// class still reserves its rate until `qsockctl prune` or the next
    /// qsocket on the device removes it.
    Show {
        /// The network interface.
        #[arg(long = "dev", value_name = "DEV")]
        device: Option<String>,
        /// Print JSON instead of a table, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove the streams whose processes ended without closing them.
    ///
    /// Their classes go, and with them the rates they reserved; streams of
    /// live processes are left alone. The next qsocket on the device does
    /// the same before it is admitted.
    Prune {
        /// The network interface.
        #[arg(long = "dev", value_name = "DEV")]
        device: Option<String>,
    },
    /// Remove the qsock scheduler and all its streams from the device.
    ///
    /// The device goes back to the kernel's default queueing discipline.
    /// Sockets still attached keep working, unscheduled. A queueing
    /// discipline qsock did not install is left alone, also one that uses
    /// qsock's handle 7173:.
    Reset {
        /// The network interface.
        #[arg(long = "dev", value_name = "DEV")]
        device: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.exit_code() == 0 => {
            // --help and --version: clap's own text, on standard output.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err)
            if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            // No command at all: the help, as `qsockctl --help` prints it,
            // on standard error, as nothing was done.
            let _ = err.print();
            return ExitCode::FAILURE;
        }
        Err(err) => {
            eprintln!("qsockctl: {}", usage_error(&err));
            return ExitCode::FAILURE;
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qsockctl: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Clap's error in one line, with where to look: every failure of qsockctl
/// is one line on standard error and exit status 1, for scripts and people.
fn usage_error(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().map(str::trim).filter(|line| {
        !line.is_empty() && !line.starts_with("Usage:") && !line.starts_with("For more")
    });
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // A list that clap puts on the following lines (missing arguments,
    // suggestions) belongs in the sentence.
    let rest: Vec<&str> = lines.collect();
    let mut line = first.trim_end_matches(':').to_owned();
    if !rest.is_empty() {
        line += &format!(": {}", rest.join(", "));
    }
    format!("{line} (see `qsockctl --help`)")
}

/// The device option, which every subcommand needs.
fn device(device: Option<String>) -> qsock::Result<String> {
    device.filter(|name| !name.is_empty()).ok_or_else(|| {
        qsock::Error::new(
            qsock::ErrorKind::NoDevice,
            "no device given: name the network interface the traffic leaves by with --dev \
             (`ip link` lists them)",
        )
    })
}

fn run(command: Command) -> qsock::Result<()> {
    match command {
        Command::Init {
            device,
            scheduler,
            rate,
            best_effort_rate,
            limit,
            resolution,
        } => {
            let scheduler: SchedulerName = scheduler.parse()?;
            if scheduler == SchedulerName::User {
                return Err(user_is_not_installed());
            }
            let mut init = InitParams::new(self::device(device)?, scheduler);
            init.link_rate = rate.as_deref().map(str::parse::<Rate>).transpose()?;
            init.best_effort_rate = best_effort_rate
                .as_deref()
                .map(str::parse::<Rate>)
                .transpose()?;
            init.limit = limit;
            init.deadline_resolution = resolution.as_deref().map(parse_duration).transpose()?;
            let report = qsock::qsockinit(&init)?;
            if report.scheduler == SchedulerName::User {
                return Err(qsock::Error::new(
                    qsock::ErrorKind::NotSupported,
                    format!(
                        "no kernel scheduler could be installed on {}: {}. {}",
                        report.device,
                        report.reason,
                        user_is_not_installed().message()
                    ),
                ));
            }
            let verb = if report.installed_now {
                "installed"
            } else {
                "already installed"
            };
            println!(
                "{}: {} {verb} ({})",
                report.device, report.scheduler, report.reason
            );
            Ok(())
        }
        Command::Show { device, json } => {
            let report = qsock::report(&self::device(device)?)?;
            if json {
                let text = serde_json::to_string_pretty(&report).map_err(|err| {
                    qsock::Error::new(qsock::ErrorKind::Os, format!("cannot write JSON: {err}"))
                })?;
                println!("{text}");
            } else {
                print_report(&report);
            }
            Ok(())
        }
        Command::Prune { device } => {
            let device = self::device(device)?;
            let pruned = qsock::prune(&device)?;
            if pruned.is_empty() {
                println!("{device}: every stream has a live process; nothing to remove");
            }
            for stream in &pruned {
                println!("{device}: removed {}", describe_pruned(stream));
            }
            Ok(())
        }
        Command::Reset { device } => {
            let device = self::device(device)?;
            let report = qsock::reset(&device)?;
            match report.removed {
                Some(scheduler) => println!(
                    "{device}: qsock's {scheduler} scheduler removed (root qdisc was {}); the \
                     kernel's default queueing discipline is back",
                    report.root_qdisc
                ),
                None => println!(
                    "{device}: there was no qsock scheduler to remove (root qdisc {}); nothing \
                     changed",
                    report.root_qdisc
                ),
            }
            Ok(())
        }
    }
}

/// Why `qsockctl init` does not install the user scheduler.
fn user_is_not_installed() -> qsock::Error {
    qsock::Error::new(
        qsock::ErrorKind::NotSupported,
        "the user scheduler runs inside each application that asks for it (scheduler user in \
         QosParams, qsocksink scheduler=user) and lives only as long as that process: there is \
         nothing for qsockctl to install, and `qsockctl show` cannot see it. Start the \
         application with it instead, or install a kernel scheduler with --scheduler dwcs or htb",
    )
}
