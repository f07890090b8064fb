//! A log-linear latency histogram (microseconds, about 3% relative precision).

/// Values below this are counted exactly, one bucket each.
const LINEAR: u64 = 64;
/// Sub-buckets per power of two above [`LINEAR`].
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: the linear range, then 32 per power of two from 2^6 to 2^63.
const BUCKETS: usize = LINEAR as usize + (64 - 6) * SUB as usize;

/// Counts of values (microseconds) in log-linear buckets, with the exact maximum.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= 6
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    LINEAR as usize + (exp as usize - 6) * SUB as usize + sub as usize
}

/// The range `[low, high)` of values counted in bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < LINEAR as usize {
        return (i as u64, i as u64 + 1);
    }
    let j = i - LINEAR as usize;
    let exp = (j / SUB as usize) as u32 + 6;
    let sub = (j % SUB as usize) as u64;
    let step = 1u64 << (exp - SUB_BITS);
    let low = (SUB + sub) << (exp - SUB_BITS);
    (low, low.saturating_add(step))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            max: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    /// Adds all of `other`'s counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }

    /// Number of values counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value counted (exact), 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket holding the value of
    /// rank `ceil(q * count)`, never above the maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bounds(i);
                return (low + (high - low - 1) / 2).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS);
            assert!(i >= last, "bucket index must not decrease");
            last = i;
            let (low, high) = bounds(i);
            assert!(
                low <= v && (v < high || high == u64::MAX),
                "{v} in [{low},{high})"
            );
        }
    }

    #[test]
    fn quantiles_are_within_precision() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), 10_000);
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.04, "p50 {p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.04, "p99 {p99}");
        assert_eq!(h.quantile(1.0), 10_000.min(h.quantile(1.0)));
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), 1000);
        assert_eq!(a.quantile(0.0), 10);
        assert_eq!(a.quantile(0.5), 20);
    }
}
