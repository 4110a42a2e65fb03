//! Frames after the handshake: core protocol messages, child messaging and
//! control requests, postcard-encoded inside length-delimited frames.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use hub_core::{ChildId, Message};

use crate::control::{CtlReply, CtlRequest};
use crate::error::CallError;

/// One frame's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Wire {
    /// A hub-core protocol message (node to node).
    Core(Message),
    /// A cast to a child on the receiving node.
    Cast {
        /// Child.
        id: ChildId,
        /// postcard-encoded `Process::Message`.
        payload: Bytes,
    },
    /// A call to a child on the receiving node.
    Call {
        /// Caller's request number.
        req: u64,
        /// Child.
        id: ChildId,
        /// postcard-encoded `Process::Message`.
        payload: Bytes,
    },
    /// The answer to a [`Wire::Call`].
    CallReply {
        /// The request number.
        req: u64,
        /// postcard-encoded `Process::Reply`, or why not.
        result: Result<Bytes, CallError>,
    },
    /// A control request from a `hub ctl` client.
    Ctl {
        /// Client's request number.
        req: u64,
        /// The request.
        request: CtlRequest,
    },
    /// The answer to a [`Wire::Ctl`].
    CtlReply {
        /// The request number.
        req: u64,
        /// The answer.
        reply: CtlReply,
    },
    /// The node task refused a peer after the handshake (its node id is
    /// taken, the strict cluster is full); the connection closes after it.
    Refused(crate::handshake::Refusal),
}

/// Encodes a frame body.
pub fn encode(w: &Wire) -> Result<Bytes, postcard::Error> {
    postcard::to_stdvec(w).map(Bytes::from)
}

/// Decodes a frame body; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Wire, postcard::Error> {
    let (w, rest) = postcard::take_from_bytes::<Wire>(bytes)?;
    if rest.is_empty() {
        Ok(w)
    } else {
        Err(postcard::Error::DeserializeBadEncoding)
    }
}
