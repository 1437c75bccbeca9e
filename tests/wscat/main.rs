//! wscat pipes lines to a server and the server's messages back out.

#[path = "../support/mod.rs"]
mod support;
#[path = "../../examples/wscat.rs"]
mod wscat;

use support::{echo, serve, Reply, BOUND};

#[tokio::test]
async fn two_lines_through_an_echo_server() {
    let server = serve(|_| Reply::Upgrade, echo).await;
    let input: &[u8] = b"first line\nsecond line\n";
    let mut output = Vec::new();
    tokio::time::timeout(BOUND, wscat::run(&server.url(), &[], input, &mut output))
        .await
        .expect("wscat hung")
        .expect("wscat failed");
    assert_eq!(
        String::from_utf8(output).unwrap(),
        "first line\nsecond line\n"
    );
}

#[tokio::test]
async fn a_bad_header_is_reported() {
    let input: &[u8] = b"";
    let err = wscat::run("ws://127.0.0.1:1/", &["no colon".into()], input, Vec::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("name: value"), "{err}");
}
