//! The UDP wire format both UDP modes share (`udp_client`: flows; `udp_ephemeral`: a socket
//! per datagram): the request header (magic, worker, sequence number, send time) that matches
//! every reply to its request, the checks of a reply against it, and the client socket.
//!
//! Leaves to others: what a flow or a datagram is waiting for (the modes), recording (`client`).

use crate::driver::Target;
use crate::sockopt;
use crate::{Error, Result};
use mio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;

/// UDP datagram header: magic, worker, sequence number, send time.
pub const UDP_HEADER_LEN: usize = 24;
const UDP_MAGIC: u32 = 0x4350_5544; // "CPUD"

/// The header of a request datagram.
pub(crate) fn write_header(buf: &mut [u8], worker: u32, seq: u64, sent_ns: u64) {
    buf[0..4].copy_from_slice(&UDP_MAGIC.to_le_bytes());
    buf[4..8].copy_from_slice(&worker.to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    buf[16..24].copy_from_slice(&sent_ns.to_le_bytes());
}

/// The sequence number of `datagram` if it carries worker `worker`'s header.
pub(crate) fn sequence_of(datagram: &[u8], worker: u32) -> Option<u64> {
    let ours = datagram.len() >= UDP_HEADER_LEN
        && datagram[0..4] == UDP_MAGIC.to_le_bytes()
        && datagram[4..8] == worker.to_le_bytes();
    ours.then(|| u64::from_le_bytes(datagram[8..16].try_into().expect("8 bytes")))
}

/// `datagram` echoes a request whose bytes after the header are those of `payload`.
pub(crate) fn intact(datagram: &[u8], payload: &[u8]) -> bool {
    datagram.len() == payload.len() && datagram[UDP_HEADER_LEN..] == payload[UDP_HEADER_LEN..]
}

/// A non-blocking UDP socket connected to `target`, from `source` if given, with SO_BUSY_POLL
/// set to `busy_poll_us` if given.
pub(crate) fn open(
    target: &Target,
    source: Option<std::net::IpAddr>,
    busy_poll_us: Option<u32>,
) -> Result<UdpSocket> {
    let addr = target.addr;
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(
        |source| Error::Io {
            what: format!("cannot open a UDP socket for {}", target.name),
            source,
        },
    )?;
    s.set_nonblocking(true).map_err(Error::Poll)?;
    let _ = s.set_recv_buffer_size(sockopt::UDP_SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(sockopt::UDP_SOCKET_BUFFER);
    sockopt::busy_poll(&s, busy_poll_us);
    if let Some(src) = source {
        s.bind(&SocketAddr::new(src, 0).into())
            .map_err(|source| Error::Io {
                what: format!("cannot bind UDP source address {src}"),
                source,
            })?;
    }
    s.connect(&addr.into()).map_err(|source| Error::Io {
        what: format!("cannot address {} over UDP", target.name),
        source,
    })?;
    Ok(UdpSocket::from_std(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--busy-poll` reaches client UDP sockets (it used to be set on TCP sockets only).
    /// Raising SO_BUSY_POLL needs CAP_NET_ADMIN: without it the socket still opens, without
    /// the option.
    #[test]
    fn open_sets_busy_poll() {
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = Target {
            name: "peer".into(),
            addr: peer.local_addr().unwrap(),
        };
        let s = open(&target, None, Some(7)).unwrap();
        let want = if unsafe { libc::geteuid() } == 0 {
            7
        } else {
            0
        };
        assert_eq!(socket2::SockRef::from(&s).busy_poll().unwrap(), want);
        let s = open(&target, None, None).unwrap();
        assert_eq!(socket2::SockRef::from(&s).busy_poll().unwrap(), 0);
    }

    #[test]
    fn a_header_is_read_back_by_its_worker_only() {
        let mut b = vec![b'x'; 32];
        write_header(&mut b, 3, 42, 7);
        assert_eq!(sequence_of(&b, 3), Some(42));
        assert_eq!(sequence_of(&b, 4), None, "another worker's");
        assert_eq!(sequence_of(&b[..UDP_HEADER_LEN - 1], 3), None, "too short");
        let mut echo = b.clone();
        assert!(intact(&echo, &b));
        echo[UDP_HEADER_LEN] = b'y';
        assert!(!intact(&echo, &b), "payload changed");
    }
}
