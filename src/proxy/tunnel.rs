//! Messages of an upgraded stream (request_body_filter, response_body_filter after a 101):
//! when a stage asked for them (`Wants::messages`), each direction's bytes go through a
//! WebSocket relay (`traffic::ws`) that reassembles messages, lets the stages judge each one
//! (`Pipeline::message`), and forwards, drops, rewrites or closes. Close frames owed to the
//! other side wait here until that side's next chunk.

use bytes::{Bytes, BytesMut};

use crate::stage::{Direction, Ledger, Message, MessageStep, Pipeline};
use crate::traffic::ws::{self, Judgement, Relay};

/// Both directions of one upgraded stream.
pub struct Tunnel {
    to_origin: Relay,
    to_client: Relay,
    /// A close frame for the origin, from a failure seen on the origin's side.
    owed_to_origin: Option<Bytes>,
    /// A close frame for the client, from a failure seen on the client's side.
    owed_to_client: Option<Bytes>,
    /// The stream failed; the next chunk in either direction ends it.
    pub finished: bool,
}

impl Tunnel {
    pub fn new(max_message: usize) -> Tunnel {
        Tunnel {
            to_origin: Relay::new(ws::Direction::ClientToServer, max_message),
            to_client: Relay::new(ws::Direction::ServerToClient, max_message),
            owed_to_origin: None,
            owed_to_client: None,
            finished: false,
        }
    }

    /// Relay a chunk travelling `direction`; returns what to forward in its place.
    pub fn relay(&mut self, direction: Direction, chunk: Bytes, pipeline: &Pipeline, ledger: &mut Ledger) -> Bytes {
        let (relay, owed_here, owed_back) = match direction {
            Direction::ClientToOrigin => (&mut self.to_origin, &mut self.owed_to_origin, &mut self.owed_to_client),
            Direction::OriginToClient => (&mut self.to_client, &mut self.owed_to_client, &mut self.owed_to_origin),
        };
        let out = relay.feed(chunk, |m| {
            let message = match m {
                ws::Message::Text(t) => Message::Text(t),
                ws::Message::Binary(b) => Message::Binary(b),
            };
            match pipeline.message(direction, message, ledger) {
                MessageStep::Forward => Judgement::Forward,
                MessageStep::Drop => Judgement::Drop,
                MessageStep::Replace(text) => Judgement::Replace(text),
                MessageStep::Close(code) => Judgement::Close(code, "policy violation".into()),
            }
        });
        if out.finished() {
            self.finished = true;
        }
        if let Some(reply) = out.reply {
            owed_back.get_or_insert(reply);
        }
        match owed_here.take() {
            Some(first) => {
                let mut b = BytesMut::with_capacity(first.len() + out.forward.len());
                b.extend_from_slice(&first);
                b.extend_from_slice(&out.forward);
                b.freeze()
            }
            None => out.forward,
        }
    }

    /// A close frame owed to the client, to be written now (taken once).
    pub fn take_owed_to_client(&mut self) -> Option<Bytes> {
        self.owed_to_client.take()
    }
}
