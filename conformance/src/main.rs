//! `conformance`: run the SockJS protocol checks against a server.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use conformance::{Config, cli, runner};

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    if args.help {
        print!("{}", cli::USAGE);
        return ExitCode::SUCCESS;
    }
    if args.list {
        let checks = conformance::all_checks();
        let checks: Vec<_> = checks
            .into_iter()
            .filter(|c| args.filter.as_deref().is_none_or(|f| c.name.contains(f)))
            .collect();
        let w = checks.iter().map(|c| c.name.len()).max().unwrap_or(5);
        let mut out = String::new();
        for c in &checks {
            let timing = match c.needs {
                conformance::Needs::Nothing => "",
                conformance::Needs::Heartbeat => " [needs --heartbeat-ms]",
                conformance::Needs::Disconnect => " [needs --disconnect-ms]",
            };
            out.push_str(&format!(
                "{:<w$}  §{:<5}  {}{timing}\n",
                c.name, c.section, c.summary
            ));
        }
        out.push_str(&format!("{} checks\n", checks.len()));
        return print_listing(&out);
    }
    if args.hostile {
        let mut config =
            conformance::hostile::HostileConfig::new(args.base_url.unwrap_or_default());
        config.request_timeout = args.request_timeout;
        config.filter = args.filter;
        if let Some(t) = args.io_timeout {
            config.io_timeout = t;
        }
        let report = conformance::hostile::run(&config);
        print!("{}", report.table());
        return if report.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    let mut config = Config::new(args.base_url.unwrap_or_default());
    config.filter = args.filter;
    config.heartbeat = args.heartbeat;
    config.disconnect = args.disconnect;
    config.expect_fail = args.expect_fail;
    if let Some(t) = args.threads {
        config.threads = t;
    }
    if let Some(t) = args.io_timeout {
        config.io_timeout = t;
    }
    if let Some(n) = args.abort_rounds {
        config.abort_rounds = n;
    }
    if let Some(path) = &args.ca_cert {
        match conformance::tls::client_config_from_pem(std::path::Path::new(path)) {
            Ok(tls) => config.tls = Some(tls),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let report = runner::run(&config);
    print!("{}", report.table(false));
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, report.to_json()) {
            eprintln!("error: writing {path}: {e}");
            println!("{}", report.summary());
            return ExitCode::from(2);
        }
    }
    let stale = report.unexpected_passes(&config);
    if !stale.is_empty() {
        println!(
            "note: listed in --expect-fail but passed: {}",
            stale.join(", ")
        );
    }
    println!("{}", report.summary());
    if report.is_success() && !report.results.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints a listing; a reader that stopped reading (`| head`) is no error.
fn print_listing(text: &str) -> ExitCode {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
