//! The state a running fleet shares: each BMC's model and faults, the fleet's credentials and
//! clock. Its own module so that the Redfish service, the admin API and cloud-init depend on it
//! alone, and the code that binds listeners and builds their routers (`sim`) sits above them all.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use url::Url;

use crate::model::{Bmc, Timing};
use crate::{Faults, SimConfig};

/// One simulated BMC.
#[derive(Debug)]
pub(crate) struct Host {
    pub index: usize,
    pub addr: SocketAddr,
    bmc: Mutex<Bmc>,
    pub faults: watch::Sender<Faults>,
}

impl Host {
    /// Host `index` (1-based), listening on `addr`, healthy but for `faults`.
    pub fn new(index: usize, addr: SocketAddr, timing: Timing, faults: Faults) -> Self {
        Host {
            index,
            addr,
            bmc: Mutex::new(Bmc::new(timing)),
            faults: watch::Sender::new(faults),
        }
    }

    pub fn bmc(&self) -> MutexGuard<'_, Bmc> {
        // A panic while holding the lock cannot leave a Bmc half-updated in a way that matters
        // to a simulator; keep serving.
        self.bmc.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the servers share.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub config: SimConfig,
    pub hosts: Vec<Host>,
    epoch: Instant,
    pub shutdown: watch::Receiver<bool>,
    /// The password an admin changed the account to ([`Fleet::rotate_password`]);
    /// `config.password` until then.
    rotated_password: Mutex<Option<String>>,
}

impl Fleet {
    /// A fleet whose virtual time starts now.
    pub fn new(config: SimConfig, hosts: Vec<Host>, shutdown: watch::Receiver<bool>) -> Self {
        Fleet {
            config,
            hosts,
            epoch: Instant::now(),
            shutdown,
            rotated_password: Mutex::new(None),
        }
    }

    /// Virtual time: since the fleet started.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Host `index` (1-based).
    pub fn host(&self, index: usize) -> Option<&Host> {
        index.checked_sub(1).and_then(|i| self.hosts.get(i))
    }

    /// True for the fleet's username and password.
    pub fn login_ok(&self, user: &str, password: &str) -> bool {
        let rotated = self.rotated();
        user == self.config.username
            && password == rotated.as_deref().unwrap_or(&self.config.password)
    }

    /// True for a basic-auth "user:password" pair with the fleet's credentials.
    pub fn credentials_match(&self, pair: &str) -> bool {
        pair.split_once(':')
            .is_some_and(|(user, password)| self.login_ok(user, password))
    }

    /// From now on logins take `password` instead of the one before (see
    /// [`crate::SimHandle::rotate_password`]).
    pub fn rotate_password(&self, password: &str) {
        *self.rotated() = Some(password.to_owned());
    }

    fn rotated(&self) -> MutexGuard<'_, Option<String>> {
        // A password is replaced whole; a poisoned lock still holds a valid one.
        self.rotated_password
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn scheme(&self) -> &'static str {
        if self.config.tls { "https" } else { "http" }
    }

    pub fn endpoint(&self, host: &Host) -> Url {
        let text = format!("{}://{}/", self.scheme(), host.addr);
        // A scheme and a socket address always make a valid URL.
        Url::parse(&text).unwrap_or_else(|err| unreachable!("{text}: {err}"))
    }
}
