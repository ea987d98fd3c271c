//! Each node's own figures, from its `/metrics`: the CPU time of its process, its peak RSS, the
//! size of its data directory, and its Raft log's fsync histogram.

use std::time::Duration;

use serde_json::{Value, json};

/// How long a node's `/metrics` may take to answer the benchmark.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node's `/metrics` says about its process, its data directory and its log's fsyncs.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeStats {
    /// CPU time of the node's process so far.
    pub(crate) cpu_seconds: f64,
    /// The most memory the node's process has held.
    pub(crate) peak_rss_bytes: f64,
    /// Bytes in the node's data directory.
    pub(crate) data_bytes: f64,
    /// The Raft log's fsync histogram: (upper bound in seconds, fsyncs that took at most that
    /// long), ascending, `+Inf` last. A commit waits for its fsync, so a slow one holds every
    /// dispatch and update behind it.
    pub(crate) fsyncs: Vec<(f64, f64)>,
}

impl NodeStats {
    /// Fsyncs of the log so far.
    pub(crate) fn fsyncs(&self) -> f64 {
        self.fsyncs.last().map_or(0.0, |b| b.1)
    }

    /// Fsyncs that took over 5 ms.
    pub(crate) fn slow_fsyncs(&self) -> f64 {
        self.fsyncs() - self.fsyncs.iter().find(|b| b.0 >= 0.005).map_or(0.0, |b| b.1)
    }
}

/// Fsyncs between two readings of a histogram: how many took over 5 ms, and the upper bound of
/// the slowest one's bucket in ms (none if there were none; infinite, null in JSON, if it took
/// longer than the last bound, an hour).
pub(crate) fn fsyncs_between(before: &NodeStats, after: &NodeStats) -> (f64, Option<f64>) {
    let count = |s: &NodeStats, le: f64| s.fsyncs.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
    let total = after.fsyncs() - before.fsyncs();
    let slowest = (total > 0.0)
        .then(|| after.fsyncs.iter().find(|b| b.1 - count(before, b.0) >= total).map(|b| b.0 * 1000.0))
        .flatten();
    (after.slow_fsyncs() - before.slow_fsyncs(), slowest)
}

/// Each node's figures; none for a node that does not answer within [`STATS_TIMEOUT`] (killed, or
/// frozen, which would otherwise hold the once-a-second sampling for the client's whole timeout).
pub(crate) async fn node_stats(client: &reqwest::Client, urls: &[String]) -> Vec<Option<NodeStats>> {
    let mut out = Vec::new();
    for url in urls {
        let text = match client.get(format!("{url}/metrics")).timeout(STATS_TIMEOUT).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push(parse_node_stats(&text));
    }
    out
}

/// A node's figures from the text of its `/metrics`; none without the process and data ones.
pub(crate) fn parse_node_stats(text: &str) -> Option<NodeStats> {
    let value = |name: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    let fsyncs: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let (le, count) = l.strip_prefix("overture_raft_fsync_seconds_bucket{le=\"")?.split_once("\"} ")?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, count.trim().parse().ok()?))
        })
        .collect();
    Some(NodeStats {
        cpu_seconds: value("process_cpu_seconds_total")?,
        peak_rss_bytes: value("process_resident_memory_max_bytes")?,
        data_bytes: value("overture_data_dir_bytes")?,
        fsyncs,
    })
}

/// Per node: CPU seconds the run cost it, its peak RSS, bytes its data directory grew per
/// workflow, and its log's fsyncs (all, and those over 5 ms). A node that did not answer (killed
/// during the run) has no figures.
pub(crate) fn node_report(
    urls: &[String],
    before: &[Option<NodeStats>],
    after: &[Option<NodeStats>],
    workflows: usize,
) -> Value {
    let nodes: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| match (before.get(i).and_then(Option::as_ref), after.get(i).and_then(Option::as_ref)) {
            (Some(b), Some(a)) => {
                let (slow, slowest) = fsyncs_between(b, a);
                json!({
                "url": url,
                "cpuSeconds": a.cpu_seconds - b.cpu_seconds,
                "peakRssBytes": a.peak_rss_bytes,
                "dataBytesPerWorkflow": (a.data_bytes - b.data_bytes) / workflows as f64,
                "logFsyncs": a.fsyncs() - b.fsyncs(),
                "logFsyncsOver5Ms": slow,
                "slowestLogFsyncMs": slowest,
                })
            }
            _ => json!({"url": url}),
        })
        .collect();
    Value::Array(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fsyncs_come_from_the_nodes_histogram() {
        let metrics = |buckets: [u32; 4]| {
            format!(
                "process_cpu_seconds_total 2.5\nprocess_resident_memory_max_bytes 1000\noverture_data_dir_bytes 7\n\
                 overture_raft_fsync_seconds_bucket{{le=\"0.001\"}} {}\n\
                 overture_raft_fsync_seconds_bucket{{le=\"0.005\"}} {}\n\
                 overture_raft_fsync_seconds_bucket{{le=\"0.25\"}} {}\n\
                 overture_raft_fsync_seconds_bucket{{le=\"+Inf\"}} {}\n\
                 overture_raft_fsync_seconds_count {}\n",
                buckets[0], buckets[1], buckets[2], buckets[3], buckets[3]
            )
        };
        let before = parse_node_stats(&metrics([10, 12, 12, 12])).expect("figures");
        assert_eq!((before.cpu_seconds, before.fsyncs(), before.slow_fsyncs()), (2.5, 12.0, 0.0));
        // Five more fsyncs, one of them between 5 and 250 ms.
        let after = parse_node_stats(&metrics([13, 16, 17, 17])).expect("figures");
        assert_eq!(fsyncs_between(&before, &after), (1.0, Some(250.0)));
        // Only fast ones: the slowest is under the first bound whose count took them all.
        let fast = parse_node_stats(&metrics([12, 16, 16, 16])).expect("figures");
        assert_eq!(fsyncs_between(&before, &fast), (0.0, Some(5.0)));
        assert_eq!(fsyncs_between(&before, &before), (0.0, None));
        // A node without the process figures (not Overture, or not up yet) has none.
        assert!(parse_node_stats("overture_data_dir_bytes 7\n").is_none());
    }
}
