//! The socket frame: `<STX> data <ETX> <LRC>`, LRC = XOR of the data bytes, fields split by `#`.
//!
//! Every request frame is answered by one `ACK` or `NACK` byte followed by one reply frame.
//! The decoder never fails on bad bytes: it yields [`Packet::Corrupt`] and resynchronises on
//! the next `STX`, so a corrupt frame earns a NACK instead of a dropped connection.

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
    /// Bytes that do not form a valid frame, and why.
    Corrupt(String),
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

#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Packet;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, io::Error> {
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
            STX => Ok(decode_frame(buf)),
            _ => {
                let stray = buf
                    .iter()
                    .position(|b| matches!(*b, STX | ACK | NACK))
                    .unwrap_or(buf.len());
                buf.advance(stray);
                Ok(Some(Packet::Corrupt(format!(
                    "{stray} byte(s) outside any frame"
                ))))
            }
        }
    }
}

/// Decodes the frame that starts at `buf[0] == STX`, or waits for more bytes.
fn decode_frame(buf: &mut BytesMut) -> Option<Packet> {
    let body = &buf[1..];
    let etx = body.iter().position(|b| *b == ETX);
    let restart = body.iter().position(|b| *b == STX);
    match (etx, restart) {
        // A new frame began before this one ended: this one was cut short.
        (e, Some(s)) if e.is_none_or(|e| s < e) => {
            buf.advance(1 + s);
            Some(Packet::Corrupt("frame cut short by a new STX".into()))
        }
        (None, _) if body.len() > MAX_DATA_LEN => {
            buf.clear();
            Some(Packet::Corrupt(format!(
                "frame longer than {MAX_DATA_LEN} bytes"
            )))
        }
        (None, _) => None,
        (Some(e), _) if body.len() < e + 2 => None,
        (Some(e), _) => {
            let data = body[..e].to_vec();
            let checksum = body[e + 1];
            buf.advance(1 + e + 2);
            Some(check_frame(data, checksum))
        }
    }
}

fn check_frame(data: Vec<u8>, checksum: u8) -> Packet {
    if data.len() > MAX_DATA_LEN {
        return Packet::Corrupt(format!("frame longer than {MAX_DATA_LEN} bytes"));
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
            Packet::Corrupt(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a corrupt packet cannot be sent",
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

    fn decode_all(bytes: &[u8]) -> Vec<Packet> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(p) = FrameCodec.decode(&mut buf).unwrap() {
            out.push(p);
        }
        out
    }

    fn encode(p: Packet) -> Vec<u8> {
        let mut buf = BytesMut::new();
        FrameCodec.encode(p, &mut buf).unwrap();
        buf.to_vec()
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
        assert_eq!(FrameCodec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn stray_bytes_and_cut_frames_resynchronise() {
        let mut bytes = b"garbage".to_vec();
        bytes.extend([STX, b'x']);
        bytes.extend(encode(Packet::frame(["OK"])));
        bytes.push(ACK);
        let packets = decode_all(&bytes);
        assert!(matches!(packets[0], Packet::Corrupt(_)));
        assert!(matches!(packets[1], Packet::Corrupt(_)));
        assert_eq!(packets[2], Packet::frame(["OK"]));
        assert_eq!(packets[3], Packet::Ack);
    }

    #[test]
    fn refuses_to_encode_a_field_with_a_separator() {
        let mut buf = BytesMut::new();
        assert!(FrameCodec.encode(Packet::frame(["a#b"]), &mut buf).is_err());
    }

    proptest! {
        #[test]
        fn no_input_makes_the_decoder_panic_or_stall(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut rounds = 0;
            while let Some(_p) = FrameCodec.decode(&mut buf).unwrap() {
                rounds += 1;
                prop_assert!(rounds <= bytes.len());
            }
        }

        #[test]
        fn any_valid_fields_round_trip(fields in proptest::collection::vec("[^#\u{2}\u{3}]{0,20}", 1..6)) {
            let packet = Packet::Frame(fields);
            prop_assert_eq!(decode_all(&encode(packet.clone())), vec![packet]);
        }
    }
}
