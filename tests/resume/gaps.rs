//! What cannot be delivered is told once, exactly: a session that expired while the
//! client was away, a replay buffer that overflowed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::SinkExt;
use ws_reconnect::server::{ServerConfig, SessionError};
use ws_reconnect::testing::{Fault, FaultProxy};
use ws_reconnect::{Error, GapReason, Message, ResumeConfig};

use crate::harness::{client, next_item, number, App, Harness, Ledger};
use crate::support::eventually;

/// Reads numbered messages until `done(ledger)`, recording gaps; panics on anything else.
async fn read_until(
    ws: &mut ws_reconnect::ResumingSink,
    ledger: &mut Ledger,
    mut done: impl FnMut(&Ledger) -> bool,
) {
    while !done(ledger) {
        match next_item(ws).await {
            Some(Ok(message)) => ledger.record(number(&message, "s")),
            Some(Err(Error::Gap(gap))) => ledger.gap(gap),
            other => panic!("expected a message or a gap, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_back_after_its_session_expired_gets_one_gap_then_carries_on() {
    let ttl = Duration::from_millis(200);
    let harness = Harness::start(
        ServerConfig::default().session_ttl(ttl),
        App::Numbered {
            send: u64::MAX,
            pace: Some(Duration::from_millis(5)),
        },
    )
    .await;
    let proxy = FaultProxy::start(harness.addr).await.unwrap();
    let mut ws = client(&format!("ws://{}/", proxy.addr()), ResumeConfig::default()).await;
    let mut before = Ledger::new();
    read_until(&mut ws, &mut before, |l| l.next > 50).await;

    // The client is cut off for longer than the session lives.
    proxy.inject(Fault::Refuse(ttl * 10));
    proxy.inject(Fault::Reset);
    eventually("the session expires", || {
        harness.server.stats().expired == 1
    })
    .await;
    // The old session's application was told, and its sends now fail.
    eventually("the old session's stream ends", || {
        harness.seen.ended.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        harness.seen.errors.lock().unwrap().as_slice(),
        &[SessionError::Expired]
    );
    let sent_by_the_old_session = harness.seen.sent.load(Ordering::SeqCst);

    // Back: what arrived before the cut, then one gap, then the new session's messages.
    let gap = loop {
        match next_item(&mut ws).await {
            Some(Ok(message)) => before.record(number(&message, "s")),
            Some(Err(Error::Gap(gap))) => break gap,
            other => panic!("expected a message or a gap, got {other:?}"),
        }
    };
    assert!(
        before.missing.is_empty() && before.duplicates == 0,
        "{before:?}"
    );
    assert_eq!(gap.reason, GapReason::Expired);
    assert!(gap.session_replaced());
    assert_eq!(
        gap.from, before.next,
        "the gap starts where the messages stopped"
    );
    assert_eq!(
        gap.to,
        Some(sent_by_the_old_session + 1),
        "the gap ends where the old session stopped: exact, from its tombstone"
    );
    assert!(gap.len().unwrap() > 0);
    let mut after = Ledger::new();
    read_until(&mut ws, &mut after, |l| l.next > 50).await;
    assert!(after.missing.is_empty() && after.duplicates == 0 && after.gaps.is_empty());
    let stats = ws.resume_stats();
    assert_eq!((stats.sessions, stats.gaps), (2, 1), "{stats:?}");
    assert_eq!(harness.seen.sessions(), 2);
}

#[tokio::test]
async fn an_overflow_while_the_client_is_away_is_one_gap() {
    let n = 2000;
    // A small replay buffer, and the default overflow policy: drop the oldest.
    let harness = Harness::start(
        ServerConfig::default().max_unacked_frames(100),
        App::Numbered {
            send: n,
            pace: Some(Duration::from_millis(2)),
        },
    )
    .await;
    let proxy = FaultProxy::start(harness.addr).await.unwrap();
    let mut ws = client(&format!("ws://{}/", proxy.addr()), ResumeConfig::default()).await;
    let mut ledger = Ledger::new();
    read_until(&mut ws, &mut ledger, |l| l.next > 100).await;

    proxy.inject(Fault::Refuse(Duration::from_millis(500)));
    proxy.inject(Fault::Reset);
    // The application sends on while the client is away: far more than the buffer holds.
    eventually("the application sent everything", || {
        harness.seen.sent.load(Ordering::SeqCst) == n
    })
    .await;

    read_until(&mut ws, &mut ledger, |l| l.next > n).await;
    assert!(
        ledger.missing.is_empty(),
        "lost without a gap: {:?}",
        ledger.missing
    );
    assert_eq!(ledger.duplicates, 0);
    assert_eq!(ledger.gaps.len(), 1, "{:?}", ledger.gaps);
    let gap = ledger.gaps[0];
    assert_eq!(gap.reason, GapReason::Overflow);
    assert!(!gap.session_replaced());
    assert_eq!(gap.to, Some(n + 1 - 100), "the buffer kept the last 100");
    let stats = ws.resume_stats();
    assert_eq!(stats.sessions, 1, "the session went on: {stats:?}");
    assert!(stats.resumed >= 1);
    ws.send(Message::text("c1")).await.unwrap();
}
