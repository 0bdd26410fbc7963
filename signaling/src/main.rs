//! `signaling`: the signaling daemon.
//!
//! ```text
//! signaling                      run with the embedded defaults (signaling.toml)
//! signaling --config FILE        run with FILE
//! signaling --check-config FILE  validate FILE and exit
//! signaling --print-default-config
//! ```

use std::path::PathBuf;
use std::time::Duration;

use signaling::config::{Config, DEFAULT_TOML};
use signaling::hub::Hub;

const USAGE: &str = "usage: signaling [--config FILE | --check-config FILE | --print-default-config]";

/// Standard error that never fails (see the bridge's): a closed log pipe must not stop the
/// daemon.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    // SIGNALING_LOG sets the level of the daemon's own lines only. Libraries stay at "warn"
    // whatever it says: at debug and trace they log what crosses the wire (a WebSocket library
    // logs every message, names and passwords included), which privacy invariant 6 forbids.
    let level = std::env::var("SIGNALING_LOG")
        .ok()
        .and_then(|l| l.parse::<tracing_subscriber::filter::LevelFilter>().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!("warn,signaling={level}")))
        .with_target(false)
        .with_writer(|| LossyStderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, check_only) = match args.as_slice() {
        [] => (None, false),
        [flag, file] if flag == "--config" => (Some(PathBuf::from(file)), false),
        [flag, file] if flag == "--check-config" => (Some(PathBuf::from(file)), true),
        [flag] if flag == "--print-default-config" => {
            print!("{DEFAULT_TOML}");
            return;
        }
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return;
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let config = match Config::load(path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("signaling: configuration error: {e}");
            std::process::exit(2);
        }
    };
    if check_only {
        println!("configuration ok");
        return;
    }
    std::process::exit(run(config));
}

fn run(config: Config) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let tls = match signaling::tls::server_config(&config) {
            Ok(tls) => tls,
            Err(e) => {
                tracing::error!("{e}");
                return 1;
            }
        };
        let addr = config.listen_addr().expect("validated");
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("server.listen {addr}: {e}");
                return 1;
            }
        };
        let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let hub = Hub::new(config, tokio::runtime::Handle::current());
        let ticker = hub.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(2));
            loop {
                interval.tick().await;
                ticker.speakers_tick();
            }
        });
        let poller = hub.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                interval.tick().await;
                poller.poll_dominant_speakers(1000).await;
            }
        });
        tracing::info!("signaling on https://{local}/");
        tokio::select! {
            () = signaling::server::serve(listener, tls, hub) => 1,
            _ = tokio::signal::ctrl_c() => 0,
            () = terminate() => 0,
        }
    })
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
