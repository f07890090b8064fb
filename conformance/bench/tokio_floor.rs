//! What the bench's floors on tokio share: the runtime, the listener and the accept loop.

use std::future::Future;
use std::process::ExitCode;

use tokio::net::{TcpListener, TcpStream};

/// Serves every connection accepted on the address of the first argument (loopback only)
/// with `serve`, each in a task of its own, until killed; prints `listening on
/// http://ADDR` once bound. Worker threads: the CPUs the process may run on (one CPU: a
/// current-thread runtime, as sockjs-tokio's test server, so that the floor and the server
/// it is the floor of schedule alike).
pub fn run<F>(program: &str, serve: impl Fn(TcpStream) -> F) -> ExitCode
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr = match crate::loopback::addr_from_args(program) {
        Ok(addr) => addr,
        Err(code) => return code,
    };
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let built = if one_core {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    let rt = match built {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{program}: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{program}: bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match listener.local_addr() {
            Ok(a) => println!("listening on http://{a}"),
            Err(e) => {
                eprintln!("{program}: {e}");
                return ExitCode::FAILURE;
            }
        }
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(stream));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    eprintln!("{program}: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
}
