//! The demo's fault server and accounting, exercised through the library: a short demo
//! run whose books must balance.

#[path = "../../examples/demo/faults.rs"]
mod faults;
#[path = "../../examples/demo/run.rs"]
mod run;

use std::sync::Arc;
use std::time::Duration;

use run::{Options, Progress};

fn options(plain: bool, seed: u64) -> Options {
    Options {
        count: 3_000,
        rate: 0,
        faults_per_thousand: 5.0,
        seed,
        plain,
        handle: false,
    }
}

#[tokio::test]
async fn through_a_handle_every_acknowledged_outcome_is_ok_and_was_received() {
    let options = Options {
        handle: true,
        ..options(false, 5)
    };
    let s = tokio::time::timeout(
        Duration::from_secs(60),
        run::run(options, Arc::new(Progress::default())),
    )
    .await
    .expect("demo run hung");
    assert_eq!(s.error, None);
    assert_eq!(s.sent, 3_000);
    assert_eq!(s.confirmed, Some(3_000), "every outcome Ok");
    assert_eq!(s.confirmed_but_lost, 0);
    assert_eq!(s.lost, 0);
    assert!(s.reconnections >= 3, "only {} faults", s.reconnections);
}

#[tokio::test]
async fn acknowledged_demo_loses_nothing_and_the_books_balance() {
    for seed in [1, 2, 3] {
        let s = tokio::time::timeout(
            Duration::from_secs(60),
            run::run(options(false, seed), Arc::new(Progress::default())),
        )
        .await
        .expect("demo run hung");
        assert_eq!(s.error, None, "seed {seed}");
        assert_eq!(s.sent, 3_000);
        assert_eq!(
            s.sent,
            s.received + s.lost,
            "seed {seed}: the books do not balance"
        );
        assert_eq!(s.lost, 0, "seed {seed}: acknowledged mode lost messages");
        assert!(
            s.reconnections >= 3,
            "seed {seed}: only {} faults",
            s.reconnections
        );
        assert_eq!(
            s.hellos,
            s.reconnections + 1,
            "seed {seed}: on_connect not on every connection"
        );
        assert!(!s.broke_the_promise());
    }
}

#[tokio::test]
async fn plain_demo_balances_and_loses_only_to_resets() {
    let s = tokio::time::timeout(
        Duration::from_secs(60),
        run::run(options(true, 4), Arc::new(Progress::default())),
    )
    .await
    .expect("demo run hung");
    assert_eq!(s.error, None);
    assert_eq!(s.sent, s.received + s.lost);
    if s.resets == 0 {
        assert_eq!(
            s.lost, 0,
            "graceful closes alone must not lose flushed messages"
        );
    }
    assert!(
        !s.broke_the_promise(),
        "plain mode promises nothing for flushed messages"
    );
}
