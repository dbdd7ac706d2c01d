//! Where shards live: [`ConfigMapStore`] in the cluster (ConfigMaps in the operator's
//! namespace, one gzip'd `binaryData` key each), [`MemoryStore`] for tests and the benchmark
//! (with injected failures). The writer needs five verbs: list, get, create, update (with
//! a resourceVersion precondition), delete.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

/// Every history ConfigMap carries this label; its value is the shard kind.
pub const KIND_LABEL: &str = "labpods.dev/history";
/// The day (`2026-12-02`) or month (`2026-12`) a shard covers.
pub const PERIOD_LABEL: &str = "labpods.dev/history-period";
/// The one key of a shard's binaryData.
pub const DATA_KEY: &str = "records.jsonl.gz";

/// Raw allocations of a day, or the daily usage rows of a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShardKind {
    Raw,
    Usage,
}

impl ShardKind {
    pub fn label(self) -> &'static str {
        match self {
            ShardKind::Raw => "raw",
            ShardKind::Usage => "usage",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "raw" => Some(ShardKind::Raw),
            "usage" => Some(ShardKind::Usage),
            _ => None,
        }
    }
}

/// One stored shard; `version` is the store's (a resourceVersion) for optimistic updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub name: String,
    pub kind: ShardKind,
    pub period: String,
    pub data: Vec<u8>,
    pub version: Option<String>,
}

/// A shard without its data, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMeta {
    pub name: String,
    pub kind: ShardKind,
    pub period: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history shard {0} changed meanwhile")]
    Conflict(String),
    #[error("history store: {0}")]
    Failed(String),
    /// The caller may not read or write the shards (RBAC): a person without the role.
    #[error("history store: forbidden: {0}")]
    Forbidden(String),
}

pub trait ShardStore: Send + Sync + 'static {
    fn list(&self) -> impl Future<Output = Result<Vec<ShardMeta>, StoreError>> + Send;
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Shard>, StoreError>> + Send;
    /// Creates the shard (no version) or replaces the version it was read at; returns the
    /// new version.
    fn put(&self, shard: &Shard) -> impl Future<Output = Result<String, StoreError>> + Send;
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// ConfigMaps in one namespace.
#[derive(Clone)]
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
}

impl std::fmt::Debug for ConfigMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapStore").finish_non_exhaustive()
    }
}

impl ConfigMapStore {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
        }
    }
}

fn failed(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(s) if s.code == 403 => StoreError::Forbidden(s.message),
        e => StoreError::Failed(e.to_string()),
    }
}

fn meta_of(cm: &ConfigMap) -> Option<ShardMeta> {
    let labels = cm.labels();
    Some(ShardMeta {
        name: cm.name_any(),
        kind: ShardKind::parse(labels.get(KIND_LABEL)?)?,
        period: labels.get(PERIOD_LABEL)?.clone(),
    })
}

impl ShardStore for ConfigMapStore {
    async fn list(&self) -> Result<Vec<ShardMeta>, StoreError> {
        // Metadata only would be lighter, but a ConfigMap list is paged and a shard is small.
        let params = ListParams::default().labels(KIND_LABEL);
        let list = self.api.list_metadata(&params).await.map_err(failed)?;
        let mut out: Vec<ShardMeta> = list
            .items
            .iter()
            .filter_map(|m| {
                let labels = m.metadata.labels.as_ref()?;
                Some(ShardMeta {
                    name: m.metadata.name.clone()?,
                    kind: ShardKind::parse(labels.get(KIND_LABEL)?)?,
                    period: labels.get(PERIOD_LABEL)?.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn get(&self, name: &str) -> Result<Option<Shard>, StoreError> {
        let Some(cm) = self.api.get_opt(name).await.map_err(failed)? else {
            return Ok(None);
        };
        let Some(meta) = meta_of(&cm) else {
            return Ok(None);
        };
        let data = cm
            .binary_data
            .as_ref()
            .and_then(|d| d.get(DATA_KEY))
            .map(|b| b.0.clone())
            .unwrap_or_default();
        Ok(Some(Shard {
            name: meta.name,
            kind: meta.kind,
            period: meta.period,
            data,
            version: cm.resource_version(),
        }))
    }

    async fn put(&self, shard: &Shard) -> Result<String, StoreError> {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(shard.name.clone()),
                labels: Some(BTreeMap::from([
                    ("app.kubernetes.io/part-of".to_owned(), "labpods".to_owned()),
                    (KIND_LABEL.to_owned(), shard.kind.label().to_owned()),
                    (PERIOD_LABEL.to_owned(), shard.period.clone()),
                ])),
                resource_version: shard.version.clone(),
                ..ObjectMeta::default()
            },
            binary_data: Some(BTreeMap::from([(
                DATA_KEY.to_owned(),
                ByteString(shard.data.clone()),
            )])),
            ..ConfigMap::default()
        };
        let pp = PostParams::default();
        let written = match &shard.version {
            None => self.api.create(&pp, &cm).await,
            Some(_) => self.api.replace(&shard.name, &pp, &cm).await,
        };
        match written {
            Ok(cm) => Ok(cm.resource_version().unwrap_or_default()),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Err(StoreError::Conflict(shard.name.clone()))
            }
            Err(e) => Err(failed(e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(failed(e)),
        }
    }
}

/// Shards in memory, with counters of what was written and failures to inject.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Memory>>,
}

#[derive(Debug, Default)]
struct Memory {
    shards: BTreeMap<String, Shard>,
    next_version: u64,
    fail_next: u32,
    puts: u64,
    bytes_written: u64,
}

/// What a [`MemoryStore`] holds and has written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    pub shards: usize,
    pub bytes: u64,
    pub largest_shard: u64,
    pub puts: u64,
    pub bytes_written: u64,
}

impl MemoryStore {
    /// The next `n` calls fail, as an apiserver that is down.
    pub fn fail_next(&self, n: u32) {
        if let Ok(mut m) = self.inner.lock() {
            m.fail_next = n;
        }
    }

    pub fn stats(&self) -> MemoryStats {
        let Ok(m) = self.inner.lock() else {
            return MemoryStats::default();
        };
        MemoryStats {
            shards: m.shards.len(),
            bytes: m.shards.values().map(|s| s.data.len() as u64).sum(),
            largest_shard: m
                .shards
                .values()
                .map(|s| s.data.len() as u64)
                .max()
                .unwrap_or(0),
            puts: m.puts,
            bytes_written: m.bytes_written,
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Memory) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut m = self
            .inner
            .lock()
            .map_err(|_| StoreError::Failed("poisoned".into()))?;
        if m.fail_next > 0 {
            m.fail_next -= 1;
            return Err(StoreError::Failed("injected failure".into()));
        }
        f(&mut m)
    }
}

impl ShardStore for MemoryStore {
    async fn list(&self) -> Result<Vec<ShardMeta>, StoreError> {
        self.with(|m| {
            Ok(m.shards
                .values()
                .map(|s| ShardMeta {
                    name: s.name.clone(),
                    kind: s.kind,
                    period: s.period.clone(),
                })
                .collect())
        })
    }

    async fn get(&self, name: &str) -> Result<Option<Shard>, StoreError> {
        self.with(|m| Ok(m.shards.get(name).cloned()))
    }

    async fn put(&self, shard: &Shard) -> Result<String, StoreError> {
        self.with(|m| {
            let current = m.shards.get(&shard.name).and_then(|s| s.version.clone());
            if current != shard.version {
                return Err(StoreError::Conflict(shard.name.clone()));
            }
            m.next_version += 1;
            let version = m.next_version.to_string();
            let mut stored = shard.clone();
            stored.version = Some(version.clone());
            m.puts += 1;
            m.bytes_written += shard.data.len() as u64;
            m.shards.insert(shard.name.clone(), stored);
            Ok(version)
        })
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.with(|m| {
            m.shards.remove(name);
            Ok(())
        })
    }
}
