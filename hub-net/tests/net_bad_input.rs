//! Hostile and mistaken peers are refused; the node keeps serving.

use std::time::Duration;

use bytes::Bytes;
use hub_net::control::{CtlReply, CtlRequest};
use hub_net::handshake::{self, Hello, Local, Role};
use hub_net::{Client, Hub};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HUB: &str = "bad-input";
const COOKIE: &str = "right-cookie";

async fn node(id: &str, hub: &str, cookie: &str, seed: Option<String>) -> Hub {
    let mut b = Hub::builder(hub)
        .node_id(id)
        .listen("127.0.0.1:0")
        .cookie(cookie.to_string())
        .handshake_timeout(Duration::from_millis(300))
        .max_frame(64 * 1024);
    if let Some(s) = seed {
        b = b.seed(s);
    }
    b.start().await.unwrap()
}

/// The node closes the connection within `within` (EOF or reset).
async fn closed_by_peer(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue, // e.g. the node's own hello
            }
        }
    };
    tokio::time::timeout(within, read).await.unwrap_or(false)
}

async fn still_serves(h: &Hub) {
    let addr = h.local_addr().unwrap().to_string();
    let mut c = Client::connect(&addr, HUB, COOKIE)
        .await
        .expect("a good client still gets in");
    match c
        .request(CtlRequest::Status, Duration::from_secs(2))
        .await
        .unwrap()
    {
        CtlReply::Status(s) => assert_eq!(s.node_id, *h.node_id()),
        other => panic!("unexpected {other:?}"),
    }
}

fn local(hub: &str, cookie: &str, version: u16) -> Local {
    Local {
        hello: Hello {
            version,
            hub_id: hub.into(),
            node_id: "intruder".into(),
            addr: String::new(),
            incarnation: 1,
            role: Role::Node,
            nonce: [0; 32],
        },
        cookie: Bytes::from(cookie.to_string()),
        timeout: Duration::from_secs(2),
    }
}

async fn try_handshake(h: &Hub, l: &Local) -> Result<Hello, hub_net::HandshakeError> {
    let s = TcpStream::connect(h.local_addr().unwrap()).await.unwrap();
    let mut framed =
        tokio_util::codec::Framed::new(s, tokio_util::codec::LengthDelimitedCodec::new());
    handshake::initiate(&mut framed, l).await
}

#[tokio::test]
async fn random_bytes_are_refused() {
    let h = node("a", HUB, COOKIE, None).await;
    let mut s = TcpStream::connect(h.local_addr().unwrap()).await.unwrap();
    s.write_all(&[0, 0, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        .await
        .unwrap();
    assert!(closed_by_peer(&mut s, Duration::from_secs(2)).await);
    still_serves(&h).await;
}

#[tokio::test]
async fn an_oversized_length_prefix_is_refused() {
    let h = node("a", HUB, COOKIE, None).await;
    let mut s = TcpStream::connect(h.local_addr().unwrap()).await.unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 0]).await.unwrap();
    assert!(closed_by_peer(&mut s, Duration::from_secs(2)).await);
    still_serves(&h).await;
}

#[tokio::test]
async fn a_half_open_connection_is_closed_at_the_handshake_timeout() {
    let h = node("a", HUB, COOKIE, None).await;
    let mut s = TcpStream::connect(h.local_addr().unwrap()).await.unwrap();
    let t0 = tokio::time::Instant::now();
    assert!(closed_by_peer(&mut s, Duration::from_secs(3)).await);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    still_serves(&h).await;
}

#[tokio::test]
async fn a_wrong_cookie_hub_id_or_version_is_refused() {
    let h = node("a", HUB, COOKIE, None).await;
    assert!(try_handshake(
        &h,
        &local(HUB, "wrong", hub_core::protocol::PROTOCOL_VERSION)
    )
    .await
    .is_err());
    assert!(try_handshake(
        &h,
        &local("other-hub", COOKIE, hub_core::protocol::PROTOCOL_VERSION)
    )
    .await
    .is_err());
    assert!(try_handshake(&h, &local(HUB, COOKIE, 99)).await.is_err());
    // The right credentials pass the very same path.
    let ok = try_handshake(
        &h,
        &local(HUB, COOKIE, hub_core::protocol::PROTOCOL_VERSION),
    )
    .await;
    assert_eq!(ok.unwrap().node_id, "a");
    still_serves(&h).await;
    let refused = Client::connect(&h.local_addr().unwrap().to_string(), HUB, "wrong").await;
    assert!(
        matches!(refused, Err(hub_net::ClientError::Handshake(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn nodes_with_another_cookie_or_hub_id_never_join() {
    let a = node("a", HUB, COOKIE, None).await;
    let seed = a.local_addr().unwrap().to_string();
    let b = node("b", HUB, "not-the-cookie", Some(seed.clone())).await;
    let c = node("c", "another-hub", COOKIE, Some(seed)).await;
    // Watch for a while (seeds are retried with backoff): nobody joins.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < until {
        for h in [&a, &b, &c] {
            assert_eq!(
                h.nodes().await.unwrap().len(),
                1,
                "{} let a stranger in",
                h.node_id()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    still_serves(&a).await;
}

#[tokio::test]
async fn an_undecodable_frame_after_the_handshake_closes_only_that_connection() {
    let h = node("a", HUB, COOKIE, None).await;
    let s = TcpStream::connect(h.local_addr().unwrap()).await.unwrap();
    let mut framed =
        tokio_util::codec::Framed::new(s, tokio_util::codec::LengthDelimitedCodec::new());
    let mut l = local(HUB, COOKIE, hub_core::protocol::PROTOCOL_VERSION);
    l.hello.role = Role::Client;
    handshake::initiate(&mut framed, &l).await.unwrap();
    use futures_util::SinkExt;
    framed
        .send(Bytes::from_static(&[0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let mut s = framed.into_inner();
    assert!(closed_by_peer(&mut s, Duration::from_secs(2)).await);
    still_serves(&h).await;
}
