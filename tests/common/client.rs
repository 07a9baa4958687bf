//! Plain std clients of an echo server on loopback, every read and write with a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Timeout for any single socket connect, read or write that should succeed.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Deterministic, non-repeating-looking bytes, so a reordered or shifted echo cannot match.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A TCP connection to `addr` with `IO_TIMEOUT` on reads and writes, Nagle off.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Write `msg` and read back exactly as many bytes; they must be the same.
pub fn echo_small(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).expect("write message");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).expect("read echo");
    assert!(back == msg, "echo of {} bytes differs", msg.len());
}
