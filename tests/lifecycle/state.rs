#[tokio::test]
async fn the_state_says_why_the_last_attempt_failed() {
    let server = serve(
        |_| Reply::Upgrade,
        |_, mut ws: Ws| async move {
            let _ = ws.next().await;
            let _ = ws.close(None).await;
        },
    )
    .await;
    let mut ws = connect(
        quick().max_interval(Duration::from_millis(50)),
        server.url(),
    )
    .await;
    let state = ws.state();
    ws.send(Message::text("bye")).await.unwrap();
    server.stop().await;
    // The reader notices the Close, reconnects, and meets a closed port again and again.
    let reader = tokio::spawn(async move {
        let _ = timeout(Duration::from_secs(2), ws.next()).await;
        ws
    });
    let mut last = String::new();
    eventually("the state names a failed attempt", || {
        if let ConnectionState::Reconnecting {
            last_error: Some(e),
            ..
        } = &*state.borrow()
        {
            last = e.clone();
            return e.to_lowercase().contains("refused");
        }
        false
    })
    .await;
    assert!(!last.contains("reset"), "{last}");
    let _ws = join(reader, "the reader").await;
}
