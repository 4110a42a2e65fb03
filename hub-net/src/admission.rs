//! Bounded accepting: at most so many accepted connections are in a given
//! stage at once; past that, new ones are closed as they arrive, so slow
//! or idle clients cannot use up the process's file descriptors.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// A listener whose admitted connections each hold a permit.
pub(crate) struct Admission {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    /// Connections closed for want of a permit (warned about at the first
    /// and every 1000th).
    shed: u64,
    what: &'static str,
}

impl Admission {
    /// `what` names the listener in the logs.
    pub(crate) fn new(listener: TcpListener, limit: usize, what: &'static str) -> Self {
        Admission {
            listener,
            permits: Arc::new(Semaphore::new(limit)),
            shed: 0,
            what,
        }
    }

    /// The next admitted connection and its permit (release it when the
    /// stage the limit is for ends); `None` once `cancel` fires.
    pub(crate) async fn next(
        &mut self,
        cancel: &CancellationToken,
    ) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        loop {
            let (stream, from) = select! {
                _ = cancel.cancelled() => return None,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(listener = self.what, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => return Some((stream, from, permit)),
                Err(_) => {
                    if self.shed.is_multiple_of(1000) {
                        warn!(
                            listener = self.what,
                            %from,
                            shed = self.shed,
                            "too many connections in progress: closing new ones"
                        );
                    }
                    self.shed += 1;
                }
            }
        }
    }
}
