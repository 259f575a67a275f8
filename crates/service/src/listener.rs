//! The HTTP listener: accepts connections and serves a router on each with hyper, under
//! limits that one client cannot wear down.
//!
//! - **Headers within a deadline.** A request's headers must arrive complete within
//!   [`ConnectionLimits::header_read_timeout`] of the connection opening, or of the previous
//!   response on a kept-alive connection; a connection that sends headers a line at a time, or
//!   nothing at all, is closed then, and so is a kept-alive connection left idle that long.
//! - **A cap on open connections.** At [`ConnectionLimits::max_connections`], a new connection
//!   sheds the oldest one that has not sent a request yet (a half-open connection of a flood,
//!   most likely), so thousands of them cannot lock everyone else out or run the process out
//!   of file descriptors; when every open connection is in a request, the new one is closed.
//! - **Graceful shutdown.** On `shutdown` the listener stops accepting, each connection
//!   finishes the request it is in and closes, and [`serve`] returns when all have.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::telemetry::Metrics;

/// What one client may hold of the listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest wait for a request's complete headers.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// One open connection: how to drop it, and whether it has sent a request.
struct Open {
    stop: CancellationToken,
    requested: Arc<AtomicBool>,
}

/// The open connections, and those that have not sent a request yet in the order they came.
#[derive(Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, Open>,
    silent: VecDeque<u64>,
}

impl Registry {
    /// Makes room for one more connection under `max`: sheds the oldest connection that has
    /// not sent a request. False when there is none to shed (every open connection is in a
    /// request, or has been).
    fn make_room(&mut self, max: usize, metrics: &Metrics) -> bool {
        while self.open.len() >= max.max(1) {
            let Some(id) = self.silent.pop_front() else { return false };
            let shed = self.open.get(&id).is_some_and(|c| !c.requested.load(Ordering::Acquire));
            if shed && let Some(connection) = self.open.remove(&id) {
                connection.stop.cancel();
                metrics.connections_shed.inc();
            }
        }
        true
    }

    fn add(&mut self) -> (u64, CancellationToken, Arc<AtomicBool>) {
        let id = self.next_id;
        self.next_id += 1;
        let (stop, requested) = (CancellationToken::new(), Arc::new(AtomicBool::new(false)));
        self.open.insert(id, Open { stop: stop.clone(), requested: requested.clone() });
        self.silent.push_back(id);
        (id, stop, requested)
    }

    fn remove(&mut self, id: u64) {
        self.open.remove(&id);
        // Keep the queue of silent connections from growing with closed ones.
        if self.silent.len() > 2 * self.open.len() + 64 {
            let open = &self.open;
            self.silent.retain(|id| open.contains_key(id));
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, within `limits`; returns once every
/// connection has closed. Accepted sockets get `TCP_NODELAY` (small event-stream writes leave
/// at once), and each request carries its connection's address as `ConnectInfo`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let connections = TaskTracker::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // pause a moment instead of spinning.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let admitted = registry
            .lock()
            .ok()
            .and_then(|mut r| r.make_room(limits.max_connections, &metrics).then(|| r.add()));
        let Some((id, stop, requested)) = admitted else {
            metrics.connections_shed.inc();
            continue;
        };
        metrics.connections_open.inc();
        let service = hyper::service::service_fn({
            let app = app.clone();
            move |mut request: hyper::Request<Incoming>| {
                requested.store(true, Ordering::Release);
                request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                app.clone().oneshot(request)
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let (registry, metrics, shutdown) = (registry.clone(), metrics.clone(), shutdown.clone());
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                // Shed to make room: dropped as it is.
                _ = stop.cancelled() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            if let Ok(mut registry) = registry.lock() {
                registry.remove(id);
            }
            metrics.connections_open.dec();
        });
    }
    connections.close();
    connections.wait().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_silent_connection_goes_and_busy_ones_stay() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        let (_, first_stop, first_requested) = registry.add();
        let (_, second_stop, _) = registry.add();
        first_requested.store(true, Ordering::Release);
        assert!(registry.make_room(2, &metrics), "the second connection is silent: room is made");
        assert!(!first_stop.is_cancelled(), "a connection that sent a request is never shed");
        assert!(second_stop.is_cancelled(), "the oldest silent connection is shed");
        let (_, _, third_requested) = registry.add();
        third_requested.store(true, Ordering::Release);
        assert!(!registry.make_room(2, &metrics), "both open connections are in requests");
        assert_eq!(metrics.connections_shed.get(), 1);
    }

    #[test]
    fn closed_connections_leave_the_registry() {
        let metrics = Metrics::new();
        let mut registry = Registry::default();
        let ids: Vec<u64> = (0..500).map(|_| registry.add().0).collect();
        for id in ids {
            registry.remove(id);
        }
        assert!(registry.open.is_empty());
        assert!(registry.silent.len() <= 64, "the silent queue is trimmed");
        assert!(registry.make_room(1, &metrics));
    }
}
