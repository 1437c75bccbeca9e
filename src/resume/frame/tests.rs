//! The codec's tests: round trips, every malformed input, and arbitrary bytes.

use proptest::prelude::*;

use super::encode::put_varint;
use super::*;
use crate::resume::gap::GapReason;

fn roundtrip(frame: &Frame) -> Frame {
    decode(&Bytes::from(frame.encode())).expect("an encoded frame decodes")
}

#[test]
fn every_kind_round_trips() {
    let session = SessionId([7; 16]);
    let frames = [
        Frame::Data(Data {
            seq: 1,
            ack: None,
            text: true,
            prompt: false,
            payload: Bytes::from_static("héllo".as_bytes()),
        }),
        Frame::Data(Data {
            seq: u64::MAX,
            ack: Some(0),
            text: false,
            prompt: true,
            payload: Bytes::new(),
        }),
        Frame::Ack(0),
        Frame::Ack(u64::MAX),
        Frame::Prompt(0),
        Frame::Prompt(7),
        Frame::Hello(Hello {
            claim: Claim::New,
            recv_next: 1,
            send_first: 1,
            window: Window::DEFAULT,
        }),
        Frame::Hello(Hello {
            claim: Claim::Open(session),
            recv_next: 1,
            send_first: 1,
            window: Window::DEFAULT,
        }),
        Frame::Hello(Hello {
            claim: Claim::Reopen(session),
            recv_next: 1,
            send_first: 4,
            window: Window::DEFAULT,
        }),
        Frame::Hello(Hello {
            claim: Claim::Resume(session, 42),
            recv_next: 300,
            send_first: 17,
            window: Window {
                frames: 0,
                bytes: u64::MAX,
            },
        }),
        Frame::Welcome(Welcome {
            session,
            epoch: u64::MAX,
            resumed: true,
            recv_next: 9,
            window: Window::DEFAULT,
        }),
        Frame::Gap(Gap::new(5, Some(5), GapReason::Expired)),
        Frame::Gap(Gap::new(5, None, GapReason::EpochChanged)),
        Frame::Replay(12),
        Frame::Bye,
    ];
    for frame in frames {
        assert_eq!(roundtrip(&frame), frame);
    }
}

#[test]
fn malformed_frames_are_typed_errors() {
    let cases: &[(&[u8], ResumeViolation)] = &[
        (&[], ResumeViolation::Empty),
        (&[0x0f], ResumeViolation::UnknownKind(15)),
        (&[0x00], ResumeViolation::UnknownKind(0)),
        (
            &[0x42],
            ResumeViolation::ReservedFlags {
                kind: 2,
                flags: 0x40,
            },
        ),
        (
            &[0x01],
            ResumeViolation::Truncated {
                field: "sequence number",
            },
        ),
        (
            &[0x01, 0x00],
            ResumeViolation::ZeroPosition {
                field: "sequence number",
            },
        ),
        (&[0x11, 0x01, 0xff], ResumeViolation::InvalidUtf8),
        (
            &[0x02, 0x01, 0x00],
            ResumeViolation::TrailingBytes { kind: 2 },
        ),
        (&[0x07, 0x00], ResumeViolation::TrailingBytes { kind: 7 }),
        (&[0x03, 0x02], ResumeViolation::UnsupportedVersion(2)),
        (
            &[0x15, 0x05, 0x04, 0x01],
            ResumeViolation::GapBackwards { from: 5, to: 4 },
        ),
        (&[0x05, 0x05, 0x09], ResumeViolation::UnknownGapReason(9)),
        (
            &[0x33, 0x01],
            ResumeViolation::ReservedFlags {
                kind: 3,
                flags: 0x30,
            },
        ),
        (
            &[
                0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
            ],
            ResumeViolation::VarintOverflow {
                field: "acknowledgement",
            },
        ),
        (
            &[
                0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
            ],
            ResumeViolation::VarintOverflow {
                field: "acknowledgement",
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            decode(&Bytes::copy_from_slice(bytes)).as_ref(),
            Err(expected),
            "{bytes:?}"
        );
    }
    assert_eq!(
        Frame::from_message(&Message::text("x")),
        Err(ResumeViolation::NotBinary)
    );
}

#[test]
fn the_largest_varint_is_ten_bytes() {
    let mut out = Vec::new();
    put_varint(&mut out, u64::MAX);
    assert_eq!(out.len(), MAX_VARINT);
    let frame = decode(&Bytes::from(encode_data(
        u64::MAX,
        None,
        false,
        false,
        b"x",
    )));
    assert!(matches!(frame, Ok(Frame::Data(Data { seq: u64::MAX, .. }))));
}

fn any_frame() -> impl Strategy<Value = Frame> {
    let session = any::<[u8; 16]>().prop_map(SessionId);
    let window = (any::<u64>(), any::<u64>()).prop_map(|(frames, bytes)| Window { frames, bytes });
    let reason = prop_oneof![
        Just(GapReason::Overflow),
        Just(GapReason::Expired),
        Just(GapReason::EpochChanged),
        Just(GapReason::SessionUnknown),
        Just(GapReason::Abandoned),
    ];
    prop_oneof![
        (
            1..=u64::MAX,
            any::<Option<u64>>(),
            any::<bool>(),
            any::<bool>(),
            any::<Vec<u8>>()
        )
            .prop_map(|(seq, ack, text, prompt, payload)| {
                let payload = if text {
                    Bytes::from(String::from_utf8_lossy(&payload).into_owned())
                } else {
                    Bytes::from(payload)
                };
                Frame::Data(Data {
                    seq,
                    ack,
                    text,
                    prompt,
                    payload,
                })
            }),
        any::<u64>().prop_map(Frame::Ack),
        any::<u64>().prop_map(Frame::Prompt),
        (
            prop_oneof![
                Just(Claim::New),
                session.clone().prop_map(Claim::Open),
                session.clone().prop_map(Claim::Reopen),
                (session.clone(), 1..=u64::MAX).prop_map(|(id, epoch)| Claim::Resume(id, epoch)),
            ],
            1..=u64::MAX,
            1..=u64::MAX,
            window.clone()
        )
            .prop_map(|(claim, recv_next, send_first, window)| {
                Frame::Hello(Hello {
                    claim,
                    recv_next,
                    send_first,
                    window,
                })
            }),
        (session, any::<u64>(), any::<bool>(), 1..=u64::MAX, window).prop_map(
            |(session, epoch, resumed, recv_next, window)| {
                Frame::Welcome(Welcome {
                    session,
                    epoch,
                    resumed,
                    recv_next,
                    window,
                })
            }
        ),
        (
            1..=u64::MAX / 2,
            proptest::option::of(0..=u64::MAX / 2),
            reason
        )
            .prop_map(|(from, len, reason)| Frame::Gap(Gap::new(
                from,
                len.map(|l| from + l),
                reason
            ))),
        (1..=u64::MAX).prop_map(Frame::Replay),
        Just(Frame::Bye),
    ]
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(frame in any_frame()) {
        prop_assert_eq!(roundtrip(&frame), frame);
    }

    /// Garbage never panics: it decodes to a frame or to a typed error.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode(&Bytes::from(bytes.clone()));
    }

    /// Garbage that starts like a real frame (a valid first byte) goes deeper into
    /// the decoder, and still never panics.
    #[test]
    fn garbage_after_a_valid_first_byte_never_panics(
        first in prop::sample::select(vec![0x01u8, 0x11, 0x21, 0x31, 0x02, 0x03, 0x13, 0x04, 0x14, 0x05, 0x15, 0x06, 0x07, 0x08]),
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut bytes = vec![first];
        bytes.extend(rest);
        let decoded = decode(&Bytes::from(bytes.clone()));
        // What decodes encodes back to a frame that decodes the same.
        if let Ok(frame) = decoded {
            prop_assert_eq!(roundtrip(&frame), frame);
        }
    }

    /// A truncated frame is an error, never a different frame, for every kind whose
    /// last field is not a payload.
    #[test]
    fn a_truncated_frame_is_an_error(frame in any_frame(), cut in 1usize..64) {
        prop_assume!(!matches!(frame, Frame::Data(_) | Frame::Bye));
        let bytes = frame.encode();
        prop_assume!(cut < bytes.len());
        let short = Bytes::copy_from_slice(&bytes[..bytes.len() - cut]);
        prop_assert!(decode(&short).is_err());
    }
}

#[test]
fn the_writers_scratch_is_written_again_once_no_frame_in_it_is_held() {
    let mut writer = DataWriter::default();
    let first = writer.data(1, None, false, false, &[1; 1000]);
    let start = first.as_ptr();
    assert_eq!(
        decode(&first),
        decode(&Bytes::from(encode_data(1, None, false, false, &[1; 1000])))
    );
    drop(first);
    // Frames dropped as soon as made (as the connection does once it has copied them):
    // past the scratch's end, the next frame starts at its start again.
    let back =
        (2..200u64).any(|seq| writer.data(seq, None, false, false, &[2; 1000]).as_ptr() == start);
    assert!(back, "the scratch buffer was written again");
}

/// `entries` (sequence number, text, PROMPT, payload) as a BATCH, its acknowledgement
/// `ack` on the first.
fn batch_of(ack: Option<u64>, entries: &[(u64, bool, bool, &[u8])]) -> Bytes {
    let mut writer = DataWriter::default();
    let bytes: usize = entries.iter().map(|e| e.3.len()).sum();
    let hint = 1 + bytes + entries.len() * DataWriter::BATCH_OVERHEAD;
    writer.batch(ack, hint, entries.iter().copied())
}

#[test]
fn a_batch_reads_back_as_the_data_frames_it_was_made_of() {
    let batch = batch_of(
        Some(9),
        &[
            (5, true, false, b"a"),
            (6, false, true, &[0; 300]),
            (7, true, false, b""),
        ],
    );
    let Ok(Frame::Batch(body)) = decode(&batch) else {
        panic!("not a BATCH");
    };
    let data: Vec<Data> = BatchIter::new(body).map(Result::unwrap).collect();
    let expected = [
        (5, Some(9), true, false, Bytes::from_static(b"a")),
        (6, None, false, true, Bytes::from(vec![0; 300])),
        (7, None, true, false, Bytes::new()),
    ];
    assert_eq!(data.len(), expected.len());
    for (d, (seq, ack, text, prompt, payload)) in data.iter().zip(expected) {
        assert_eq!((d.seq, d.ack, d.text, d.prompt), (seq, ack, text, prompt));
        assert_eq!(d.payload, payload);
    }
}

#[test]
fn a_batch_entry_that_is_not_whole_data_is_a_violation() {
    // An entry longer than what is left.
    let body = Bytes::from_static(&[5, 0x01, 1, b'x']);
    let items: Vec<_> = BatchIter::new(body).collect();
    assert!(
        matches!(items[..], [Err(ResumeViolation::Truncated { .. })]),
        "{items:?}"
    );
    // A BATCH inside a BATCH, then a DATA.
    let body = Bytes::from_static(&[1, 0x08, 3, 0x01, 1, b'x']);
    let items: Vec<_> = BatchIter::new(body).collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_err(), "{items:?}");
    // Flags on BATCH.
    assert!(decode(&Bytes::from_static(&[0x18])).is_err());
}

proptest! {
    /// A BATCH body of garbage never panics: each entry is a DATA frame or a typed error.
    #[test]
    fn garbage_in_a_batch_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for _ in BatchIter::new(Bytes::from(bytes)) {}
    }
}
