//! Codec: every message round-trips; hostile bytes are errors, never panics.

use hub_core::protocol::{decode, encode, Message, DEFAULT_MAX_FRAME, PROTOCOL_VERSION};
use hub_core::{DecodeError, EncodeError};
use proptest::prelude::*;

proptest! {
    #[test]
    fn every_message_round_trips(msg in hub_testkit::gen::message()) {
        let bytes = encode(&msg, DEFAULT_MAX_FRAME).unwrap();
        prop_assert_eq!(decode(&bytes, DEFAULT_MAX_FRAME).unwrap(), msg);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, DEFAULT_MAX_FRAME);
    }

    #[test]
    fn truncated_or_mutated_frames_are_errors_or_valid_messages(
        msg in hub_testkit::gen::message(),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let bytes = encode(&msg, DEFAULT_MAX_FRAME).unwrap();
        let n = cut.index(bytes.len());
        prop_assert!(decode(&bytes[..n], DEFAULT_MAX_FRAME).is_err(), "a strict prefix must not decode");
        let mut mutated = bytes.clone();
        let i = flip.0.index(mutated.len());
        mutated[i] ^= flip.1 | 1;
        let _ = decode(&mutated, DEFAULT_MAX_FRAME); // any result but a panic
    }
}

#[test]
fn oversized_frames_are_refused_both_ways() {
    let msg = Message::HandoffAck((0..1000).map(|i| format!("child-{i}").into()).collect());
    assert!(matches!(
        encode(&msg, 100),
        Err(EncodeError::TooLarge { max: 100, .. })
    ));
    let bytes = encode(&msg, DEFAULT_MAX_FRAME).unwrap();
    assert!(matches!(
        decode(&bytes, 100),
        Err(DecodeError::TooLarge { max: 100, .. })
    ));
}

#[test]
fn another_protocol_version_is_refused() {
    let mut bytes = encode(&Message::Leaving, DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(bytes[0], PROTOCOL_VERSION as u8);
    bytes[0] = 9;
    assert_eq!(
        decode(&bytes, DEFAULT_MAX_FRAME),
        Err(DecodeError::UnsupportedVersion {
            got: 9,
            supported: PROTOCOL_VERSION
        })
    );
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = encode(&Message::Left, DEFAULT_MAX_FRAME).unwrap();
    bytes.push(0);
    assert_eq!(
        decode(&bytes, DEFAULT_MAX_FRAME),
        Err(DecodeError::TrailingBytes(1))
    );
}

#[test]
fn a_huge_declared_length_does_not_allocate_it() {
    // Version, Digest variant, then a sequence length of ~2^63.
    let mut bytes = encode(&Message::Digest(vec![]), DEFAULT_MAX_FRAME).unwrap();
    bytes.pop();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(matches!(
        decode(&bytes, DEFAULT_MAX_FRAME),
        Err(DecodeError::Malformed(_))
    ));
}
