//! The lag rules, as pure functions of the offsets read from the broker (see `docs/triggers/kafka-lag.md`).

/// Lag of one partition, with the offsets it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: i32,
    /// The group's committed offset (the next message it will read), `None` if it has none.
    pub committed: Option<i64>,
    /// Low watermark: the first offset still retained.
    pub low: i64,
    /// High watermark: the offset the next produced message gets (for the default
    /// `isolation.level=read_committed`, the last stable offset).
    pub high: i64,
    /// Messages the group still has to read in this partition (never negative).
    pub lag: i64,
}

/// Consumer-group lag on one topic: the sum over all its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lag {
    pub total: i64,
    pub partitions: Vec<PartitionLag>,
}

/// Lag of one partition:
///
/// - `high − committed`, where the group has committed an offset;
/// - `high − low` (every message still retained), where it has not;
/// - a committed offset below `low` (retention deleted messages the group never read) counts
///   from `low`: those messages can never be read, so they are not lag;
/// - a committed offset above `high` (possible with transaction markers, compaction or a
///   truncated log) gives 0, never a negative number.
///
/// Negative or inconsistent watermarks (which a broker does not send) are clamped so the result
/// is always between 0 and `high`.
pub fn partition_lag(committed: Option<i64>, low: i64, high: i64) -> i64 {
    let high = high.max(0);
    let low = low.clamp(0, high);
    let from = match committed {
        Some(offset) if offset >= 0 => offset.max(low),
        _ => low,
    };
    high.saturating_sub(from).max(0)
}

/// Lag of every partition and their total (saturating, so a sum can never wrap negative).
/// Partitions are listed in ascending order of their id.
pub fn topic_lag(offsets: impl IntoIterator<Item = (i32, Option<i64>, i64, i64)>) -> Lag {
    let mut partitions: Vec<PartitionLag> = offsets
        .into_iter()
        .map(|(partition, committed, low, high)| PartitionLag {
            partition,
            committed,
            low,
            high,
            lag: partition_lag(committed, low, high),
        })
        .collect();
    partitions.sort_by_key(|p| p.partition);
    let total = partitions
        .iter()
        .fold(0i64, |sum, p| sum.saturating_add(p.lag));
    Lag { total, partitions }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn committed_offset_counts_from_there() {
        assert_eq!(partition_lag(Some(40), 0, 100), 60);
        assert_eq!(partition_lag(Some(100), 0, 100), 0);
    }

    #[test]
    fn no_committed_offset_counts_retained_messages_only() {
        assert_eq!(partition_lag(None, 0, 100), 100);
        // 900 messages were deleted by retention: they cannot be consumed, so they are not lag.
        assert_eq!(partition_lag(None, 900, 1000), 100);
        assert_eq!(partition_lag(None, 1000, 1000), 0);
    }

    #[test]
    fn committed_below_low_watermark_is_clamped_to_it() {
        assert_eq!(partition_lag(Some(10), 500, 800), 300);
    }

    #[test]
    fn committed_above_high_watermark_is_zero_not_negative() {
        assert_eq!(partition_lag(Some(101), 0, 100), 0);
        assert_eq!(partition_lag(Some(i64::MAX), 0, 100), 0);
    }

    #[test]
    fn special_offsets_mean_not_committed() {
        // librdkafka's sentinels (-1 end, -2 beginning, -1001 invalid) never subtract.
        for sentinel in [-1, -2, -1001] {
            assert_eq!(partition_lag(Some(sentinel), 20, 100), 80);
        }
    }

    #[test]
    fn total_sums_partitions_in_order() {
        let lag = topic_lag([(2, Some(5), 0, 5), (0, Some(40), 0, 100), (1, None, 10, 60)]);
        assert_eq!(lag.total, 110);
        let ids: Vec<i32> = lag.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(lag.partitions[1].committed, None);
        assert_eq!(lag.partitions[1].lag, 50);
    }

    #[test]
    fn total_saturates_instead_of_wrapping() {
        let lag = topic_lag([(0, None, 0, i64::MAX), (1, None, 0, i64::MAX)]);
        assert_eq!(lag.total, i64::MAX);
    }

    fn offset() -> impl Strategy<Value = i64> {
        prop_oneof![0i64..1_000_000, -1002i64..0, Just(i64::MAX), Just(i64::MIN)]
    }

    proptest! {
        #[test]
        fn lag_is_never_negative_nor_above_high(c in proptest::option::of(offset()), low in offset(), high in offset()) {
            let lag = partition_lag(c, low, high);
            prop_assert!(lag >= 0);
            prop_assert!(lag <= high.max(0));
        }

        #[test]
        fn lag_is_at_most_the_retained_messages(c in proptest::option::of(0i64..2_000), low in 0i64..1_000, extra in 0i64..1_000) {
            let high = low + extra;
            prop_assert!(partition_lag(c, low, high) <= high - low);
        }

        #[test]
        fn no_commit_equals_a_commit_at_the_low_watermark(low in 0i64..1_000, extra in 0i64..1_000) {
            let high = low + extra;
            prop_assert_eq!(partition_lag(None, low, high), partition_lag(Some(low), low, high));
        }

        #[test]
        fn committing_more_never_raises_lag(c in 0i64..2_000, step in 0i64..500, low in 0i64..1_000, extra in 0i64..1_000) {
            let high = low + extra;
            prop_assert!(partition_lag(Some(c + step), low, high) <= partition_lag(Some(c), low, high));
        }

        #[test]
        fn producing_more_never_lowers_lag(c in proptest::option::of(0i64..2_000), low in 0i64..1_000, extra in 0i64..1_000, more in 0i64..1_000) {
            let high = low + extra;
            prop_assert!(partition_lag(c, low, high + more) >= partition_lag(c, low, high));
        }

        #[test]
        fn total_is_the_sum_of_partitions(parts in proptest::collection::vec((proptest::option::of(0i64..10_000), 0i64..5_000, 0i64..5_000), 0..50)) {
            let offsets = parts.iter().enumerate().map(|(i, &(c, low, extra))| (i as i32, c, low, low + extra));
            let lag = topic_lag(offsets);
            prop_assert_eq!(lag.total, lag.partitions.iter().map(|p| p.lag).sum::<i64>());
            prop_assert_eq!(lag.partitions.len(), parts.len());
        }
    }
}
