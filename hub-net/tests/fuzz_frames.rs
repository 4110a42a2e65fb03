//! Arbitrary and mutated bytes against the frame decoder and the handshake:
//! errors, never panics, nothing unbounded.

use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use hub_net::handshake::{self, Hello, Local, Role};
use hub_net::wire::{self, Wire};
use proptest::prelude::*;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

fn local() -> Local {
    Local {
        hello: Hello {
            version: hub_core::protocol::PROTOCOL_VERSION,
            hub_id: "fuzz".into(),
            node_id: "acceptor".into(),
            addr: String::new(),
            incarnation: 1,
            role: Role::Node,
            nonce: [0; 32],
        },
        cookie: Bytes::from_static(b"cookie"),
        timeout: Duration::from_millis(200),
    }
}

/// Feeds `frames` to an accepting handshake; it must fail cleanly.
fn accept_garbage(frames: Vec<Vec<u8>>, raw_tail: Vec<u8>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut server = Framed::new(
            a,
            LengthDelimitedCodec::builder()
                .max_frame_length(4096)
                .new_codec(),
        );
        let writer = tokio::spawn(async move {
            let mut client = Framed::new(b, LengthDelimitedCodec::new());
            for f in frames {
                if client.send(Bytes::from(f)).await.is_err() {
                    return;
                }
            }
            let mut inner = client.into_inner();
            let _ = tokio::io::AsyncWriteExt::write_all(&mut inner, &raw_tail).await;
            // Hold the connection open: the handshake must time out.
            tokio::time::sleep(Duration::from_millis(400)).await;
        });
        let r = handshake::accept(&mut server, &local()).await;
        writer.abort();
        prop_assert!(r.is_err(), "garbage authenticated: {r:?}");
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frame_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = wire::decode(&bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        msg in hub_testkit::gen::message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = wire::encode(&Wire::Core(msg.clone())).unwrap().to_vec();
        prop_assert_eq!(wire::decode(&bytes).unwrap(), Wire::Core(msg));
        let mut m = bytes.clone();
        for (i, x) in flips {
            let i = i.index(m.len());
            m[i] ^= x;
        }
        let _ = wire::decode(&m);
        let _ = wire::decode(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn the_handshake_refuses_garbage(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        accept_garbage(frames, tail)?;
    }
}

#[test]
fn an_oversized_handshake_frame_is_refused() {
    // A declared length above the 4 KiB handshake limit.
    accept_garbage(vec![], vec![0, 1, 0, 0, 0, 0, 0]).unwrap();
    accept_garbage(vec![vec![7; 5000]], vec![]).unwrap();
}
