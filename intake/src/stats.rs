//! The intake's own metrics, served at `/metrics` in Prometheus's text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub handler: &'static str,
    pub code: u16,
}

pub struct Stats {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub samples_stored: Counter,
    pub samples_duplicate: Counter,
    pub series_created: Counter,
    pub exemplars_ignored: Counter,
    pub histograms_ignored: Counter,
    pub metadata_stored: Counter,
    pub read_samples: Counter,
    pub batches: Counter,
    pub batch_seconds: Histogram,
    pub inflight: Gauge,
    pub series_cached: Gauge,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        let mut registry = Registry::with_prefix("bidim_intake");
        let s = Stats {
            requests: Family::default(),
            samples_stored: Counter::default(),
            samples_duplicate: Counter::default(),
            series_created: Counter::default(),
            exemplars_ignored: Counter::default(),
            histograms_ignored: Counter::default(),
            metadata_stored: Counter::default(),
            read_samples: Counter::default(),
            batches: Counter::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            inflight: Gauge::default(),
            series_cached: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "HTTP requests by handler and status code",
            s.requests.clone(),
        );
        registry.register(
            "samples_stored",
            "Samples committed to the points table",
            s.samples_stored.clone(),
        );
        registry.register(
            "samples_duplicate",
            "Samples of retried requests already stored (not stored again)",
            s.samples_duplicate.clone(),
        );
        registry.register(
            "series_created",
            "Series rows created",
            s.series_created.clone(),
        );
        registry.register(
            "exemplars_ignored",
            "Exemplars received and not stored",
            s.exemplars_ignored.clone(),
        );
        registry.register(
            "histograms_ignored",
            "Native histogram samples received and not stored",
            s.histograms_ignored.clone(),
        );
        registry.register(
            "metadata_stored",
            "Metric metadata entries stored",
            s.metadata_stored.clone(),
        );
        registry.register(
            "read_samples",
            "Samples returned by remote_read",
            s.read_samples.clone(),
        );
        registry.register("batches", "Write transactions committed", s.batches.clone());
        registry.register(
            "batch_seconds",
            "Time to store one batch (COPY and commit)",
            s.batch_seconds.clone(),
        );
        registry.register(
            "inflight_requests",
            "Write requests being decoded or stored",
            s.inflight.clone(),
        );
        registry.register(
            "series_cached",
            "Series ids in the cache",
            s.series_cached.clone(),
        );
        Stats { registry, ..s }
    }

    pub fn count(&self, handler: &'static str, code: u16) {
        self.requests
            .get_or_create(&RequestLabels { handler, code })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
