//! What the sink accepts: never more than its outbox bound holds (`start_send` without
//! `poll_ready` is refused with `NotReady`), and never a Close or a raw frame (refused,
//! not sent, the connection untouched).

use futures::SinkExt;
use tokio::time::timeout;
use ws_reconnect::{Builder, ConfirmBy, Error, Message};

use crate::support::*;

#[tokio::test]
async fn start_send_without_poll_ready_cannot_grow_the_outbox_past_its_bound() {
    let script = mock::Script::new();
    // What the sink holds is counted; the confirmation of what it flushed is not waited
    // for here.
    let builder = Builder::default()
        .max_unflushed_messages(4)
        .confirm_by(ConfirmBy::Flush);
    let mut ws = mock::sink(&script, builder);
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    for i in 0..100 {
        match ws.start_send(Message::text(format!("m{i}"))) {
            Ok(()) => accepted += 1,
            Err(Error::NotReady) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((accepted, refused), (4, 96));
    assert_eq!(ws.undelivered_count(), 4);
    // With poll_ready (SinkExt::send) everything goes through.
    for i in 0..100 {
        ws.send(Message::text(format!("s{i}"))).await.unwrap();
    }
    assert_eq!(ws.undelivered_count(), 0);
}

#[tokio::test]
async fn close_and_frame_messages_are_refused_not_sent() {
    let script = mock::Script::new();
    let mut ws = mock::sink(&script, Builder::default());
    timeout(BOUND, ws.dial()).await.unwrap().unwrap();
    assert!(matches!(
        ws.send(Message::Close(None)).await,
        Err(Error::UnsupportedMessage)
    ));
    assert!(ws.is_connected());
}
