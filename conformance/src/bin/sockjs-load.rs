//! `sockjs-load`: load generator for SockJS echo services (see `--help`).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use conformance::load::{self, Command};

fn main() -> ExitCode {
    match load::parse(std::env::args().skip(1)) {
        Err(e) => {
            eprintln!("error: {e}\n\n{}", load::USAGE);
            ExitCode::from(2)
        }
        Ok(Command::Help) => {
            print!("{}", load::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Summarize { files, compare }) => {
            match load::report::summarize_files(&files, &compare) {
                Ok(md) => {
                    print!("{md}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(Command::Run(cfg)) => match load::run(*cfg) {
            Ok(summary) => {
                print!("{}", summary.human());
                println!("{}", summary.result_line());
                if summary.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
