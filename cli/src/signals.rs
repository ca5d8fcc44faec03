//! The signals that stop `skiff up`: SIGINT (Ctrl-C), SIGTERM and SIGHUP
//! (the terminal closed). Once installed, none of them kills the process
//! any more; each is only reported, so the cluster is always cleaned up,
//! and a second Ctrl-C during the cleanup cannot cut it short.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The installed handlers.
pub struct Shutdown {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Shutdown {
    /// Installs the handlers. Call it before starting anything that needs
    /// cleaning up.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the first of the signals and names it.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hangup_is_reported_not_fatal() {
        let mut shutdown = Shutdown::install().expect("install");
        // SAFETY: raise has no preconditions; the handler is installed.
        unsafe {
            libc::raise(libc::SIGHUP);
        }
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), shutdown.recv())
            .await
            .expect("reported");
        assert_eq!(got, "SIGHUP");
    }
}
