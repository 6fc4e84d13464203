//! The per-connection message rate limit (`--rate-limit`, `--rate-burst`):
//! a token bucket, and the "episodes" during which a client is over it.
//!
//! Pure logic on an injected clock: the reader thread asks
//! [`MessageLimit::check`] about each complete client message, and the
//! answer says whether the message goes on to the dialect session or is
//! dropped, and if dropped, whether the client is to be told (the first
//! drop of an episode), left alone (a later one), or disconnected (it keeps
//! going after being told).
//!
//! An episode starts with the first message dropped, and ends once the
//! bucket is full again: the client has slowed down long enough to earn
//! back its whole burst. Ending it any sooner would tell a client that runs
//! just above the rate once per dropped message, which floods the very
//! client that is flooding the server. A client that has more messages
//! dropped in one episode than a whole burst, or a whole second's worth
//! (whichever is more), is not slowing down: it is disconnected.

use std::time::Instant;

use crate::config::Config;
use crate::dialect::Overrun;

/// A token is this many units: refilling at `per_second` tokens a second
/// then adds exactly `per_second` units a nanosecond, in whole numbers.
const UNITS_PER_TOKEN: u64 = 1_000_000_000;

/// A configured rate: tokens per second and the bucket's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Messages a second a client may keep sending.
    pub per_second: u32,
    /// Messages a client may send at once, on top of the rate.
    pub burst: u32,
}

impl Rate {
    /// The rate `config` asks for, or `None` when the limit is off. Without
    /// `--rate-burst` the bucket holds two seconds' worth.
    pub fn from_config(config: &Config) -> Option<Rate> {
        let per_second = config.rate_limit?;
        Some(Rate {
            per_second,
            burst: config.rate_burst.unwrap_or(per_second.saturating_mul(2)),
        })
    }

    /// Messages a client may have dropped in one episode before it counts
    /// as persisting: a whole burst or a whole second's worth, the larger.
    fn allowance(self) -> u32 {
        self.burst.max(self.per_second)
    }
}

/// A token bucket: holds up to `burst` tokens, refills at `per_second`,
/// and each message takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Units a nanosecond (tokens a second).
    refill: u64,
    /// Units when full.
    capacity: u64,
    /// Units now.
    level: u64,
    /// When `level` was last brought up to date.
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate`, as of `now`.
    pub fn new(rate: Rate, now: Instant) -> TokenBucket {
        let capacity = u64::from(rate.burst.max(1)) * UNITS_PER_TOKEN;
        TokenBucket {
            refill: u64::from(rate.per_second),
            capacity,
            level: capacity,
            updated: now,
        }
    }

    /// Takes a token if there is one at `now`; says whether it did.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill_until(now);
        match self.level.checked_sub(UNITS_PER_TOKEN) {
            Some(left) => {
                self.level = left;
                true
            }
            None => false,
        }
    }

    /// Whether the bucket is full at `now`.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill_until(now);
        self.level == self.capacity
    }

    fn refill_until(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated);
        self.updated = self.updated.max(now);
        // Nanoseconds times tokens a second: u128 cannot overflow, and the
        // result is capped before it returns to u64.
        let added = elapsed.as_nanos() * u128::from(self.refill);
        let level = u128::from(self.level) + added;
        self.level = u64::try_from(level.min(u128::from(self.capacity))).unwrap_or(self.capacity);
    }
}

/// What happens to one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: the session handles it.
    Pass,
    /// Over the limit: dropped, and the client is dealt with as this says
    /// (the [`Overrun`] is the dialect's type: its session answers it).
    Drop(Overrun),
}

/// Where a connection stands with its rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Episode {
    /// Within the limit (or back under it, with a full bucket).
    Calm,
    /// Over it since the first drop; `dropped` messages so far.
    Over { dropped: u32 },
}

/// One connection's message rate limit.
#[derive(Debug, Clone)]
pub struct MessageLimit {
    bucket: TokenBucket,
    allowance: u32,
    episode: Episode,
}

impl MessageLimit {
    /// A limit at `rate` for a connection opened at `now`: it may send a
    /// whole burst at once.
    pub fn new(rate: Rate, now: Instant) -> MessageLimit {
        MessageLimit {
            bucket: TokenBucket::new(rate, now),
            allowance: rate.allowance(),
            episode: Episode::Calm,
        }
    }

    /// The verdict on a message received at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.bucket.is_full(now) {
            self.episode = Episode::Calm;
        }
        if self.bucket.take(now) {
            return Verdict::Pass;
        }
        let overrun = match &mut self.episode {
            Episode::Calm => {
                self.episode = Episode::Over { dropped: 1 };
                Overrun::First
            }
            Episode::Over { dropped } => {
                *dropped = dropped.saturating_add(1);
                if *dropped > self.allowance {
                    Overrun::Persisting
                } else {
                    Overrun::Again
                }
            }
        };
        Verdict::Drop(overrun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const FIVE: Rate = Rate {
        per_second: 5,
        burst: 5,
    };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn verdicts(limit: &mut MessageLimit, at: Instant, count: usize) -> Vec<Verdict> {
        (0..count).map(|_| limit.check(at)).collect()
    }

    #[test]
    fn a_full_bucket_lets_a_burst_through_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(FIVE, start);
        assert!((0..5).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        // One token every 200 ms, exactly.
        assert!(!bucket.take(start + ms(199)));
        assert!(bucket.take(start + ms(200)));
        assert!(!bucket.take(start + ms(200)));
        assert!(!bucket.is_full(start + ms(1199)));
        assert!(bucket.is_full(start + ms(1200)));
    }

    #[test]
    fn a_bucket_never_holds_more_than_its_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(FIVE, start);
        let later = start + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 5);
    }

    #[test]
    fn a_clock_that_seems_to_go_back_adds_nothing() {
        let start = Instant::now() + Duration::from_secs(1);
        let mut bucket = TokenBucket::new(FIVE, start);
        assert!((0..5).all(|_| bucket.take(start)));
        assert!(!bucket.take(start - ms(500)));
        assert!(!bucket.take(start + ms(100)));
        assert!(bucket.take(start + ms(200)));
    }

    #[test]
    fn the_first_drop_tells_later_ones_do_not_and_persisting_closes() {
        let start = Instant::now();
        let mut limit = MessageLimit::new(FIVE, start);
        let mut expected = vec![Verdict::Pass; 5];
        expected.push(Verdict::Drop(Overrun::First));
        expected.extend([Verdict::Drop(Overrun::Again); 4]);
        assert_eq!(verdicts(&mut limit, start, 10), expected);
        // Five dropped: as many as a burst. One more is one too many.
        assert_eq!(limit.check(start), Verdict::Drop(Overrun::Persisting));
        assert_eq!(limit.check(start), Verdict::Drop(Overrun::Persisting));
    }

    #[test]
    fn tokens_earned_during_an_episode_pass_without_ending_it() {
        let start = Instant::now();
        let mut limit = MessageLimit::new(FIVE, start);
        verdicts(&mut limit, start, 6);
        assert_eq!(limit.check(start + ms(200)), Verdict::Pass);
        // Still the same episode: the next drop is not told again.
        assert_eq!(limit.check(start + ms(200)), Verdict::Drop(Overrun::Again));
    }

    #[test]
    fn a_full_bucket_ends_the_episode_and_the_next_one_is_told_again() {
        let start = Instant::now();
        let mut limit = MessageLimit::new(FIVE, start);
        verdicts(&mut limit, start, 10);
        let calm = start + ms(1000);
        let mut expected = vec![Verdict::Pass; 5];
        expected.push(Verdict::Drop(Overrun::First));
        assert_eq!(verdicts(&mut limit, calm, 6), expected);
    }

    #[test]
    fn a_client_just_above_the_rate_is_told_once_then_closed() {
        // Six messages a second against five: one too many each second.
        let start = Instant::now();
        let mut limit = MessageLimit::new(FIVE, start);
        let mut told = 0;
        let mut closed_at = None;
        for i in 0..600u64 {
            match limit.check(start + Duration::from_micros(i * 166_667)) {
                Verdict::Pass | Verdict::Drop(Overrun::Again) => {}
                Verdict::Drop(Overrun::First) => told += 1,
                Verdict::Drop(Overrun::Persisting) => {
                    closed_at = Some(i);
                    break;
                }
            }
        }
        assert_eq!(told, 1);
        let closed_at = closed_at.expect("a persistent client is closed");
        assert!(closed_at > 10, "closed after {closed_at} messages");
    }

    #[test]
    fn the_allowance_is_a_burst_or_a_seconds_worth_whichever_is_more() {
        let start = Instant::now();
        let rate = Rate {
            per_second: 10,
            burst: 2,
        };
        let mut limit = MessageLimit::new(rate, start);
        // Two pass, then ten may be dropped: a second's worth.
        let drops = verdicts(&mut limit, start, 12);
        assert_eq!(drops[11], Verdict::Drop(Overrun::Again));
        assert_eq!(limit.check(start), Verdict::Drop(Overrun::Persisting));
    }

    #[test]
    fn the_burst_defaults_to_two_seconds_worth_and_zero_means_off() {
        let config = Config {
            rate_limit: Some(1000),
            ..Config::default()
        };
        assert_eq!(
            Rate::from_config(&config),
            Some(Rate {
                per_second: 1000,
                burst: 2000
            })
        );
        let config = Config {
            rate_burst: Some(7),
            ..config
        };
        assert_eq!(Rate::from_config(&config).map(|r| r.burst), Some(7));
        assert_eq!(Rate::from_config(&Config::default()), None);
    }
}
