//! Relay tests: chunking at every position, fragmentation, verdicts, failures, random input.

use super::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame with an explicit first byte (FIN, RSV, opcode), for frames `encode_frame` won't build.
fn raw(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let op = Opcode::from_u8(b0 & 0x0f).unwrap_or(Opcode::Binary);
    let mut f = encode_frame(op, payload, mask);
    f[0] = b0;
    f
}

fn text(s: &str) -> Vec<u8> {
    encode_frame(Opcode::Text, s.as_bytes(), Some(KEY))
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Run {
    forward: Vec<u8>,
    replies: Vec<Vec<u8>>,
    judged: Vec<(Opcode, Vec<u8>)>,
    flow: Option<Flow>,
}

/// Feed `stream` cut at `cuts` (ascending offsets), judging every message with `verdict`.
fn run_cuts(
    relay: &mut Relay,
    stream: &[u8],
    cuts: &[usize],
    verdict: &mut dyn FnMut(&Message<'_>) -> Judgement,
) -> Run {
    let mut r = Run::default();
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&stream.len())) {
        let out = relay.feed(Bytes::copy_from_slice(&stream[from..to]), |m: &Message<'_>| {
            r.judged.push((m.opcode(), m.bytes().to_vec()));
            verdict(m)
        });
        r.forward.extend_from_slice(&out.forward);
        r.replies.extend(out.reply.map(|b| b.to_vec()));
        r.flow = Some(out.flow);
        from = to;
    }
    r
}

fn run(dir: Direction, stream: &[u8], verdict: &mut dyn FnMut(&Message<'_>) -> Judgement) -> Run {
    run_cuts(&mut Relay::new(dir, 1 << 20), stream, &[], verdict)
}

fn forward_all(_: &Message<'_>) -> Judgement {
    Judgement::Forward
}

/// Messages and controls in `bytes`, as a fresh relay of `dir` reads them.
fn decode(dir: Direction, bytes: &[u8]) -> Vec<(Opcode, Vec<u8>)> {
    run(dir, bytes, &mut forward_all).judged
}

/// (code, masked) of a single close frame.
fn close_of(f: &[u8]) -> (u16, bool) {
    let h = frame::parse_head(&f[..frame::head_len(f)]);
    let mut p = f[h.head_len..].to_vec();
    if let Some(k) = h.mask {
        apply_mask(&mut p, k, 0);
    }
    assert_eq!(h.opcode, 8, "not a close frame: {f:?}");
    (u16::from_be_bytes([p[0], p[1]]), h.mask.is_some())
}

/// A client stream with every shape: single frames, a fragmented message with a ping and a
/// pong between its fragments, 16- and 64-bit lengths, an empty message, and a final close.
fn mixed_stream() -> (Vec<u8>, Vec<u8>) {
    let mut s = text("hello");
    s.extend(raw(0x01, "frag".as_bytes(), Some([1, 2, 3, 4])));
    let ping = raw(0x89, b"p", Some([5, 6, 7, 8]));
    s.extend(&ping);
    s.extend(raw(0x00, "mé".as_bytes(), Some([9, 9, 9, 9])));
    s.extend(raw(0x8A, b"", Some([0, 0, 0, 1])));
    s.extend(raw(0x80, "nted".as_bytes(), Some([7, 7, 7, 7])));
    s.extend(encode_frame(Opcode::Binary, &[0xab; 300], Some(KEY)));
    s.extend(encode_frame(Opcode::Binary, &[0xcd; 130], Some(KEY)));
    s.extend(text(""));
    s.extend(close_frame_with(1000, "bye", Some(KEY)));
    (s, ping)
}

#[test]
fn a_clean_stream_is_forwarded_byte_for_byte_apart_from_control_frames_moving_ahead() {
    let (s, ping) = mixed_stream();
    let r = run(Direction::ClientToServer, &s, &mut forward_all);
    assert_eq!(r.flow, Some(Flow::Closing));
    assert!(r.replies.is_empty());
    let texts: Vec<_> = r.judged.iter().map(|(o, b)| (*o, b.len())).collect();
    assert_eq!(
        texts,
        [
            (Opcode::Text, 5),
            (Opcode::Text, 11),
            (Opcode::Binary, 300),
            (Opcode::Binary, 130),
            (Opcode::Text, 0)
        ]
    );
    assert_eq!(r.judged[1].1, "fragménted".as_bytes());
    // The ping and pong held inside the fragmented message reach the peer before it.
    let hello = text("hello").len();
    let pong = raw(0x8A, b"", Some([0, 0, 0, 1]));
    let frag_end = hello + 10 + ping.len() + 9 + pong.len() + 10;
    let mut expected = s[..hello].to_vec();
    expected.extend(&ping);
    expected.extend(&pong);
    expected.extend(&s[hello..hello + 10]);
    expected.extend(&s[hello + 10 + ping.len()..hello + 10 + ping.len() + 9]);
    expected.extend(&s[frag_end - 10..]);
    assert_eq!(r.forward, expected);
}

#[test]
fn every_split_point_and_one_byte_chunks_give_the_same_result() {
    let (s, _) = mixed_stream();
    let whole = run(Direction::ClientToServer, &s, &mut forward_all);
    for cut in 0..=s.len() {
        let r = run_cuts(
            &mut Relay::new(Direction::ClientToServer, 1 << 20),
            &s,
            &[cut],
            &mut forward_all,
        );
        assert_eq!(r, whole, "cut at {cut}");
    }
    let ones: Vec<usize> = (1..s.len()).collect();
    let r = run_cuts(
        &mut Relay::new(Direction::ClientToServer, 1 << 20),
        &s,
        &ones,
        &mut forward_all,
    );
    assert_eq!(r, whole);
    let pairs: Vec<usize> = (1..s.len()).step_by(97).collect();
    for (i, &a) in pairs.iter().enumerate() {
        let cuts = [a, pairs[(i * 7 + 3) % pairs.len()].max(a)];
        let r = run_cuts(
            &mut Relay::new(Direction::ClientToServer, 1 << 20),
            &s,
            &cuts,
            &mut forward_all,
        );
        assert_eq!(r, whole, "cuts {cuts:?}");
    }
}

#[test]
fn a_64_bit_length_frame_survives_any_split() {
    let s = encode_frame(Opcode::Binary, &vec![0xcd; 70_000], Some(KEY));
    assert_eq!(s[1] & 0x7f, 127);
    for cut in (0..s.len()).step_by(997).chain(1..16) {
        let r = run_cuts(
            &mut Relay::new(Direction::ClientToServer, 1 << 20),
            &s,
            &[cut],
            &mut forward_all,
        );
        assert_eq!(r.forward, s, "cut {cut}");
    }
}

#[test]
fn a_message_in_one_chunk_is_forwarded_without_a_copy() {
    let mut s = text("one");
    s.extend(text("two"));
    let chunk = Bytes::from(s.clone());
    let out = Relay::new(Direction::ClientToServer, 100).feed(chunk.clone(), forward_all);
    assert_eq!(out.forward, chunk);
    assert_eq!(out.forward.as_ptr(), chunk.as_ptr());
}

#[test]
fn server_frames_are_unmasked_and_a_masked_one_fails() {
    let mut s = encode_frame(Opcode::Text, b"hi", None);
    s.extend(raw(0x02, b"a", None));
    s.extend(raw(0x80, b"b", None));
    let r = run(Direction::ServerToClient, &s, &mut forward_all);
    assert_eq!(r.forward, s);
    assert_eq!(
        r.judged,
        [(Opcode::Text, b"hi".to_vec()), (Opcode::Binary, b"ab".to_vec())]
    );
    let r = run(Direction::ServerToClient, &text("x"), &mut forward_all);
    assert_eq!(
        r.forward,
        close_frame_with(1002, "protocol error", None),
        "only a close toward the client"
    );
    assert_eq!(close_of(&r.replies[0]), (1002, true));
}

#[test]
fn drop_swallows_one_message_and_the_next_still_flows() {
    let mut s = text("bad word");
    s.extend(raw(0x01, b"bad ", Some(KEY)));
    s.extend(raw(0x80, b"again", Some(KEY)));
    s.extend(text("fine"));
    let mut verdict = |m: &Message<'_>| match m {
        Message::Text(t) if t.contains("bad") => Judgement::Drop,
        _ => Judgement::Forward,
    };
    let r = run(Direction::ClientToServer, &s, &mut verdict);
    assert_eq!(r.forward, text("fine"));
    assert_eq!(r.flow, Some(Flow::Open));
    assert_eq!(r.judged.len(), 3);
}

#[test]
fn replace_re_encodes_one_frame_that_decodes_back() {
    let mut s = raw(0x01, b"sw", Some(KEY));
    s.extend(raw(0x80, b"ear", Some(KEY)));
    s.extend(text("ok"));
    let mut verdict = |m: &Message<'_>| match m {
        Message::Text("swear") => Judgement::Replace("s***r é".into()),
        _ => Judgement::Forward,
    };
    for dir in [Direction::ClientToServer, Direction::ServerToClient] {
        let stream = if dir == Direction::ClientToServer {
            s.clone()
        } else {
            let mut s = raw(0x01, b"sw", None);
            s.extend(raw(0x80, b"ear", None));
            s.extend(encode_frame(Opcode::Text, b"ok", None));
            s
        };
        let mut relay = Relay::new(dir, 100).with_mask_source(|| [1, 2, 3, 4]);
        let r = run_cuts(&mut relay, &stream, &[3], &mut verdict);
        let back = decode(dir, &r.forward);
        assert_eq!(
            back,
            [
                (Opcode::Text, "s***r é".as_bytes().to_vec()),
                (Opcode::Text, b"ok".to_vec())
            ]
        );
        let masked = dir == Direction::ClientToServer;
        assert_eq!(r.forward[1] & 0x80 != 0, masked);
        if masked {
            assert_eq!(&r.forward[2..6], &[1, 2, 3, 4]);
        }
    }
}

#[test]
fn a_policy_close_sends_1008_both_ways_and_discards_the_rest() {
    let mut s = text("first");
    s.extend(text("evil"));
    s.extend(text("after"));
    let mut verdict = |m: &Message<'_>| match m {
        Message::Text("evil") => Judgement::Close(CLOSE_POLICY, "policy".into()),
        _ => Judgement::Forward,
    };
    let mut relay = Relay::new(Direction::ClientToServer, 100);
    let r = run_cuts(&mut relay, &s, &[2], &mut verdict);
    let first = text("first");
    assert_eq!(&r.forward[..first.len()], &first[..]);
    assert_eq!(close_of(&r.forward[first.len()..]), (1008, true));
    assert_eq!(r.replies.len(), 1);
    assert_eq!(close_of(&r.replies[0]), (1008, false));
    assert_eq!(r.judged.len(), 2, "nothing judged after the close");
    let Some(Flow::Failed(f)) = r.flow else {
        panic!("{:?}", r.flow)
    };
    assert_eq!(f.cause, Cause::Policy("policy".into()));
    let later = relay.feed(Bytes::from(text("more")), forward_all);
    assert!(later.forward.is_empty() && later.reply.is_none() && later.finished());
    // A code that may not go on the wire becomes 1008.
    let mut verdict = |_: &Message<'_>| Judgement::Close(1006, String::new());
    let r = run(
        Direction::ServerToClient,
        &encode_frame(Opcode::Text, b"x", None),
        &mut verdict,
    );
    assert_eq!(close_of(&r.forward), (1008, false));
}

#[test]
fn a_close_frame_passes_and_what_follows_is_discarded() {
    let mut s = raw(0x01, b"half", Some(KEY));
    let close = close_frame_with(1001, "away", Some(KEY));
    s.extend(&close);
    s.extend(text("too late"));
    let r = run(Direction::ClientToServer, &s, &mut forward_all);
    assert_eq!(r.forward, close);
    assert!(r.judged.is_empty());
    assert_eq!(r.flow, Some(Flow::Closing));
}

#[test]
fn malformed_frames_fail_with_1002() {
    let m = Some(KEY);
    let cases: Vec<(Vec<u8>, FrameError)> = vec![
        (raw(0xC1, b"x", m), FrameError::ReservedBits),
        (raw(0x83, b"x", m), FrameError::ReservedOpcode(3)),
        (raw(0x8B, b"x", m), FrameError::ReservedOpcode(0xB)),
        (raw(0x81, b"x", None), FrameError::Unmasked),
        (raw(0x09, b"x", m), FrameError::FragmentedControl),
        (raw(0x89, &[0; 126], m), FrameError::ControlTooLong),
        (raw(0x80, b"x", m), FrameError::ContinuationWithoutStart),
        (
            [raw(0x01, b"a", m), raw(0x81, b"b", m)].concat(),
            FrameError::DataWhileFragmented,
        ),
        (raw(0x88, &[3], m), FrameError::BadClosePayload),
    ];
    for (bytes, err) in cases {
        for cuts in [vec![], (1..bytes.len()).collect()] {
            let mut relay = Relay::new(Direction::ClientToServer, 1000);
            let r = run_cuts(&mut relay, &bytes, &cuts, &mut forward_all);
            assert_eq!(
                r.flow,
                Some(Flow::Failed(Failure {
                    code: 1002,
                    cause: Cause::Frame(err.clone())
                })),
                "{bytes:?}"
            );
            assert_eq!(close_of(&r.forward), (1002, true));
            assert_eq!(close_of(&r.replies[0]), (1002, false));
            assert_eq!(r.replies.len(), 1);
        }
    }
}

#[test]
fn oversize_is_refused_from_the_header_before_any_payload_is_held() {
    let big = encode_frame(Opcode::Binary, &[0; 1001], Some(KEY));
    let mut relay = Relay::new(Direction::ClientToServer, 1000);
    let out = relay.feed(Bytes::copy_from_slice(&big[..8]), forward_all);
    assert_eq!(
        out.flow.clone(),
        Flow::Failed(Failure {
            code: 1009,
            cause: Cause::Frame(FrameError::TooBig { limit: 1000 })
        })
    );
    assert_eq!(close_of(&out.forward), (1009, true));
    assert_eq!(relay.buffered(), 0);
    // A 64-bit length with its top bit set is malformed, whatever the cap.
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&KEY);
    let out = Relay::new(Direction::ClientToServer, usize::MAX).feed(Bytes::from(huge), forward_all);
    assert_eq!(
        out.flow,
        Flow::Failed(Failure {
            code: 1002,
            cause: Cause::Frame(FrameError::BadLength)
        })
    );
    // Fragments add up: 600 held, then a 401-byte fragment is refused at its header.
    let mut s = raw(0x02, &[0; 600], Some(KEY));
    s.extend(&raw(0x80, &[0; 401], Some(KEY))[..8]);
    let mut relay = Relay::new(Direction::ClientToServer, 1000);
    let r = run_cuts(&mut relay, &s, &[300, 610], &mut forward_all);
    assert!(matches!(r.flow, Some(Flow::Failed(Failure { code: 1009, .. }))));
    // Exactly at the cap passes, and memory held mid-message stays under cap + headers.
    let mut s = raw(0x02, &[7; 600], Some(KEY));
    s.extend(raw(0x80, &[7; 400], Some(KEY)));
    let mut relay = Relay::new(Direction::ClientToServer, 1000);
    let _ = relay.feed(Bytes::copy_from_slice(&s[..s.len() - 1]), forward_all);
    assert!(relay.buffered() <= 1000 + 2 * MAX_HEAD);
    assert!(
        relay.payload.capacity() <= 1000,
        "capacity {}",
        relay.payload.capacity()
    );
    let out = relay.feed(Bytes::copy_from_slice(&s[s.len() - 1..]), forward_all);
    assert_eq!(out.forward, s);
}

#[test]
fn too_many_empty_fragments_are_a_message_too_big() {
    let mut s = raw(0x01, b"", Some(KEY));
    for _ in 0..10 {
        s.extend(raw(0x00, b"", Some(KEY)));
    }
    let r = run_cuts(
        &mut Relay::new(Direction::ClientToServer, 1000).with_max_fragments(5),
        &s,
        &[],
        &mut forward_all,
    );
    assert!(matches!(r.flow, Some(Flow::Failed(Failure { code: 1009, .. }))));
}

#[test]
fn text_must_be_utf8_across_fragments() {
    let e = "é".as_bytes();
    let mut ok = raw(0x01, &e[..1], Some(KEY));
    ok.extend(raw(0x80, &e[1..], Some(KEY)));
    let r = run(Direction::ClientToServer, &ok, &mut forward_all);
    assert_eq!(r.judged, [(Opcode::Text, e.to_vec())]);
    for bad in [raw(0x81, &[0xff, 0x41], Some(KEY)), raw(0x81, &e[..1], Some(KEY))] {
        let r = run(Direction::ClientToServer, &bad, &mut forward_all);
        assert!(r.judged.is_empty());
        assert_eq!(close_of(&r.forward), (1007, true));
        assert_eq!(close_of(&r.replies[0]), (1007, false));
    }
    // Binary is not checked; a close reason is.
    assert!(run(
        Direction::ClientToServer,
        &raw(0x82, &[0xff], Some(KEY)),
        &mut forward_all
    )
    .replies
    .is_empty());
    let bad_close = raw(0x88, &[0x03, 0xe8, 0xff], Some(KEY));
    assert_eq!(
        close_of(&run(Direction::ClientToServer, &bad_close, &mut forward_all).replies[0]).0,
        1007
    );
}

#[test]
fn random_bytes_never_panic_and_memory_stays_bounded() {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let (valid, _) = mixed_stream();
    let max = 4096;
    for i in 0..100_000 {
        let dir = if i % 2 == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        let mut relay = Relay::new(dir, max);
        // Half pure noise, half a valid stream with a few bytes flipped, to get deep.
        let mut bytes: Vec<u8> = if i % 4 < 2 {
            (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect()
        } else {
            let start = rng.usize(0..valid.len() / 2);
            let mut v = valid[start..(start + rng.usize(0..600)).min(valid.len())].to_vec();
            for _ in 0..rng.usize(0..3) {
                if !v.is_empty() {
                    let at = rng.usize(0..v.len());
                    v[at] = rng.u8(..);
                }
            }
            v
        };
        if i % 8 == 1 {
            bytes.splice(0..0, text("lead"));
        }
        let mut at = 0;
        while at < bytes.len() {
            let n = rng.usize(1..=bytes.len() - at);
            let verdict = match rng.u8(0..4) {
                0 => Judgement::Drop,
                1 => Judgement::Replace("r".into()),
                2 => Judgement::Close(rng.u16(..), "x".into()),
                _ => Judgement::Forward,
            };
            let _ = relay.feed(Bytes::copy_from_slice(&bytes[at..at + n]), |_| verdict.clone());
            assert!(relay.buffered() <= max + MAX_CONTROL_PAYLOAD + DEFAULT_MAX_FRAGMENTS * MAX_HEAD);
            assert!(relay.payload.capacity() <= max && relay.control.capacity() <= MAX_CONTROL_PAYLOAD);
            at += n;
        }
    }
}

#[test]
fn abort_closes_both_ways_and_discards_a_held_message() {
    let mut relay = Relay::new(Direction::ServerToClient, 100);
    let _ = relay.feed(Bytes::from(raw(0x01, b"half", None)), forward_all);
    assert!(relay.buffered() > 0);
    let out = relay.abort(4001, "banned");
    assert_eq!(out.forward, close_frame_with(4001, "banned", None));
    assert_eq!(close_of(&out.reply.clone().unwrap_or_default()), (4001, true));
    assert!(out.finished());
    assert_eq!(relay.buffered(), 0);
    let again = relay.abort(4001, "banned");
    assert!(again.forward.is_empty() && again.reply.is_none());
}

#[test]
fn a_dyn_judge_can_be_passed_as_is() {
    let mut seen = 0;
    let mut count = |_: &Message<'_>| {
        seen += 1;
        Judgement::Forward
    };
    let judge: &mut dyn FnMut(&Message<'_>) -> Judgement = &mut count;
    let out = Relay::new(Direction::ClientToServer, 100).feed(Bytes::from(text("x")), judge);
    assert_eq!(out.forward, text("x"));
    assert_eq!(seen, 1);
}
