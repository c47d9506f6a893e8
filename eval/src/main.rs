//! `qsock-eval`: the QSockets paper's evaluation (section 4) on today's Linux.
//!
//! Each subcommand is one table or figure; it runs every contender in one
//! invocation on the same network-namespace test bed and writes a CSV file,
//! PNG plots and a markdown section under the output folder, then rebuilds
//! `summary.md` from the sections found there. `EVALUATION.md` at the
//! repository's root explains what each experiment does and shows the results.

mod acquisition;
mod fig4;
mod fig6;
mod fig7;
mod interrupt;
mod lanes;
mod output;
mod path;
mod plot;
mod schedulers;
mod table1;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Errors are sentences saying what failed and, where it helps, what to do.
type Result<T, E = String> = std::result::Result<T, E>;

/// Runs the QSockets paper's evaluation: Table 1 and Figures 4 to 7.
#[derive(Debug, Parser)]
#[command(name = "qsock-eval", version, about)]
struct Cli {
    /// Folder for CSV files, PNG plots, markdown sections and summary.md.
    #[arg(long, global = true, default_value = "eval/results")]
    out: PathBuf,
    /// Names the place the results come from (`host`, or `vm` inside the
    /// kernel-test VMs); it is part of every file name, so that runs in
    /// different places land side by side in one folder.
    #[arg(long, global = true, default_value = "host", value_parser = output::parse_tag)]
    tag: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Table 1: each QSockets call against its plain-socket equivalent, as ratios.
    Table1(table1::Args),
    /// Figures 4 and 5 (one run): a 20 fps stream per contender, bulk TCP
    /// from 15 s and from 30 s; frames per second and inter-frame jitter.
    #[command(alias = "fig5")]
    Fig4(fig4::Args),
    /// Figure 6: managed streams at 20 and 15 fps and an unmanaged 20 fps
    /// stream on a link overloaded by bulk TCP.
    Fig6(fig6::Args),
    /// Figure 7: remote data acquisition, lossy EDF, lossless EDF and a plain
    /// socket, with a bulk TCP transfer from 30 s.
    Fig7(fig7::Args),
    /// The path experiment (issue 12): the bottleneck in a router beyond
    /// the host, each contender alone on a fresh bed, in four conditions.
    Path(path::Args),
    /// Table 1's qsockd column, run unprivileged by `table1` itself.
    #[command(hide = true)]
    Table1QsockdWorker(table1::WorkerArgs),
    /// Rebuilds summary.md from the sections in the output folder (after
    /// copying in results from elsewhere, e.g. the VM's).
    Summary,
    /// Every experiment above, one after the other, with their defaults.
    All {
        /// Schedulers to run (default: user and, as root, htb; dwcs when
        /// sch_dwcs is loaded).
        #[arg(long, value_delimiter = ',', value_parser = schedulers::parse)]
        schedulers: Vec<qsock::SchedulerName>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Table1QsockdWorker(args) = &cli.command {
        // Unprivileged, with nothing to write: no results folder.
        return match table1::worker(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("qsock-eval: {err}");
                ExitCode::FAILURE
            }
        };
    }
    interrupt::install();
    let outcome = output::Results::open(&cli.out, &cli.tag).and_then(|results| {
        match &cli.command {
            Command::Table1(args) => table1::run(args, &results),
            Command::Fig4(args) => fig4::run(args, &results),
            Command::Fig6(args) => fig6::run(args, &results),
            Command::Fig7(args) => fig7::run(args, &results),
            Command::Path(args) => path::run(args, &results),
            Command::Summary | Command::Table1QsockdWorker(_) => Ok(()),
            Command::All { schedulers } => {
                let mut table1_args = table1::Args::default();
                table1_args.schedulers.clone_from(schedulers);
                let mut fig4_args = fig4::Args::default();
                fig4_args.lanes.schedulers.clone_from(schedulers);
                let mut fig6_args = fig6::Args::default();
                fig6_args.lanes.schedulers.clone_from(schedulers);
                let mut fig7_args = fig7::Args::default();
                fig7_args.schedulers.clone_from(schedulers);
                table1::run(&table1_args, &results)?;
                fig4::run(&fig4_args, &results)?;
                fig6::run(&fig6_args, &results)?;
                fig7::run(&fig7_args, &results)
            }
        }?;
        results.write_summary()
    });
    interrupt::wait_for_handler_if_interrupted();
    match outcome {
        Ok(summary) => {
            println!("summary: {}", summary.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("qsock-eval: {err}");
            ExitCode::FAILURE
        }
    }
}
