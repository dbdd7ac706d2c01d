//! One module per command; [`lab`] is the view of hosts and their bookings they share.

mod book;
mod calendar;
mod descriptor;
pub mod forecast;
mod hosts;
mod lab;
pub mod report;
mod report_html;
pub mod ssh;
mod status;

use std::io::Write;

use crate::cli::Command;
use crate::error::Result;
use crate::session::Session;

pub async fn dispatch(session: &Session, command: Command, out: &mut dyn Write) -> Result<()> {
    match command {
        Command::Hosts(args) => hosts::run(session, &args, out).await,
        Command::Book(args) => book::book(session, &args, out).await,
        Command::Status(args) => status::run(session, &args.name, out).await,
        Command::Extend(args) => book::extend(session, &args, out).await,
        Command::Release(args) => book::release(session, &args, out).await,
        Command::Ssh(args) => ssh::run(session, &args).await,
        Command::Descriptor(args) => descriptor::run(session, &args, out).await,
        Command::Calendar(args) => calendar::run(session, &args, out).await,
        Command::Report(args) => report::run(session, &args, out).await,
        Command::Forecast(args) => forecast::run(session, &args, out).await,
        // Handled before a client exists.
        Command::Completion { .. } => Ok(()),
    }
}
