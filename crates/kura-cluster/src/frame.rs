//! Length-prefixed frames over a byte stream: `len u32 (big-endian) | payload`.
//!
//! Every protocol on the cluster port is a sequence of frames in both directions; what a frame
//! means is the protocol's business. A frame larger than the stream's limit is refused before
//! anything is allocated for it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;

/// The TLS stream of one cluster connection (either end).
pub type ClusterIo = tokio_rustls::TlsStream<TcpStream>;

/// Default largest frame: must exceed the largest raft log entry, which is bounded by the
/// largest storage transaction.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// Errors of reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed.
    #[error("cluster stream: {0}")]
    Io(#[from] std::io::Error),
    /// A frame is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Announced (or attempted) size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("cluster stream ended inside a frame")]
    Truncated,
}

/// A framed stream. Writes are buffered until [`FramedStream::flush`].
#[derive(Debug)]
pub struct FramedStream<S = ClusterIo> {
    io: BufWriter<S>,
    max_frame: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> FramedStream<S> {
    /// Frames `io`, refusing frames larger than `max_frame` bytes in either direction.
    pub fn new(io: S, max_frame: usize) -> Self {
        FramedStream {
            io: BufWriter::with_capacity(64 * 1024, io),
            max_frame: max_frame.min(u32::MAX as usize),
        }
    }

    /// The largest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        self.io.get_ref()
    }

    /// Queues one frame (sent at the next [`Self::flush`] or when the buffer fills).
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        if payload.len() > self.max_frame {
            return Err(FrameError::TooLarge {
                size: payload.len(),
                limit: self.max_frame,
            });
        }
        self.io
            .write_all(&(payload.len() as u32).to_be_bytes())
            .await?;
        self.io.write_all(payload).await?;
        Ok(())
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        self.io.flush().await?;
        Ok(())
    }

    /// Queues one frame and flushes.
    pub async fn send_flush(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        self.send(payload).await?;
        self.flush().await
    }

    /// Reads the next frame; `None` when the peer closed the stream between frames.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self.io.read(&mut len[got..]).await?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            got += n;
        }
        let size = u32::from_be_bytes(len) as usize;
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size,
                limit: self.max_frame,
            });
        }
        let mut buf = vec![0u8; size];
        match self.io.read_exact(&mut buf).await {
            Ok(_) => Ok(Some(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the next frame, treating the end of the stream as an error.
    pub async fn recv_some(&mut self) -> Result<Vec<u8>, FrameError> {
        self.recv().await?.ok_or(FrameError::Truncated)
    }

    /// Flushes and closes the write side.
    pub async fn close(&mut self) -> Result<(), FrameError> {
        self.io.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_eof_is_clean_between_frames() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = FramedStream::new(a, 1 << 20);
        let mut r = FramedStream::new(b, 1 << 20);
        let big = vec![7u8; 300_000];
        let writer = tokio::spawn(async move {
            w.send(b"one").await.unwrap();
            w.send(b"").await.unwrap();
            w.send(&big).await.unwrap();
            w.close().await.unwrap();
        });
        assert_eq!(r.recv().await.unwrap().unwrap(), b"one");
        assert_eq!(r.recv().await.unwrap().unwrap(), b"");
        assert_eq!(r.recv().await.unwrap().unwrap().len(), 300_000);
        assert!(r.recv().await.unwrap().is_none());
        assert!(matches!(r.recv_some().await, Err(FrameError::Truncated)));
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn oversized_and_truncated_frames_fail() {
        let (a, b) = tokio::io::duplex(1024);
        let mut w = FramedStream::new(a, 1 << 20);
        let mut r = FramedStream::new(b, 16);
        w.send_flush(&[1u8; 17]).await.unwrap();
        assert!(matches!(
            r.recv().await,
            Err(FrameError::TooLarge {
                size: 17,
                limit: 16
            })
        ));
        let (sink, _keep) = tokio::io::duplex(64);
        let mut small = FramedStream::new(sink, 4);
        assert!(matches!(
            small.send(b"12345").await,
            Err(FrameError::TooLarge { .. })
        ));

        let (mut a, b) = tokio::io::duplex(1024);
        let mut r = FramedStream::new(b, 1 << 20);
        a.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        drop(a);
        assert!(matches!(r.recv().await, Err(FrameError::Truncated)));

        let (mut a, b) = tokio::io::duplex(1024);
        let mut r = FramedStream::new(b, 1 << 20);
        a.write_all(&[0, 0]).await.unwrap();
        drop(a);
        assert!(matches!(r.recv().await, Err(FrameError::Truncated)));
    }
}
