//! A raw TCP client of the frame protocol (`<STX> data <ETX> <LRC>`), written from
//! docs/PROTOCOL.md alone, for tests that speak to a monitor or engine port as anyone could.

use super::{wait_for, DEADLINE};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NACK: u8 = 0x15;

/// The bytes of one frame carrying `data`.
pub fn frame(data: &str) -> Vec<u8> {
    let lrc = data.bytes().fold(0, |a, b| a ^ b);
    let mut out = vec![STX];
    out.extend(data.as_bytes());
    out.extend([ETX, lrc]);
    out
}

/// Reads the ACK/NACK byte and the reply frame's text.
pub fn answer(link: &mut TcpStream) -> (u8, String) {
    let mut verdict = [0u8];
    link.read_exact(&mut verdict).unwrap();
    let mut bytes = Vec::new();
    let mut byte = [0u8];
    loop {
        link.read_exact(&mut byte).unwrap();
        if byte[0] == ETX {
            link.read_exact(&mut byte).unwrap(); // LRC
            break;
        }
        bytes.push(byte[0]);
    }
    assert_eq!(bytes.first(), Some(&STX));
    (verdict[0], String::from_utf8(bytes[1..].to_vec()).unwrap())
}

/// Sends one frame and reads its answer.
pub fn ask(link: &mut TcpStream, data: &str) -> (u8, String) {
    link.write_all(&frame(data)).unwrap();
    answer(link)
}

/// A link to `port` on this machine, with a read timeout so that a silent peer fails the
/// test instead of hanging it.
pub fn connect(port: u16) -> TcpStream {
    let link = wait_for("a connection", DEADLINE, || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    link.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    link
}

/// Whether the peer has closed `link` (reading gives end of file or a reset), reading
/// and dropping what it still sends, up to 1 MiB: a peer that keeps talking has not.
pub fn closed_by_peer(link: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let mut read = 0;
    loop {
        match link.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) if read > 1 << 20 => return false,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}
