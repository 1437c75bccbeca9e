//! Unit tests of `target`.

use super::*;

#[test]
fn invalid_urls_are_rejected_with_a_reason() {
    for bad in [
        "foo",
        "https://127.0.0.2:1234/x",
        "ws://",
        "",
        "   ",
        "ws:///path",
        "http://x",
    ] {
        match Target::new(bad) {
            Err(Error::InvalidUrl { .. }) => {}
            other => panic!("{bad:?} gave {other:?}"),
        }
    }
}

#[test]
fn valid_urls_pass() {
    for good in [
        "ws://127.0.0.1:9000/v2/heartbeat/",
        "wss://example.com",
        "WS://[::1]:80/",
    ] {
        Target::new(good).unwrap();
    }
}

#[test]
fn redaction_hides_userinfo_and_query() {
    let uri: Uri = "ws://user:pass@host:81/p?token=abc".parse().unwrap();
    let s = redact_uri(&uri);
    assert_eq!(s, "ws://host:81/p?<redacted>");
    let err = Target::new("https://user:pw@host/?token=abc").unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("pw") && !text.contains("abc"), "{text}");
}

#[test]
fn a_password_stays_out_of_the_error_of_a_url_that_does_not_parse() {
    for (bad, printed) in [
        ("ws://user:SECRET@ho st/", "ws://<redacted>@ho st/"),
        ("ws://user:SECRET@[::1/", "ws://<redacted>@[::1/"),
        ("ws://user:SECRET@/x", "ws://<redacted>@/x"),
        (
            "wss://user:SECRET@ho st/?token=SECRET",
            "wss://<redacted>@ho st/?<redacted>",
        ),
    ] {
        let err = Target::new(bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidUrl { url, .. } if url == printed),
            "{bad}: {err:?}"
        );
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SECRET") && !text.contains("user"), "{text}");
    }
}

#[test]
fn closure_urls_are_checked_too() {
    let t = Target::from_fn(|| Ok("http://localhost/".into_client_request()?));
    assert!(matches!(t.request(), Err(Error::InvalidUrl { .. })));
}

#[tokio::test]
async fn async_hook_urls_are_checked_too() {
    let t = Target::from_async_fn(|_| async { Ok("http://localhost/".into_client_request()?) });
    assert!(matches!(t.resolve().await, Err(Error::InvalidUrl { .. })));
}

#[tokio::test]
async fn an_async_hook_is_told_the_attempt_and_the_previous_failure() {
    let t = Target::from_async_fn(|attempt: Attempt| async move {
        let mut request = "ws://localhost/".into_client_request()?;
        let seen = format!(
            "{} {:?} {}",
            attempt.number(),
            attempt.kind(),
            attempt.after_unauthorized()
        );
        request.headers_mut().insert("x-seen", seen.parse()?);
        Ok(request)
    });
    let seen = |r: ClientRequest| r.headers()["x-seen"].to_str().unwrap().to_owned();
    assert_eq!(seen(t.resolve().await.unwrap()), "0 First false");
    let forbidden = Error::Rejected {
        status: http::StatusCode::FORBIDDEN,
        retry_after: None,
        retryable: false,
    };
    let retry = t
        .clone()
        .with_kind(DialKind::Reconnect)
        .with_attempt(4)
        .with_previous_failure(Some(Arc::new(forbidden)));
    assert_eq!(seen(retry.resolve().await.unwrap()), "4 Reconnect true");
    let timed_out = retry.with_previous_failure(Some(Arc::new(Error::Timeout)));
    assert_eq!(
        seen(timed_out.resolve().await.unwrap()),
        "4 Reconnect false"
    );
}

#[tokio::test]
async fn a_hook_error_is_a_request_error_unless_it_is_one_of_ours() {
    let failing = |make: fn() -> BoxError| {
        Target::from_async_fn(move |_| async move { Err::<ClientRequest, _>(make()) })
    };
    let own = failing(|| "identity provider down".into()).resolve().await;
    assert!(matches!(own, Err(Error::Request(_))), "{own:?}");
    let ours = failing(|| Box::new(Error::Timeout)).resolve().await;
    assert!(matches!(ours, Err(Error::Timeout)), "{ours:?}");
    let io = failing(|| Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)))
        .resolve()
        .await;
    assert!(matches!(&io, Err(e) if e.is_retryable()), "{io:?}");
}

#[tokio::test]
async fn a_headers_hook_adds_to_the_base_request_and_replaces_same_names() {
    let base = Target::new("ws://user:pw@localhost/p?token=abc")
        .unwrap()
        .header("authorization", "Bearer old")
        .unwrap()
        .header("x-client", "demo")
        .unwrap();
    let t = base.with_headers_hook(headers_hook(|attempt: Attempt| async move {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer new-{}", attempt.number());
        headers.insert("authorization", value.parse()?);
        Ok(headers)
    }));
    let request = t.clone().with_attempt(2).resolve().await.unwrap();
    let auth: Vec<_> = request.headers().get_all("authorization").iter().collect();
    assert_eq!(auth, ["Bearer new-2"]);
    assert_eq!(request.headers()["x-client"], "demo");
    assert!(matches!(t.request(), Err(Error::Request(_))));
    let debug = format!("{t:?}");
    assert!(debug.contains("ws://localhost/p?<redacted>"), "{debug}");
    assert!(debug.contains("headers_hook"), "{debug}");
    for secret in ["pw", "abc", "old", "demo"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn an_async_target_has_no_synchronous_request() {
    let t = Target::from_async_fn(|_| async { Ok("ws://localhost/".into_client_request()?) });
    assert!(matches!(t.request(), Err(Error::Request(_))));
    assert!(matches!(t.header("x", "y"), Err(Error::Request(_))));
}
