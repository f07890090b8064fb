//! `badlink`: a loopback TCP proxy that forwards through a bad link (see `--help` and
//! [`conformance::badlink`]).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use conformance::badlink::{self, BadLink};
use tokio::io::AsyncBufReadExt as _;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{}", badlink::USAGE);
        return ExitCode::SUCCESS;
    }
    let args = match badlink::parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", badlink::USAGE);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let link = match BadLink::start(args.listen, args.upstream, args.config.clone()).await {
            Ok(link) => link,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "listening on {} (bad link to {}: {:?})",
            link.local_addr(),
            args.upstream,
            args.config
        );
        let commands = async {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match line.trim() {
                    "cut" => {
                        link.cut_all();
                        println!("cut every open connection ({} so far)", link.accepted());
                    }
                    "" => {}
                    other => eprintln!("unknown command {other:?} (known: cut)"),
                }
            }
            // Standard input closed: keep forwarding.
            std::future::pending::<()>().await
        };
        match args.exit_after {
            Some(d) => {
                let _ = tokio::time::timeout(d, commands).await;
            }
            None => commands.await,
        }
        ExitCode::SUCCESS
    })
}
