//! Triton's statistics extension: per loaded model instance, counts and
//! cumulative durations of each stage a request goes through, recorded
//! with relaxed atomics on the inference path (a few adds per request; the
//! per-batch-size table takes a short lock once per model run).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mlserver_types::triton::{
    BatchStatistics, InferStatistics, ModelStatistics, StatisticDuration,
};

/// A count and a total duration.
#[derive(Default)]
struct Stage {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Stage {
    fn add(&self, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.ns.fetch_add(nanos(took), Ordering::Relaxed);
    }

    fn get(&self) -> StatisticDuration {
        StatisticDuration {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// How long a prediction waited and ran where it was executed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PredictTiming {
    /// Waiting: in an adaptive batch, for an inference worker.
    pub(crate) queue: Duration,
    /// In the runtime's `predict`.
    pub(crate) infer: Duration,
}

/// One loaded instance's statistics.
#[derive(Default)]
pub(crate) struct Statistics {
    success: Stage,
    fail: Stage,
    queue: Stage,
    compute_input: Stage,
    compute_infer: Stage,
    compute_output: Stage,
    cache_hit: Stage,
    cache_miss: Stage,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    last_inference_ms: AtomicU64,
    /// Executed batch size -> [input, infer, output].
    batches: Mutex<BTreeMap<u64, [(u64, u64); 3]>>,
}

impl Statistics {
    /// A request's end: `took` from arrival, `rows` inferences.
    pub(crate) fn finished(&self, took: Duration, rows: u64, ok: bool) {
        if ok {
            self.success.add(took);
            self.inference_count.fetch_add(rows, Ordering::Relaxed);
        } else {
            self.fail.add(took);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.store(now, Ordering::Relaxed);
    }

    /// A request that went the whole way: its inputs prepared, its wait
    /// and run (each request of a batch counts the whole run), its outputs
    /// completed.
    pub(crate) fn computed(&self, input: Duration, timing: PredictTiming, output: Duration) {
        self.compute_input.add(input);
        self.queue.add(timing.queue);
        self.compute_infer.add(timing.infer);
        self.compute_output.add(output);
    }

    /// Answered from the cache, or looked up there in vain.
    pub(crate) fn cache_lookup(&self, took: Duration, hit: bool) {
        if hit {
            self.cache_hit.add(took)
        } else {
            self.cache_miss.add(took)
        }
    }

    /// One run of the model over `batch_size` rows.
    pub(crate) fn executed(&self, batch_size: u64, infer: Duration) {
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let entry = batches.entry(batch_size).or_default();
        entry[1].0 += 1;
        entry[1].1 += nanos(infer);
    }

    /// Input and output work of a request run on its own, at its size.
    pub(crate) fn executed_alone(&self, batch_size: u64, input: Duration, output: Duration) {
        let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
        let entry = batches.entry(batch_size).or_default();
        entry[0].0 += 1;
        entry[0].1 += nanos(input);
        entry[2].0 += 1;
        entry[2].1 += nanos(output);
    }

    /// The figures now, as Triton reports them. A model without a version
    /// reports version "1": Triton's versions are numbers, and its tools
    /// parse them (perf_analyzer aborts on an empty one).
    pub(crate) fn snapshot(&self, name: &str, version: Option<&str>) -> ModelStatistics {
        let duration = |(count, ns): (u64, u64)| StatisticDuration { count, ns };
        let batch_stats = self
            .batches
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(size, [input, infer, output])| BatchStatistics {
                batch_size: *size,
                compute_input: duration(*input),
                compute_infer: duration(*infer),
                compute_output: duration(*output),
            })
            .collect();
        ModelStatistics {
            name: name.to_owned(),
            version: version.unwrap_or("1").to_owned(),
            last_inference: self.last_inference_ms.load(Ordering::Relaxed),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            inference_stats: InferStatistics {
                success: self.success.get(),
                fail: self.fail.get(),
                queue: self.queue.get(),
                compute_input: self.compute_input.get(),
                compute_infer: self.compute_infer.get(),
                compute_output: self.compute_output.get(),
                cache_hit: self.cache_hit.get(),
                cache_miss: self.cache_miss.get(),
            },
            batch_stats,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up() {
        let s = Statistics::default();
        let ms = Duration::from_millis;
        s.computed(
            ms(1),
            PredictTiming {
                queue: ms(2),
                infer: ms(3),
            },
            ms(1),
        );
        s.executed(4, ms(3));
        s.executed_alone(4, ms(1), ms(1));
        s.finished(ms(7), 4, true);
        s.finished(ms(1), 4, false);
        let snap = s.snapshot("m", None);
        assert_eq!(snap.version, "1");
        assert_eq!(snap.inference_count, 4);
        assert_eq!(snap.execution_count, 1);
        let st = &snap.inference_stats;
        assert_eq!((st.success.count, st.success.ns), (1, 7_000_000));
        assert_eq!((st.fail.count, st.fail.ns), (1, 1_000_000));
        assert_eq!(st.queue.ns, 2_000_000);
        assert_eq!(st.compute_infer.ns, 3_000_000);
        assert_eq!(snap.batch_stats.len(), 1);
        assert_eq!(snap.batch_stats[0].batch_size, 4);
        assert_eq!(snap.batch_stats[0].compute_infer.count, 1);
        assert!(snap.last_inference > 1_600_000_000_000);
    }
}
