//! The server's Close frame: its code decides, by the close policy's table, whether the
//! sink reconnects at once, reconnects after its backoff, or stops for good (reported
//! once, then the stream ends).

use std::time::Duration;

use futures::StreamExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use ws_reconnect::{CloseAction, ConnectionState, DialKind, Error, Message, ReconnectingSink};

use crate::support::*;

fn close_with(code: u16) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: "bye".into(),
    }))
}

#[tokio::test]
async fn each_close_code_of_the_table_is_followed() {
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 4000,
    ] {
        let script = mock::Script::new();
        // Healthy at once: only the close policy decides whether the backoff starts over.
        let mut ws = mock::sink(
            &script,
            ReconnectingSink::builder().healthy_after(Duration::ZERO),
        );
        ws.dial().await.unwrap();
        script.push(0, close_with(code));
        let expected = ws_reconnect::ClosePolicy::default().decide(Some(code));
        match expected {
            CloseAction::Stop => {
                let item = timeout(BOUND, ws.next()).await.unwrap();
                match item {
                    Some(Err(Error::ClosedByServer { code: c, reason })) => {
                        assert_eq!((c, reason.as_str()), (code, "bye"));
                    }
                    other => panic!("{code}: {other:?}"),
                }
                assert!(
                    timeout(BOUND, ws.next()).await.unwrap().is_none(),
                    "{code}: the stream ends"
                );
                assert_eq!(script.connects(), 1, "{code}: reconnected");
                assert!(matches!(
                    *ws.state().borrow(),
                    ConnectionState::GaveUp { .. }
                ));
            }
            action => {
                script.push(0, Message::text("unused")); // queued behind the Close
                let _ = timeout(Duration::from_millis(50), ws.next()).await;
                assert_eq!(script.connects(), 2, "{code}: not reconnected");
                let targets = script.targets.lock().unwrap().clone();
                assert_eq!(targets[1].0, DialKind::Reconnect);
                let reset = targets[1].1;
                // 1012/1013 wait for the backoff: the target says not to start it over.
                assert_eq!(reset, action == CloseAction::Reconnect, "{code}");
            }
        }
    }
}
