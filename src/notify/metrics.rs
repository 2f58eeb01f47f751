//! `sgpolicy_notifications_total{sink,result}`: what became of each notification a sink took or
//! would have taken. Registered into the daemon's registry when it wires the notifier in.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkResult {
    sink: String,
    result: String,
}

/// Counts by sink and result: `sent`, `failed` (given up after retries or refused), `dropped` (the
/// sink's queue was full), `suppressed` (a repeated `held` before its `remind` interval).
#[derive(Clone, Debug, Default)]
pub struct NotifyMetrics {
    family: Family<SinkResult, Counter>,
}

impl NotifyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sgpolicy_notifications",
            "Notifications by sink and result (sent, failed, dropped on a full queue, suppressed until their reminder)",
            self.family.clone(),
        );
    }

    pub fn count(&self, sink: &str, result: &str, n: u64) {
        self.family
            .get_or_create(&SinkResult {
                sink: sink.to_string(),
                result: result.to_string(),
            })
            .inc_by(n);
    }

    pub fn get(&self, sink: &str, result: &str) -> u64 {
        self.family
            .get_or_create(&SinkResult {
                sink: sink.to_string(),
                result: result.to_string(),
            })
            .get()
    }
}
