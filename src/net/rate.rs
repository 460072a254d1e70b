//! A token bucket: the rate limit a service applies to a connection's requests.

use std::time::{Duration, Instant};

/// Token bucket for B-MSG-6: `rate` tokens, refilled at `rate` per second.
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            tokens: rate,
            rate,
            last: now,
        }
    }

    /// Takes one token, or tells when the next one will be there.
    pub fn take(&mut self, now: Instant) -> Result<(), Instant> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(now + Duration::from_secs_f64(wait))
        }
    }
}
