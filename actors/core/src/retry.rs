//! Retry delays, as Conductor computes them.

use crate::dsl::{RetryLogic, TaskDef};

/// Seconds to wait before retrying a task whose failed attempt had `retry_count` earlier retries.
///
/// FIXED: `d`; LINEAR_BACKOFF: `d × backoffScaleFactor × (r + 1)`; EXPONENTIAL_BACKOFF: `d × 2^r`.
/// An overflowing product becomes `i32::MAX` (Conductor's `Integer.MAX_VALUE`), then the result is
/// capped by `maxRetryDelaySeconds` when that is positive.
pub fn delay_seconds(def: &TaskDef, retry_count: i32) -> i64 {
    let d = i64::from(def.retry_delay_seconds.max(0));
    let r = i64::from(retry_count.max(0));
    let raw = match def.retry_logic {
        RetryLogic::Fixed => Some(d),
        RetryLogic::LinearBackoff => {
            d.checked_mul(i64::from(def.backoff_scale_factor.max(1))).and_then(|x| x.checked_mul(r + 1))
        }
        RetryLogic::ExponentialBackoff => {
            u32::try_from(r).ok().and_then(|r| 2i64.checked_pow(r)).and_then(|p| d.checked_mul(p))
        }
    };
    let delay = raw.filter(|x| *x <= i64::from(i32::MAX)).unwrap_or(i64::from(i32::MAX));
    if def.max_retry_delay_seconds > 0 { delay.min(i64::from(def.max_retry_delay_seconds)) } else { delay }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(logic: RetryLogic, delay: i32, scale: i32, max: i32) -> TaskDef {
        let mut d = TaskDef::with_defaults("t");
        d.retry_logic = logic;
        d.retry_delay_seconds = delay;
        d.backoff_scale_factor = scale;
        d.max_retry_delay_seconds = max;
        d
    }

    #[test]
    fn delays_follow_conductor_formulas() {
        let cases = [
            (RetryLogic::Fixed, 5, 1, 0, [5, 5, 5, 5]),
            (RetryLogic::LinearBackoff, 2, 3, 0, [6, 12, 18, 24]),
            (RetryLogic::ExponentialBackoff, 1, 1, 0, [1, 2, 4, 8]),
            (RetryLogic::ExponentialBackoff, 1, 1, 5, [1, 2, 4, 5]),
        ];
        for (logic, delay, scale, max, want) in cases {
            let got: Vec<i64> = (0..4).map(|r| delay_seconds(&def(logic, delay, scale, max), r)).collect();
            assert_eq!(got, want, "{logic:?} d={delay} scale={scale} max={max}");
        }
    }

    #[test]
    fn overflow_saturates_at_int_max() {
        assert_eq!(delay_seconds(&def(RetryLogic::ExponentialBackoff, 60, 1, 0), 40), i64::from(i32::MAX));
        assert_eq!(delay_seconds(&def(RetryLogic::ExponentialBackoff, 60, 1, 300), 40), 300);
    }
}
