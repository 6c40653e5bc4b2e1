//! Token buckets keyed by organisation: how many answers to strangers, and how many invitation
//! emails and SMS, one organisation may cause per period. A bucket holds up to `burst` tokens
//! and gains `per_period` tokens evenly over `period`; one action takes one token. Keys are
//! organisation ids, which only the operator creates, so the map stays as small as the
//! organisations are few.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A rate: `per_period` actions per `period`, at most `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per period.
    pub per_period: u32,
    /// The period.
    pub period: Duration,
    /// Most tokens saved up (a burst).
    pub burst: u32,
}

impl Rate {
    /// The rate as people read it: "100 per hour (bursts of 20)".
    pub fn describe(&self) -> String {
        let period = match self.period.as_secs() {
            60 => "minute".to_string(),
            3600 => "hour".to_string(),
            secs => format!("{secs} s"),
        };
        format!(
            "{} per {period} (bursts of {})",
            self.per_period, self.burst
        )
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub(crate) fn new(rate: Rate) -> RateLimiter {
        RateLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token of `key`'s bucket; when there is none, how long until there is.
    pub(crate) fn take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.rate.burst);
        let per_sec = f64::from(self.rate.per_period) / self.rate.period.as_secs_f64().max(1e-3);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else if per_sec <= 0.0 {
            Err(self.rate.period)
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::new(Rate {
            per_period: 60,
            period: Duration::from_secs(60),
            burst: 3,
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take_at("org", start).is_ok());
        }
        let wait = limiter.take_at("org", start).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another key has its own bucket.
        assert!(limiter.take_at("other", start).is_ok());
        // One token a second comes back, never more than the burst.
        assert!(limiter
            .take_at("org", start + Duration::from_secs(1))
            .is_ok());
        assert!(limiter
            .take_at("org", start + Duration::from_secs(1))
            .is_err());
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.take_at("org", later).is_ok());
        }
        assert!(limiter.take_at("org", later).is_err());
    }

    #[test]
    fn a_zero_rate_refuses_after_the_burst() {
        let limiter = RateLimiter::new(Rate {
            per_period: 0,
            period: Duration::from_secs(3600),
            burst: 1,
        });
        assert!(limiter.take("org").is_ok());
        assert_eq!(limiter.take("org"), Err(Duration::from_secs(3600)));
        assert_eq!(
            limiter.rate.describe(),
            "0 per hour (bursts of 1)".to_string()
        );
    }
}
