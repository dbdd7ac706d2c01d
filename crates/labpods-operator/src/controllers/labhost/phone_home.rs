//! Records a phone-home callback on the LabHost, where any replica can write it and the
//! leader's next reconcile reads it: the annotation `labpods.dev/phoned-home` holds the start
//! time of the provisioning run that was waiting, so a late callback from an earlier run never
//! completes a later one. An annotation rather than status: the status belongs to the
//! controller's field manager, and this write may come from a follower replica.

use std::{future::Future, pin::Pin};

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use labpods_api::v1alpha1::{LabHost, Operation, ProvisioningProgress, ProvisioningStep};
use serde_json::json;

use crate::http::{PhoneHomeError, PhoneHomeSink};

pub const ANNOTATION: &str = "labpods.dev/phoned-home";

/// The run id the annotation carries: the run's start, to the second (the apiserver's
/// precision for Time).
pub fn run_id(progress: &ProvisioningProgress) -> String {
    progress.started_at.0.as_second().to_string()
}

/// Whether the host phoned home during the current provisioning run.
pub fn received(host: &LabHost, progress: &ProvisioningProgress) -> bool {
    host.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION))
        .is_some_and(|v| *v == run_id(progress))
}

/// Writes the annotation through the API server.
#[derive(Clone)]
pub struct AnnotationSink {
    client: Client,
}

impl std::fmt::Debug for AnnotationSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnnotationSink")
    }
}

impl AnnotationSink {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl PhoneHomeSink for AnnotationSink {
    fn record<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), PhoneHomeError>> + Send + 'a>> {
        Box::pin(async move {
            let api: Api<LabHost> = Api::all(self.client.clone());
            let lh = api
                .get_opt(host)
                .await?
                .ok_or_else(|| PhoneHomeError::UnknownHost(host.to_string()))?;
            let waiting = lh
                .status
                .as_ref()
                .and_then(|s| s.provisioning.as_ref())
                .filter(|p| {
                    p.operation == Operation::Provision && p.step == ProvisioningStep::WaitBooted
                });
            let Some(progress) = waiting else {
                return Err(PhoneHomeError::NotWaiting(host.to_string()));
            };
            let patch = json!({
                "metadata": {
                    "resourceVersion": lh.metadata.resource_version,
                    "annotations": { ANNOTATION: run_id(progress) },
                }
            });
            api.patch(host, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        })
    }
}
