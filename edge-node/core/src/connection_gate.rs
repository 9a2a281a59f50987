//! Which new QUIC connections the node takes on, decided before any per-connection state is
//! kept: the first line against a connection flood.
//!
//! - Each remote address gets a token bucket of new connections (a burst, then a steady rate):
//!   a flood from one address is refused at the door. Loopback is exempt: a peer on the node's
//!   own machine (a bench's viewers, a sidecar) is not a flood from the network.
//! - While many handshakes are in flight, an address that has not proven it can receive
//!   packets is asked to (a QUIC Retry, stateless for the node): spoofed floods stop there.
//! - Past a hard bound on handshakes in flight, new ones are dropped silently.
//!
//! A viewer is counted against the session limit only once its session is established, so a
//! flood of half-open connections never takes the seats of real viewers.

use crate::token_bucket::TokenBucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateConfig {
    /// New connections one address may open at once…
    pub burst_per_address: u32,
    /// …and per second after that.
    pub rate_per_address: f64,
    /// Handshakes in flight above which unvalidated addresses get a Retry.
    pub retry_above: usize,
    /// Handshakes in flight above which new connections are dropped.
    pub max_half_open: usize,
    /// Addresses remembered at most (the oldest are forgotten first).
    pub max_addresses: usize,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            burst_per_address: 20,
            rate_per_address: 10.0,
            // A crowd arriving together (hundreds of viewers as a show starts) is served at
            // once; a flood beyond that pays one round trip per connection to prove itself.
            retry_above: 256,
            max_half_open: 2048,
            max_addresses: 65_536,
        }
    }
}

/// What to do with one incoming connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    /// Ask the client to prove its address first (QUIC Retry).
    Retry,
    /// Refuse outright: this address opens connections too fast.
    Refuse,
    /// Drop without an answer: too many handshakes in flight.
    Drop,
}

impl Verdict {
    pub const ALL: [Verdict; 4] = [Self::Accept, Self::Retry, Self::Refuse, Self::Drop];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Retry => "retry",
            Self::Refuse => "refuse_rate",
            Self::Drop => "drop_half_open",
        }
    }
}

#[derive(Debug)]
pub struct ConnectionGate {
    config: GateConfig,
    half_open: usize,
    addresses: HashMap<IpAddr, TokenBucket>,
}

impl ConnectionGate {
    pub fn new(config: GateConfig) -> Self {
        Self {
            config,
            half_open: 0,
            addresses: HashMap::new(),
        }
    }

    /// Judges a connection from `address` at `now`; `validated` is whether it already proved
    /// its address (it answered a Retry). An accepted one counts as in flight until
    /// [`ConnectionGate::handshake_over`].
    pub fn on_incoming(&mut self, address: IpAddr, validated: bool, now: Duration) -> Verdict {
        if self.half_open >= self.config.max_half_open {
            return Verdict::Drop;
        }
        if !validated && self.half_open >= self.config.retry_above {
            return Verdict::Retry;
        }
        if !address.is_loopback() && !self.take_token(address, now) {
            return Verdict::Refuse;
        }
        self.half_open += 1;
        Verdict::Accept
    }

    /// An accepted connection's handshake ended (established, failed or timed out).
    pub fn handshake_over(&mut self) {
        self.half_open = self.half_open.saturating_sub(1);
    }

    pub fn half_open(&self) -> usize {
        self.half_open
    }

    fn take_token(&mut self, address: IpAddr, now: Duration) -> bool {
        if !self.addresses.contains_key(&address)
            && self.addresses.len() >= self.config.max_addresses
        {
            self.forget_idle(now);
        }
        let (burst, rate) = (self.config.burst_per_address, self.config.rate_per_address);
        self.addresses
            .entry(address)
            .or_insert_with(|| TokenBucket::new(burst, rate))
            .take(now)
    }

    /// Drops addresses whose bucket has refilled (they would start full anyway), and if that
    /// frees nothing, the least recently seen half.
    fn forget_idle(&mut self, now: Duration) {
        self.addresses.retain(|_, b| !b.full_at(now));
        if self.addresses.len() >= self.config.max_addresses {
            let mut seen: Vec<Duration> = self
                .addresses
                .values()
                .filter_map(TokenBucket::last_used)
                .collect();
            seen.sort();
            let cut = seen[seen.len() / 2];
            self.addresses
                .retain(|_, b| b.last_used().is_some_and(|last| last > cut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn one_address_flooding_is_refused_after_its_burst_and_others_are_not() {
        let mut gate = ConnectionGate::new(GateConfig::default());
        let verdicts: Vec<Verdict> = (0..1000)
            .map(|i| {
                let v = gate.on_incoming(ip(1), true, MS * i);
                if v == Verdict::Accept {
                    gate.handshake_over();
                }
                v
            })
            .collect();
        let accepted = verdicts.iter().filter(|v| **v == Verdict::Accept).count();
        // The burst of 20, then 10 a second for one second.
        assert!((29..=31).contains(&accepted), "{accepted}");
        assert_eq!(gate.on_incoming(ip(2), true, MS * 1000), Verdict::Accept);
        gate.handshake_over();
        let local = IpAddr::from([127, 0, 0, 1]);
        assert!((0..100).all(|i| {
            let v = gate.on_incoming(local, true, MS * (2000 + i));
            gate.handshake_over();
            v == Verdict::Accept
        }));
    }

    #[test]
    fn many_handshakes_in_flight_bring_retries_then_drops() {
        let config = GateConfig {
            retry_above: 4,
            max_half_open: 8,
            ..GateConfig::default()
        };
        let mut gate = ConnectionGate::new(config);
        for i in 0..4 {
            assert_eq!(gate.on_incoming(ip(i), false, MS), Verdict::Accept);
        }
        assert_eq!(gate.on_incoming(ip(9), false, MS), Verdict::Retry);
        for i in 10..14 {
            assert_eq!(
                gate.on_incoming(ip(i), true, MS),
                Verdict::Accept,
                "validated"
            );
        }
        assert_eq!(gate.on_incoming(ip(20), true, MS), Verdict::Drop);
        for _ in 0..8 {
            gate.handshake_over();
        }
        assert_eq!(gate.half_open(), 0);
        assert_eq!(gate.on_incoming(ip(9), false, MS), Verdict::Accept);
    }

    #[test]
    fn the_address_table_stays_bounded() {
        let config = GateConfig {
            max_addresses: 100,
            ..GateConfig::default()
        };
        let mut gate = ConnectionGate::new(config);
        for i in 0..10_000u32 {
            let address = IpAddr::from(i.to_be_bytes());
            gate.on_incoming(address, true, MS * i);
            gate.handshake_over();
        }
        assert!(gate.addresses.len() <= 100, "{}", gate.addresses.len());
    }
}
