//! Socket options that the engine sets and `socket2` does not wrap, in one place.
//!
//! Owns: the raw `setsockopt` call (one `unsafe` block), the options built on it
//! (TCP_FASTOPEN, IP_BIND_ADDRESS_NO_PORT, IP_LOCAL_PORT_RANGE), the UDP buffer size both
//! ends ask for, and `--busy-poll` as every socket of both ends takes it. Leaves to others: when to set them (`echo`, `tcp_conn`, `udp_wire`).

use std::io;
use std::os::fd::AsRawFd;

/// Socket buffers asked for on UDP sockets, client and server (the kernel caps them at
/// `net.core.rmem_max` and `wmem_max`), so a burst of datagrams is not dropped before the
/// worker reads it.
pub const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// `--busy-poll`: SO_BUSY_POLL on `s` when given. Raising it needs CAP_NET_ADMIN; without
/// that, the socket is used without the option.
pub fn busy_poll(s: &socket2::Socket, us: Option<u32>) {
    if let Some(us) = us {
        let _ = s.set_busy_poll(us);
    }
}

/// IP_LOCAL_PORT_RANGE (linux/in.h; Linux 6.3+): a per-socket part of the local port range.
/// Not in the libc crate yet.
const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

/// Set an integer socket option.
fn set_int_opt(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads one c_int from a live stack variable of exactly that size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TCP_FASTOPEN on a listener with a queue of `qlen` pending fast-open requests (tcp(7)).
pub fn set_tcp_fastopen(fd: &impl AsRawFd, qlen: libc::c_int) -> io::Result<()> {
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, qlen)
}

/// IP_BIND_ADDRESS_NO_PORT: a bind to a source address leaves the port to `connect`, which
/// picks it per (source, destination), so many sources multiply the usable ports (ip(7)).
pub fn set_bind_address_no_port(fd: &impl AsRawFd) -> io::Result<()> {
    set_int_opt(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// IP_LOCAL_PORT_RANGE: limit the ports `connect` may pick for this socket to `lo..=hi`.
pub fn set_local_port_range(fd: &impl AsRawFd, lo: u16, hi: u16) -> io::Result<()> {
    let value = (u32::from(lo) | (u32::from(hi) << 16)) as libc::c_int;
    set_int_opt(fd, libc::IPPROTO_IP, IP_LOCAL_PORT_RANGE, value)
}
