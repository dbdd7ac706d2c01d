//! One watch per kind for a leadership term, shared by the controllers that read the kind.
//! The LabHost controller, the Lease controller and the scheduler each read LabHosts and
//! Leases; with a watch each, every object was cached three times and every change decoded
//! three times. A [`Watch`] keeps one cache and hands each event, deletions included (kube's
//! shared streams pass on none, and the LabHost controller must see a Lease go), to every
//! subscriber once the cache has it, and keeps the [`Index`]es asked of it.

use std::fmt::Debug;

use futures::{StreamExt, stream::BoxStream};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, Store, store::Writer},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::index::{Index, Keys};

/// Events queued per subscriber. A full queue holds the watch back rather than lose an
/// event; every subscriber is a controller's trigger or the scheduler's wake-up, which take
/// their events as they come.
const QUEUE: usize = 256;

/// A subscriber's events, each after the shared cache has it.
pub type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// What a controller gets of a watch: the shared cache and its own events.
pub struct Subscription<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    pub store: Store<K>,
    pub events: Events<K>,
}

impl<K> Debug for Subscription<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("kind", &K::kind(&()))
            .finish_non_exhaustive()
    }
}

/// The one watch of `K` for a term, with its cache and subscribers.
pub struct Watch<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    store: Store<K>,
    writer: Writer<K>,
    subscribers: Vec<mpsc::Sender<watcher::Event<K>>>,
    indexes: Vec<(Index<K>, Keys<K>)>,
}

impl<K> Debug for Watch<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("kind", &K::kind(&()))
            .field("subscribers", &self.subscribers.len())
            .finish_non_exhaustive()
    }
}

impl<K> Watch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// A watch of every `K` of `api`; nothing is read until [`Watch::run`].
    pub fn new(api: Api<K>) -> Self {
        let (store, writer) = reflector::store();
        Self {
            api,
            store,
            writer,
            subscribers: Vec::new(),
            indexes: Vec::new(),
        }
    }

    /// An index of the objects by `keys`, kept as fresh as the cache: updated before any
    /// subscriber sees the event.
    pub fn index(&mut self, keys: impl Fn(&K) -> Vec<String> + Send + Sync + 'static) -> Index<K> {
        let index = Index::new();
        self.indexes.push((index.clone(), Box::new(keys)));
        index
    }

    /// The shared cache, and every event from [`Watch::run`] on. The events must be polled
    /// until they are dropped.
    pub fn subscribe(&mut self) -> Subscription<K> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.subscribers.push(tx);
        let events = futures::stream::unfold(rx, |mut rx| async move {
            let event = rx.recv().await?;
            Some((Ok(event), rx))
        })
        .boxed();
        Subscription {
            store: self.store.clone(),
            events,
        }
    }

    /// Watches (with kube's default backoff) until every subscriber is gone.
    pub async fn run(self) {
        let Self {
            api,
            writer,
            mut subscribers,
            indexes,
            ..
        } = self;
        let kind = K::kind(&()).into_owned();
        // No controller reads managedFields, and they are a good part of what a status
        // applied by several managers weighs in memory.
        let events = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(|object| object.meta_mut().managed_fields = None),
        );
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(%kind, %error, "watch failed; retrying");
                    continue;
                }
            };
            for (index, keys) in &indexes {
                index.apply(&event, keys);
            }
            let mut open = Vec::with_capacity(subscribers.len());
            for subscriber in subscribers {
                if subscriber.send(event.clone()).await.is_ok() {
                    open.push(subscriber);
                }
            }
            subscribers = open;
            if subscribers.is_empty() {
                return;
            }
        }
    }
}
