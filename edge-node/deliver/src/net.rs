//! Sockets with the options the defaults lack: large UDP buffers and dual-stack binds.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::DeliverError;

/// UDP send and receive buffers. A 720p IDR is 50-150 KB, i.e. ~100 datagrams released in one
/// burst per viewer; the kernel default (~200 KB) drops part of such bursts under fan-out, and
/// every drop costs a retransmission round trip.
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A UDP socket for quinn with [`UDP_BUFFER_BYTES`] buffers. An IPv6 wildcard also takes IPv4.
pub fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, DeliverError> {
    let bind_error = |source| DeliverError::Bind {
        protocol: "UDP",
        addr,
        source,
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_error)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).map_err(bind_error)?;
    }
    // The kernel caps these at net.core.{r,w}mem_max; a smaller buffer is not fatal, so a
    // refusal is logged rather than returned.
    if let Err(e) = socket.set_recv_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(error = %e, "could not raise the UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(UDP_BUFFER_BYTES) {
        tracing::warn!(error = %e, "could not raise the UDP send buffer");
    }
    socket.bind(&addr.into()).map_err(bind_error)?;
    Ok(socket.into())
}

/// A listening TCP socket (for the certificate-hash endpoint). An IPv6 wildcard also takes IPv4.
pub fn bind_tcp(addr: SocketAddr) -> Result<tokio::net::TcpListener, DeliverError> {
    let bind_error = |source| DeliverError::Bind {
        protocol: "TCP",
        addr,
        source,
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_error)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).map_err(bind_error)?;
    }
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    socket.listen(128).map_err(bind_error)?;
    tokio::net::TcpListener::from_std(socket.into()).map_err(bind_error)
}
