//! The hostile-input run (`conformance::hostile`) against both adapters, in-process on
//! ephemeral loopback ports, with the same short request timeouts so the slowloris cases
//! finish quickly.

mod support;

use std::time::Duration;

use conformance::hostile::{HostileConfig, run};
use sockjs_core::Options;
use sockjs_core::driver::Config;
use support::{ADAPTERS, Mount, handler, start_services};

/// The servers' head and body read timeouts in these tests.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(400);

#[test]
fn hostile_input_against_both_adapters() {
    for adapter in ADAPTERS {
        let config = Config {
            shards: 2,
            header_read_timeout: REQUEST_TIMEOUT,
            body_read_timeout: REQUEST_TIMEOUT,
            ..Config::default()
        };
        let echo = Mount::new(
            "/echo",
            Options::default(),
            handler(sockjs_core::driver::suite::App::Echo.runner()),
        );
        let target = start_services(adapter, config, vec![echo]);
        let mut config = HostileConfig::new(format!("http://{}", target.addr))
            .request_timeout(REQUEST_TIMEOUT)
            .io_timeout(Duration::from_secs(3));
        config.filter = std::env::var("HOSTILE_FILTER").ok();
        let report = run(&config);
        println!("{adapter:?}\n{}", report.table());
        report.assert_success();
    }
}
