//! The socket frame: `<STX> data <ETX> <LRC>`, LRC = XOR of the data bytes, fields split by `#`.
//!
//! A frame runs from an `STX` to the first `ETX` after it, and the byte after that `ETX` is its
//! LRC: whatever lies between is the frame's, so a frame with an `STX` inside, or too long, is
//! one bad frame and is answered once. Every request frame is answered by one `ACK` or `NACK`
//! byte followed by one reply frame. The decoder never fails on bad bytes: a bad frame is a
//! [`Packet::Corrupt`], bytes outside any frame a [`Packet::Stray`] (never answered, or a peer
//! would take that answer for its next request's).

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NACK: u8 = 0x15;
pub const FIELD_SEPARATOR: char = '#';
/// Longest data part accepted; anything longer is corrupt.
pub const MAX_DATA_LEN: usize = 1024;

/// One unit read from or written to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Ack,
    Nack,
    /// A well-formed frame, split into its fields.
    Frame(Vec<String>),
    /// A frame that is not valid, and why: answered like any frame.
    Corrupt(String),
    /// This many bytes outside any frame, dropped unanswered. How a run of them is split
    /// into packets depends on how the bytes arrived.
    Stray(usize),
}

impl Packet {
    pub fn frame<I, S>(fields: I) -> Packet
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Packet::Frame(fields.into_iter().map(Into::into).collect())
    }
}

/// XOR of every byte: the frame's checksum.
pub fn lrc(data: &[u8]) -> u8 {
    data.iter().fold(0, |acc, b| acc ^ b)
}

/// Whether `text` can travel as one field of a frame.
pub fn is_valid_field(text: &str) -> bool {
    !text
        .bytes()
        .any(|b| b == STX || b == ETX || b == FIELD_SEPARATOR as u8)
        && text.len() <= MAX_DATA_LEN
}

/// Encodes packets and decodes them. Keeps one piece of state: the rest of a frame too
/// long to keep, which is dropped up to its ETX and LRC without another answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec {
    skipping: Skip,
}

/// What is left of a frame already answered as too long.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Skip {
    #[default]
    Nothing,
    /// Its data, up to the ETX.
    ToEtx,
    /// Its LRC byte.
    Lrc,
}

impl FrameCodec {
    /// Drops what is left of a frame too long; true once nothing is.
    fn skip(&mut self, buf: &mut BytesMut) -> bool {
        if self.skipping == Skip::ToEtx {
            match buf.iter().position(|b| *b == ETX) {
                Some(etx) => {
                    buf.advance(etx + 1);
                    self.skipping = Skip::Lrc;
                }
                None => buf.clear(),
            }
        }
        if self.skipping == Skip::Lrc && !buf.is_empty() {
            buf.advance(1);
            self.skipping = Skip::Nothing;
        }
        self.skipping == Skip::Nothing
    }

    /// Decodes the frame that starts at `buf[0] == STX`, or waits for more bytes.
    fn decode_frame(&mut self, buf: &mut BytesMut) -> Option<Packet> {
        let body = &buf[1..];
        // A frame's ETX comes within its first MAX_DATA_LEN + 1 bytes, or it is too long.
        let Some(etx) = body.iter().take(MAX_DATA_LEN + 1).position(|b| *b == ETX) else {
            if body.len() <= MAX_DATA_LEN {
                return None;
            }
            // Its first bytes hold no ETX; the rest is dropped up to it, and what follows
            // (perhaps already here) is read as usual.
            buf.advance(1 + MAX_DATA_LEN + 1);
            self.skipping = Skip::ToEtx;
            return Some(Packet::Corrupt(format!(
                "frame longer than {MAX_DATA_LEN} bytes"
            )));
        };
        let checksum = *body.get(etx + 1)?;
        let data = body[..etx].to_vec();
        buf.advance(1 + etx + 2);
        Some(check_frame(data, checksum))
    }
}

impl Decoder for FrameCodec {
    type Item = Packet;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, io::Error> {
        if !self.skip(buf) {
            return Ok(None);
        }
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        match first {
            ACK => {
                buf.advance(1);
                Ok(Some(Packet::Ack))
            }
            NACK => {
                buf.advance(1);
                Ok(Some(Packet::Nack))
            }
            STX => Ok(self.decode_frame(buf)),
            _ => {
                let stray = buf
                    .iter()
                    .position(|b| matches!(*b, STX | ACK | NACK))
                    .unwrap_or(buf.len());
                buf.advance(stray);
                Ok(Some(Packet::Stray(stray)))
            }
        }
    }
}

fn check_frame(data: Vec<u8>, checksum: u8) -> Packet {
    if data.contains(&STX) {
        return Packet::Corrupt("STX inside a frame".into());
    }
    let expected = lrc(&data);
    if expected != checksum {
        return Packet::Corrupt(format!(
            "bad LRC: got {checksum:#04x}, data gives {expected:#04x}"
        ));
    }
    match String::from_utf8(data) {
        Ok(text) => Packet::Frame(text.split(FIELD_SEPARATOR).map(str::to_owned).collect()),
        Err(_) => Packet::Corrupt("frame data is not UTF-8".into()),
    }
}

impl Encoder<Packet> for FrameCodec {
    type Error = io::Error;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), io::Error> {
        match packet {
            Packet::Ack => dst.put_u8(ACK),
            Packet::Nack => dst.put_u8(NACK),
            Packet::Frame(fields) => {
                if let Some(bad) = fields.iter().find(|f| !is_valid_field(f)) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("field {bad:?} cannot travel in a frame"),
                    ));
                }
                let data = fields.join("#");
                if data.len() > MAX_DATA_LEN {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "frame data too long",
                    ));
                }
                dst.reserve(data.len() + 3);
                dst.put_u8(STX);
                dst.put_slice(data.as_bytes());
                dst.put_u8(ETX);
                dst.put_u8(lrc(data.as_bytes()));
            }
            Packet::Corrupt(_) | Packet::Stray(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "only ACK, NACK and frames can be sent",
                ))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `bytes` arriving in chunks of `chunk` bytes, as a socket may deliver them.
    fn decode_chunked(bytes: &[u8], chunk: usize) -> Vec<Packet> {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(p) = codec.decode(&mut buf).unwrap() {
                out.push(p);
            }
        }
        out
    }

    fn decode_all(bytes: &[u8]) -> Vec<Packet> {
        decode_chunked(bytes, bytes.len())
    }

    /// The packets a server answers: frames, good or bad.
    fn answered(packets: &[Packet]) -> Vec<Packet> {
        packets
            .iter()
            .filter(|p| matches!(p, Packet::Frame(_) | Packet::Corrupt(_)))
            .cloned()
            .collect()
    }

    fn encode(p: Packet) -> Vec<u8> {
        let mut buf = BytesMut::new();
        FrameCodec::default().encode(p, &mut buf).unwrap();
        buf.to_vec()
    }

    /// A frame around `data` with its right LRC, whatever the data.
    fn raw_frame(data: &[u8]) -> Vec<u8> {
        let mut out = vec![STX];
        out.extend(data);
        out.extend([ETX, lrc(data)]);
        out
    }

    #[test]
    fn round_trips_a_frame() {
        let bytes = encode(Packet::frame(["AUTH", "CP001", "Alicante", "0.35"]));
        assert_eq!(bytes[0], STX);
        assert_eq!(
            decode_all(&bytes),
            vec![Packet::frame(["AUTH", "CP001", "Alicante", "0.35"])]
        );
    }

    #[test]
    fn bad_checksum_is_corrupt_and_next_frame_still_reads() {
        let mut bytes = encode(Packet::frame(["HEALTH", "CP1"]));
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        bytes.extend(encode(Packet::frame(["HEALTH", "CP1"])));
        let packets = decode_all(&bytes);
        assert!(matches!(packets[0], Packet::Corrupt(ref r) if r.contains("LRC")));
        assert_eq!(packets[1], Packet::frame(["HEALTH", "CP1"]));
    }

    #[test]
    fn waits_for_the_checksum_byte() {
        let bytes = encode(Packet::frame(["OK"]));
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert_eq!(FrameCodec::default().decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn an_stx_inside_a_frame_makes_one_bad_frame() {
        // Its LRC is right for its data, STX included: only the STX is wrong.
        let mut bytes = raw_frame(b"HEALTH#CP\x021");
        bytes.extend(encode(Packet::frame(["OK"])));
        assert_eq!(
            decode_all(&bytes),
            vec![
                Packet::Corrupt("STX inside a frame".into()),
                Packet::frame(["OK"])
            ]
        );
        // A frame cut short and a new one after it: one frame with an STX inside.
        let mut bytes = vec![STX, b'x'];
        bytes.extend(encode(Packet::frame(["OK"])));
        assert_eq!(answered(&decode_all(&bytes)).len(), 1);
    }

    #[test]
    fn a_frame_too_long_is_one_bad_frame_however_long() {
        let mut long = vec![b'x'; 5000];
        long[2000] = STX;
        long[3000] = ACK;
        let mut bytes = raw_frame(&long);
        bytes.extend(encode(Packet::frame(["OK"])));
        for chunk in [1, 7, 1000, bytes.len()] {
            assert_eq!(
                decode_chunked(&bytes, chunk),
                vec![
                    Packet::Corrupt(format!("frame longer than {MAX_DATA_LEN} bytes")),
                    Packet::frame(["OK"])
                ],
                "in chunks of {chunk}"
            );
        }
        let longest = "x".repeat(MAX_DATA_LEN);
        assert_eq!(
            decode_all(&raw_frame(longest.as_bytes())),
            vec![Packet::frame([longest])]
        );
    }

    #[test]
    fn bytes_outside_frames_are_stray_and_not_frames() {
        let mut bytes = b"garbage\r\n".to_vec();
        bytes.extend(encode(Packet::frame(["OK"])));
        bytes.extend(b"\n");
        bytes.push(ACK);
        assert_eq!(
            decode_all(&bytes),
            vec![
                Packet::Stray(9),
                Packet::frame(["OK"]),
                Packet::Stray(1),
                Packet::Ack
            ]
        );
    }

    #[test]
    fn refuses_to_encode_a_field_with_a_separator() {
        let mut buf = BytesMut::new();
        assert!(FrameCodec::default()
            .encode(Packet::frame(["a#b"]), &mut buf)
            .is_err());
    }

    /// One piece of what a peer may send: a good frame, a bad one, or bytes outside frames.
    #[derive(Debug, Clone)]
    enum Piece {
        Good(Vec<String>),
        BadLrc(Vec<String>),
        StxInside(Vec<u8>),
        TooLong(usize),
        Stray(Vec<u8>),
    }

    fn piece() -> impl Strategy<Value = Piece> {
        let fields = || proptest::collection::vec("[a-zA-Z0-9 .]{0,10}", 1..4);
        prop_oneof![
            fields().prop_map(Piece::Good),
            fields().prop_map(Piece::BadLrc),
            proptest::collection::vec(any::<u8>().prop_filter("no ETX", |b| *b != ETX), 0..50)
                .prop_map(|mut data| {
                    data.push(STX);
                    Piece::StxInside(data)
                }),
            (MAX_DATA_LEN + 1..3 * MAX_DATA_LEN).prop_map(Piece::TooLong),
            proptest::collection::vec(
                any::<u8>().prop_filter("outside", |b| ![STX, ACK, NACK].contains(b)),
                1..20
            )
            .prop_map(Piece::Stray),
        ]
    }

    fn bytes_of(piece: &Piece) -> Vec<u8> {
        match piece {
            Piece::Good(fields) => encode(Packet::Frame(fields.clone())),
            Piece::BadLrc(fields) => {
                let mut bytes = encode(Packet::Frame(fields.clone()));
                *bytes.last_mut().unwrap() ^= 0x80;
                bytes
            }
            Piece::StxInside(data) => raw_frame(data),
            Piece::TooLong(len) => raw_frame(&vec![STX; *len]),
            Piece::Stray(bytes) => bytes.clone(),
        }
    }

    proptest! {
        #[test]
        fn no_input_makes_the_decoder_panic_or_stall(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut codec = FrameCodec::default();
            let mut rounds = 0;
            while let Some(_p) = codec.decode(&mut buf).unwrap() {
                rounds += 1;
                prop_assert!(rounds <= bytes.len());
            }
        }

        #[test]
        fn any_valid_fields_round_trip(fields in proptest::collection::vec("[^#\u{2}\u{3}]{0,20}", 1..6)) {
            let packet = Packet::Frame(fields);
            prop_assert_eq!(decode_all(&encode(packet.clone())), vec![packet]);
        }

        /// The contract a peer relies on: one answer per frame it sent, good or bad, none
        /// for bytes outside frames, however the bytes arrive.
        #[test]
        fn every_frame_sent_is_one_packet_to_answer(
            pieces in proptest::collection::vec(piece(), 0..12),
            chunk in 1usize..64,
        ) {
            let bytes: Vec<u8> = pieces.iter().flat_map(bytes_of).collect();
            let got = answered(&decode_chunked(&bytes, chunk));
            let sent: Vec<&Piece> = pieces.iter().filter(|p| !matches!(p, Piece::Stray(_))).collect();
            prop_assert_eq!(got.len(), sent.len(), "{:?}", got);
            for (packet, piece) in got.iter().zip(sent) {
                match piece {
                    Piece::Good(fields) => prop_assert_eq!(packet, &Packet::Frame(fields.clone())),
                    _ => prop_assert!(matches!(packet, Packet::Corrupt(_)), "{:?} gave {:?}", piece, packet),
                }
            }
        }
    }
}
