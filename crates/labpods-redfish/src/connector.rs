//! Hands out one client per BMC system, sharing one transport (and so one session) per
//! endpoint and credentials.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::OnceCell;
use url::Url;

use crate::bmc::{Bmc, BmcConnector, BmcTarget};
use crate::client::RedfishClient;
use crate::credentials::Credentials;
use crate::error::Result;
use crate::policy::ClientPolicy;
use crate::tls::TlsOptions;
use crate::transport::Transport;

type TransportKey = (Url, Credentials, TlsOptions);

/// The production [`BmcConnector`].
#[derive(Debug, Default)]
pub struct RedfishConnector {
    policy: ClientPolicy,
    transports: Mutex<HashMap<TransportKey, Arc<Transport>>>,
    /// Discovery runs outside the lock; concurrent connects to one target share it.
    clients: Mutex<HashMap<BmcTarget, Arc<OnceCell<Arc<RedfishClient>>>>>,
}

impl RedfishConnector {
    pub fn new(policy: ClientPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Like [`BmcConnector::connect`], with the concrete type (request counts, system id).
    pub async fn client(&self, target: &BmcTarget) -> Result<Arc<RedfishClient>> {
        let cell = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(target.clone())
            .or_default()
            .clone();
        let client = cell
            .get_or_try_init(|| async {
                let (transport, created) = self.transport(target)?;
                match RedfishClient::discover(transport.clone(), target.system_id.as_deref()).await
                {
                    Ok(client) => Ok(Arc::new(client)),
                    Err(error) => {
                        if created {
                            // Discovery may have logged in before failing; free the slot.
                            self.forget_transport(target);
                            if let Err(e) = transport.logout().await {
                                tracing::debug!(error = %e, "logout after failed discovery");
                            }
                        }
                        Err(error)
                    }
                }
            })
            .await?;
        Ok(client.clone())
    }

    /// The endpoint's shared transport, and whether this call created it.
    fn transport(&self, target: &BmcTarget) -> Result<(Arc<Transport>, bool)> {
        let mut transports = self
            .transports
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = transport_key(target);
        if let Some(transport) = transports.get(&key) {
            return Ok((transport.clone(), false));
        }
        let transport = Arc::new(Transport::new(
            &target.endpoint,
            target.credentials.clone(),
            &target.tls,
            self.policy.clone(),
        )?);
        transports.insert(key, transport.clone());
        Ok((transport, true))
    }

    fn forget_transport(&self, target: &BmcTarget) {
        self.transports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&transport_key(target));
    }

    /// Forgets the target's client, and every client sharing its transport (same endpoint,
    /// credentials and TLS), and logs that transport's session out: after a credential
    /// rotation the old session must not outlive the old password, nor hold one of the
    /// BMC's few session slots.
    pub async fn disconnect(&self, target: &BmcTarget) -> Result<()> {
        let key = transport_key(target);
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|t, _| transport_key(t) != key);
        let transport = self
            .transports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
        match transport {
            Some(t) => t.logout().await,
            None => Ok(()),
        }
    }

    /// Logs out of every BMC session (on shutdown). Returns the number of logouts that
    /// failed; each failure is logged.
    pub async fn logout_all(&self) -> usize {
        let transports: Vec<Arc<Transport>> = self
            .transports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let results = futures::future::join_all(transports.iter().map(|t| t.logout())).await;
        results
            .into_iter()
            .filter_map(Result::err)
            .inspect(|e| tracing::warn!(error = %e, "BMC logout failed"))
            .count()
    }
}

fn transport_key(target: &BmcTarget) -> TransportKey {
    (
        target.endpoint.clone(),
        target.credentials.clone(),
        target.tls.clone(),
    )
}

impl BmcConnector for RedfishConnector {
    fn connect<'a>(&'a self, target: &'a BmcTarget) -> BoxFuture<'a, Result<Arc<dyn Bmc>>> {
        async move {
            let client: Arc<dyn Bmc> = self.client(target).await?;
            Ok(client)
        }
        .boxed()
    }

    fn disconnect<'a>(&'a self, target: &'a BmcTarget) -> BoxFuture<'a, Result<()>> {
        RedfishConnector::disconnect(self, target).boxed()
    }

    fn logout_all(&self) -> BoxFuture<'_, usize> {
        RedfishConnector::logout_all(self).boxed()
    }
}
