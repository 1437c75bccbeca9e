//! Reconnection: the sink comes back after every way a connection can end, no sooner
//! than its backoff allows (at once after a productive connection), within the
//! reconnection limit, and a failure for good is terminal until `dial()`.
//!
//! | file | what it holds |
//! |---|---|
//! | `pacing.rs` | a property test over random events on paused time: no attempt closer than the backoff unless `dial()` asked, none after a failure for good, for the sink and for the handle |
//! | `backoff.rs` | immediate reconnection after a productive connection; growing delays against servers that drop or close at once; the reconnect jitter |
//! | `for_good.rs` | giving up (a status not retried, the backoff out of time, the connect timeout) and what a failure for good means for writes, reads and `dial()` |
//! | `limit.rs` | the reconnection limit: none by default, a limit of 0, the sliding window's refusals |
//! | `halves.rs` | the writer and the reader woken by one reconnection; split halves share it |
//! | `crash.rs` | a server process killed (SIGKILL) and restarted on its port (`server.py`) |
//!
//! The backoff and limit layers on their own are in `tests/layers`. Every await that
//! could hang is bounded by [`BOUND`](support::BOUND).

#[path = "../support/mod.rs"]
mod support;

mod backoff;
mod crash;
mod for_good;
mod halves;
mod limit;
mod pacing;
