//! What one client may use of the API: a request rate per client address (a token bucket,
//! off unless configured), and caps on open event streams, in all and per client address.
//!
//! A client is known by the address its connection comes from, or, behind proxies, by the
//! address the nearest trusted proxy saw: with `trusted_proxy_hops` = N, the N-th entry from the
//! right of `X-Forwarded-For` (each proxy appends the address it received the request from, so
//! the rightmost entries are the ones the client cannot forge). Behind nginx alone that is 1;
//! behind a cloud load balancer and nginx, 2.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::HeaderMap;

use crate::error::{ApiError, STREAMS_RETRY_SECS};
use crate::locks::lock;

/// The limits, as configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientLimitSettings {
    /// Requests per second per client address (0: no limit); bursts of twice that (at least
    /// one request) pass.
    pub rate_per_second: f64,
    /// Event streams open at once on this server (0: no cap).
    pub max_event_streams: usize,
    /// Event streams open at once per client address (0: no cap).
    pub max_event_streams_per_client: usize,
    /// Proxies in front of the server whose `X-Forwarded-For` entries are trusted.
    pub trusted_proxy_hops: usize,
}

/// One client's token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Open event streams, in all and by client.
#[derive(Debug, Default)]
struct Streams {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// The limits and what each client uses of them.
#[derive(Debug, Default)]
pub struct ClientLimits {
    settings: ClientLimitSettings,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    streams: Mutex<Streams>,
}

/// Buckets kept before the full ones (clients that have been quiet) are dropped.
const BUCKETS_KEPT: usize = 10_000;

impl ClientLimits {
    /// Limits with these settings.
    pub fn new(settings: ClientLimitSettings) -> Arc<ClientLimits> {
        Arc::new(ClientLimits { settings, ..ClientLimits::default() })
    }

    /// The address a request comes from (see the module's documentation); `None` when the
    /// connection's address is unknown.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let hops = self.settings.trusted_proxy_hops;
        if hops == 0 {
            return peer.map(|p| p.ip());
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|entry| entry.trim().parse().ok())
            .collect();
        // Fewer entries than trusted hops: the leftmost one is the best there is.
        forwarded
            .len()
            .checked_sub(hops)
            .and_then(|i| forwarded.get(i))
            .or(forwarded.first())
            .copied()
            .or(peer.map(|p| p.ip()))
    }

    /// Takes one request from `client`'s bucket, or refuses it with the seconds to wait.
    pub fn check_rate(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let rate = self.settings.rate_per_second;
        let Some(client) = client.filter(|_| rate > 0.0) else { return Ok(()) };
        let burst = (2.0 * rate).max(1.0);
        let now = Instant::now();
        let mut buckets = lock(&self.buckets, "rate buckets");
        if buckets.len() >= BUCKETS_KEPT {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.refilled).as_secs_f64() * rate < burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket { tokens: burst, refilled: now });
        bucket.tokens = (bucket.tokens + now.duration_since(bucket.refilled).as_secs_f64() * rate).min(burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u32;
        Err(ApiError::Throttled {
            reason: format!("more than {rate} requests per second from this address"),
            retry_after: wait,
        })
    }

    /// Opens an event stream for `client`, or refuses it when the server or the client has
    /// its most open. The stream counts until the returned slot is dropped.
    pub fn open_stream(self: &Arc<Self>, client: Option<IpAddr>) -> Result<StreamSlot, ApiError> {
        let (most, most_each) = (self.settings.max_event_streams, self.settings.max_event_streams_per_client);
        let mut streams = lock(&self.streams, "event streams");
        if most > 0 && streams.total >= most {
            return Err(ApiError::Throttled {
                reason: format!("{most} event streams are open on this server, the most it keeps"),
                retry_after: STREAMS_RETRY_SECS,
            });
        }
        if let Some(client) = client {
            let open = streams.by_client.entry(client).or_default();
            if most_each > 0 && *open >= most_each {
                return Err(ApiError::Throttled {
                    reason: format!("{most_each} event streams are open from this address, the most allowed"),
                    retry_after: STREAMS_RETRY_SECS,
                });
            }
            *open += 1;
        }
        streams.total += 1;
        Ok(StreamSlot { limits: self.clone(), client })
    }
}

/// An open event stream's place in the counts; given back when dropped.
#[derive(Debug)]
pub struct StreamSlot {
    limits: Arc<ClientLimits>,
    client: Option<IpAddr>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = lock(&self.limits.streams, "event streams");
        streams.total = streams.total.saturating_sub(1);
        if let Some(client) = self.client
            && let Some(open) = streams.by_client.get_mut(&client)
        {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.by_client.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_not_touched() {
        let limits = ClientLimits::new(ClientLimitSettings { rate_per_second: 2.0, ..Default::default() });
        for _ in 0..4 {
            limits.check_rate(address(1)).expect("within the burst of 4");
        }
        let refused = limits.check_rate(address(1)).expect_err("past the burst");
        assert!(matches!(refused, ApiError::Throttled { retry_after: 1, .. }), "{refused:?}");
        limits.check_rate(address(2)).expect("another client has its own bucket");
        std::thread::sleep(std::time::Duration::from_millis(600));
        limits.check_rate(address(1)).expect("a token came back");
    }

    #[test]
    fn no_rate_means_no_limit() {
        let limits = ClientLimits::new(ClientLimitSettings::default());
        for _ in 0..1000 {
            limits.check_rate(address(1)).unwrap();
        }
    }

    #[test]
    fn event_streams_are_capped_per_client_and_in_all_and_given_back() {
        let limits = ClientLimits::new(ClientLimitSettings {
            max_event_streams: 3,
            max_event_streams_per_client: 2,
            ..Default::default()
        });
        let a1 = limits.open_stream(address(1)).unwrap();
        let _a2 = limits.open_stream(address(1)).unwrap();
        assert!(limits.open_stream(address(1)).is_err(), "a third from the same client");
        let _b1 = limits.open_stream(address(2)).unwrap();
        assert!(limits.open_stream(address(3)).is_err(), "the server's cap");
        drop(a1);
        let _c1 = limits.open_stream(address(3)).expect("a closed stream gives its place back");
    }

    #[test]
    fn behind_proxies_the_client_is_the_entry_the_nearest_trusted_proxy_saw() {
        let peer: Option<SocketAddr> = Some("10.0.0.9:5000".parse().unwrap());
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8, 9.9.9.9".parse().unwrap());
        let hops = |trusted_proxy_hops| {
            ClientLimits::new(ClientLimitSettings { trusted_proxy_hops, ..Default::default() })
                .client(peer, &headers)
        };
        assert_eq!(hops(0), Some(IpAddr::from([10, 0, 0, 9])), "no proxy trusted: the connection");
        assert_eq!(hops(1), Some(IpAddr::from([9, 9, 9, 9])));
        assert_eq!(hops(2), Some(IpAddr::from([5, 6, 7, 8])));
        assert_eq!(hops(5), Some(IpAddr::from([1, 2, 3, 4])), "fewer entries: the leftmost");
    }
}
