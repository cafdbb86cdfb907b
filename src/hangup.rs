//! A client that hangs up ends its request: [`HangUpAcceptor`] wraps the listener so that the end
//! of a connection's input reads as an error, not as a clean end of file.
//!
//! Why: hyper notices a client closing its connection while a request is being handled, and fails
//! the connection; the request's future should then be dropped, which withdraws its queued
//! password hash (`auth::password`). But poem 3.1's `serve_connection` polls a connection again
//! after it has failed (to shut it down gracefully), and hyper, whose write side is still open
//! after a mere end of file, resumes the abandoned request and runs it to the end — bcrypt
//! included — to write an answer nobody reads. A read error instead closes both sides of hyper's
//! connection state, so that second poll finds nothing left to do, and the future is dropped.
//!
//! Only the end of input changes: a client that half-closes (sends its request, then shuts down
//! its writing side and waits) now gets no answer, which is hyper's own default ("closing the
//! connection immediately if read detects an EOF in the middle of a request"); a connection closed
//! between requests ends as before.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use poem::{
    http::uri::Scheme,
    listener::Acceptor,
    web::{LocalAddr, RemoteAddr},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An [`Acceptor`] whose connections report the client's hang-up as an error.
#[derive(Debug)]
pub struct HangUpAcceptor<A>(pub A);

impl<A: Acceptor> Acceptor for HangUpAcceptor<A> {
    type Io = HangUpIo<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        Ok((HangUpIo(io), local, remote, scheme))
    }
}

/// A connection whose end of input is an error ([`io::ErrorKind::ConnectionAborted`]).
#[derive(Debug)]
pub struct HangUpIo<T>(T);

impl<T: AsyncRead + Unpin> AsyncRead for HangUpIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the client closed the connection",
                )))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HangUpIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn data_reads_as_data_and_the_end_of_input_as_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = HangUpIo(server);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n");

        drop(client);
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
    }

    #[tokio::test]
    async fn an_empty_buffer_is_not_mistaken_for_the_end_of_input() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = HangUpIo(server);
        client.write_all(b"GET").await.unwrap();
        assert_eq!(server.read(&mut []).await.unwrap(), 0);
        let mut buf = [0u8; 8];
        assert_eq!(server.read(&mut buf).await.unwrap(), 3);
    }
}
