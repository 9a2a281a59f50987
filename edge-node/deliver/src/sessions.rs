//! The registry of established viewer sessions, for operators: list who is connected and
//! disconnect one of them with an application close code and reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::pacing::{DeliveryStats, PacedSession};
use crate::qmux_transport::GroupLimit;
use crate::{ViewerRequest, ViewerTransport};

/// One established viewer session, as an operator sees it. Never carries credentials: the
/// query has its `token` redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The id the router saw in [`ViewerRequest::session_id`].
    pub id: u64,
    pub remote: SocketAddr,
    /// The rendering (render group) the session is served.
    pub rendering: String,
    pub path: String,
    /// The request query with credentials redacted ([`ViewerRequest::loggable_query`]).
    pub query: String,
    pub transport: ViewerTransport,
    /// When the session was established (routed and MoQ set up).
    pub connected_at: SystemTime,
}

/// What delivers a session's groups, for its counters.
#[derive(Clone)]
pub(crate) enum Delivery {
    Quic(Box<PacedSession>),
    WebSocket(Arc<GroupLimit>),
}

impl Delivery {
    pub fn stats(&self) -> DeliveryStats {
        match self {
            Self::Quic(paced) => paced.stats(),
            Self::WebSocket(limit) => limit.stats(),
        }
    }
}

/// A close an operator asked for: the code and reason the viewer receives.
#[derive(Debug)]
pub(crate) struct CloseRequest {
    pub code: u32,
    pub reason: String,
}

struct Entry {
    info: SessionInfo,
    close: Option<oneshot::Sender<CloseRequest>>,
    /// The session's transport, for its delivery counters; `None` in unit tests.
    delivery: Option<Delivery>,
}

#[derive(Default)]
pub(crate) struct SessionRegistry {
    sessions: Mutex<BTreeMap<u64, Entry>>,
}

impl SessionRegistry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        // Each critical section is one insert, remove or copy: a poisoned map is consistent.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an established session. The session stays listed until the returned guard is
    /// dropped; the receiver fires when an operator closes it.
    pub fn register(
        self: &Arc<Self>,
        request: &ViewerRequest,
        rendering: &str,
        connected_at: SystemTime,
        delivery: impl Into<Option<Delivery>>,
    ) -> (RegisteredSession, oneshot::Receiver<CloseRequest>) {
        let (close, closed) = oneshot::channel();
        let info = SessionInfo {
            id: request.session_id,
            remote: request.remote,
            rendering: rendering.to_string(),
            path: request.path.clone(),
            query: request.loggable_query(),
            transport: request.transport,
            connected_at,
        };
        self.lock().insert(
            request.session_id,
            Entry {
                info,
                close: Some(close),
                delivery: delivery.into(),
            },
        );
        let guard = RegisteredSession {
            registry: self.clone(),
            id: request.session_id,
        };
        (guard, closed)
    }

    /// Every established session, oldest id first.
    pub fn list(&self) -> Vec<SessionInfo> {
        self.lock().values().map(|e| e.info.clone()).collect()
    }

    /// The delivery counters of session `id`, if it is established.
    pub fn delivery(&self, id: u64) -> Option<DeliveryStats> {
        let delivery = self.lock().get(&id)?.delivery.clone();
        Some(delivery.map(|d| d.stats()).unwrap_or_default())
    }

    /// Asks session `id` to close with `code` and `reason`. False when no such session is
    /// established (or a close was already requested).
    pub fn close(&self, id: u64, code: u32, reason: &str) -> bool {
        let sender = self.lock().get_mut(&id).and_then(|e| e.close.take());
        match sender {
            Some(sender) => sender
                .send(CloseRequest {
                    code,
                    reason: reason.to_string(),
                })
                .is_ok(),
            None => false,
        }
    }
}

/// Removes its session from the registry when dropped, however the session ended.
pub(crate) struct RegisteredSession {
    registry: Arc<SessionRegistry>,
    id: u64,
}

impl Drop for RegisteredSession {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: u64, query: &str) -> ViewerRequest {
        ViewerRequest {
            session_id: id,
            remote: "192.0.2.7:5000".parse().unwrap(),
            path: "/".into(),
            query: query.into(),
            transport: ViewerTransport::WebTransport,
        }
    }

    #[test]
    fn sessions_are_listed_without_credentials_until_dropped() {
        let registry = Arc::new(SessionRegistry::default());
        let at = SystemTime::UNIX_EPOCH;
        let (first, _rx1) = registry.register(&request(3, "zone=a&token=secret"), "a", at, None);
        let (second, _rx2) = registry.register(&request(9, ""), "b", at, None);
        let listed = registry.list();
        assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![3, 9]);
        assert_eq!(listed[0].query, "zone=a&token=REDACTED");
        assert_eq!(listed[1].rendering, "b");
        drop(first);
        assert_eq!(registry.list().len(), 1);
        drop(second);
        assert!(registry.list().is_empty());
    }

    #[test]
    fn close_reaches_the_session_once() {
        let registry = Arc::new(SessionRegistry::default());
        let (_guard, mut closed) =
            registry.register(&request(1, ""), "a", SystemTime::UNIX_EPOCH, None);
        assert!(!registry.close(2, 4000, "no such session"));
        assert!(registry.close(1, 4000, "kicked by operator"));
        let request = closed.try_recv().expect("close delivered");
        assert_eq!(
            (request.code, request.reason.as_str()),
            (4000, "kicked by operator")
        );
        assert!(
            !registry.close(1, 4000, "again"),
            "a second close is a no-op"
        );
    }
}
