//! The daemon as a whole: runtime, TLS, listener, periodic work, signals.

use std::time::Duration;

use sdnotify::host::Supervision;

use crate::config::Config;
use crate::hub::Hub;

/// Runs the daemon until SIGTERM or SIGINT; returns the process exit code. SIGHUP reloads the
/// TLS certificate.
pub fn run(config: Config) -> i32 {
    run_with_hangup(config, Box::new(|| {}))
}

/// [`run`], calling `on_hangup` first on each SIGHUP (the daemon reloads its log level there).
pub fn run_with_hangup(config: Config, on_hangup: crate::service::OnHangup) -> i32 {
    run_supervised(config, Supervision::Own, on_hangup)
}

/// [`run_with_hangup`], told who speaks to the service manager: one of several daemons in a
/// process (the appliance) hands its health check to the process's host instead.
pub fn run_supervised(config: Config, supervision: Supervision, on_hangup: crate::service::OnHangup) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let (tls, certificate) = match crate::tls::reloadable_server_config(&config) {
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
        let local = match listener.local_addr() {
            Ok(local) => local,
            Err(e) => {
                tracing::error!("server.listen {addr}: {e}");
                return 1;
            }
        };
        let notifier = crate::service::notifier(&supervision);
        let service = crate::service::supervise(
            notifier.clone(),
            supervision,
            local,
            config.clone(),
            certificate,
            on_hangup,
        );
        let metrics_addr = config.metrics.listen_addr().expect("validated");
        let hub = Hub::new(config, tokio::runtime::Handle::current());
        if let Some(addr) = metrics_addr {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    tracing::info!("metrics on http://{addr}/metrics");
                    let app = crate::metrics::router(hub.clone());
                    tokio::spawn(async move { axum::serve(listener, app).await });
                }
                Err(e) => {
                    tracing::error!("metrics.listen {addr}: {e}");
                    return 1;
                }
            }
        }
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
        let code = tokio::select! {
            () = crate::server::serve(listener, tls, hub) => 1,
            code = service => code,
            _ = tokio::signal::ctrl_c() => 0,
            () = terminate() => 0,
        };
        let _ = notifier.stopping();
        code
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
