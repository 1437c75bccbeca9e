//! The sink's lifecycle as a user sees it: built, dialed, connected, reconnecting,
//! closed or given up, and dropped. What `dial()` waits for and refuses, what `state()`
//! publishes at each step, and that dropping the sink or any of its futures leaves
//! nothing running and nothing lying.
//!
//! | file | what it holds |
//! |---|---|
//! | `dial.rs` | building and dialing: bad URLs and ports, writes before `dial()`, `dial()` while reconnecting |
//! | `state.rs` | the published state: transitions in order, the last failure, `GaveUp` left by `dial()`, `Closed` |
//! | `cancel.rs` | dropping the sink, its halves, and every future at random points |
//!
//! `close()` is in `tests/close`; reconnection and failures for good in
//! `tests/reconnection`. Every await that could hang is bounded by
//! [`BOUND`](support::BOUND).

#[path = "../support/mod.rs"]
mod support;

mod cancel;
mod dial;
mod state;
