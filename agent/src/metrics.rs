//! Prometheus metrics for `/metrics` (OpenMetrics text): envelopes in, forwards queued,
//! messages delivered out, live connections, refusals by problem code (and by the reason a
//! connection was refused or closed: `connection.limit`, `live.limit`, `header.timeout`,
//! `request.timeout`, `live.idle`), forwards de-duplicated, messages expired, queue depth,
//! the database pool's figures (PostgreSQL), and the issuer outbox's drops and withheld answers
//! to strangers (registered by the issuer), and the push gateway's wakes by platform and
//! outcome (registered by the gateway).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub code: String,
}

/// The agent's counters and gauges.
pub struct Metrics {
    registry: std::sync::Mutex<Registry>,
    /// Inbound messages handled (HTTP and live sockets).
    pub messages_in: Counter,
    /// Messages queued for phones (forwards and the issuer's hand-overs).
    pub forwards_queued: Counter,
    /// Queued messages handed out by pickup (delivery and live pushes).
    pub messages_out: Counter,
    /// Live sockets open.
    pub live_connections: Gauge,
    /// Messages waiting in all queues (set when rendered).
    pub queue_depth: Gauge,
    /// Refusals by problem code or limit.
    pub refusals: Family<Reason, Counter>,
    /// Forwards (and hand-overs) queued before, not queued again.
    pub forwards_deduplicated: Counter,
    /// Queued messages dropped past the age limit.
    pub messages_expired: Counter,
    /// The database pool (PostgreSQL only; set when rendered): connections open, idle, and
    /// requests waiting for one.
    pub db_pool: Family<PoolLabel, Gauge>,
}

/// Which figure of the database pool a gauge is.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    /// `max`, `open`, `idle` or `waiting`.
    pub state: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lanyard");
        let messages_in = Counter::default();
        let forwards_queued = Counter::default();
        let messages_out = Counter::default();
        let live_connections = Gauge::default();
        let queue_depth = Gauge::default();
        let refusals = Family::<Reason, Counter>::default();
        let forwards_deduplicated = Counter::default();
        let messages_expired = Counter::default();
        let db_pool = Family::<PoolLabel, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "This agent's PostgreSQL pool: max, open, idle, and requests waiting (state label)",
            db_pool.clone(),
        );
        registry.register(
            "forwards_deduplicated",
            "Forwards accepted again without a second queue entry (same forward id)",
            forwards_deduplicated.clone(),
        );
        registry.register(
            "messages_expired",
            "Queued messages dropped for waiting longer than the age limit",
            messages_expired.clone(),
        );
        registry.register(
            "messages_in",
            "DIDComm envelopes accepted at the endpoint or over WebSockets",
            messages_in.clone(),
        );
        registry.register(
            "forwards_queued",
            "Forwarded messages queued durably for a recipient",
            forwards_queued.clone(),
        );
        registry.register(
            "messages_out",
            "Queued messages handed to their recipient (pickup or live delivery)",
            messages_out.clone(),
        );
        registry.register(
            "live_connections",
            "Open live-mode WebSocket connections",
            live_connections.clone(),
        );
        registry.register(
            "queue_depth",
            "Messages waiting in all recipients' queues",
            queue_depth.clone(),
        );
        registry.register(
            "refusals",
            "Inbound messages refused, by Report Problem code",
            refusals.clone(),
        );
        Metrics {
            registry: std::sync::Mutex::new(registry),
            messages_in,
            forwards_queued,
            messages_out,
            live_connections,
            queue_depth,
            refusals,
            forwards_deduplicated,
            messages_expired,
            db_pool,
        }
    }
}

impl Metrics {
    /// Sets the pool gauges from `status`.
    pub fn set_pool(&self, status: crate::postgres::PoolStatus) {
        for (state, value) in [
            ("max", status.max_size),
            ("open", status.size),
            ("idle", status.available),
            ("waiting", status.waiting),
        ] {
            self.db_pool
                .get_or_create(&PoolLabel { state })
                .set(value as i64);
        }
    }

    /// Adds a counter another part of the agent keeps (the issuer's outbox) to `/metrics`.
    pub fn register(&self, name: &str, help: &str, counter: Counter) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(name, help, counter);
    }

    /// Adds a metric (a labelled family) another part of the agent keeps (the push
    /// gateway's wakes) to `/metrics`.
    pub fn register_metric(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .register(name, help, metric);
    }

    /// Counts a refusal under `code`.
    pub fn refused(&self, code: &str) {
        self.refusals
            .get_or_create(&Reason {
                code: code.to_string(),
            })
            .inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
