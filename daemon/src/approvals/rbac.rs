//! With `auth.impersonate`, an approval needs the approver's own right to make the change: a
//! SelfSubjectAccessReview sent as them (`patch` on the target, or `delete` for a pod) must
//! allow it. The same check for every path that knows a Kubernetes identity (MCP, the
//! approvals API and the CLI on it).

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec};

use crate::cluster::Impersonation;
use crate::model::proposal::{Action, Proposal};

/// Why an approver may not approve.
#[derive(Debug, thiserror::Error)]
pub enum ApproverRbacError {
    /// The cluster's RBAC does not let them make the change.
    #[error("{0}")]
    Denied(String),
    /// The review could not be made (the apiserver, or kubemedic's own `impersonate` right).
    #[error("cannot check {user}'s access in the cluster: {why}")]
    Unavailable { user: String, why: String },
}

/// Whether `user` in `groups` may make `p`'s change themselves.
pub async fn approver_may(
    impersonation: &Impersonation,
    user: &str,
    groups: &[String],
    p: &Proposal,
) -> Result<(), ApproverRbacError> {
    let unavailable = |why: String| ApproverRbacError::Unavailable { user: user.to_owned(), why };
    let info = crate::policy::target::kind_info(&p.target.kind)
        .ok_or_else(|| unavailable(format!("unsupported kind {}", p.target.kind)))?;
    let group = info.api_version.rsplit_once('/').map(|(g, _)| g.to_owned()).unwrap_or_default();
    let verb = match p.action {
        Action::Patch { .. } => "patch",
        Action::Delete => "delete",
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(group),
                resource: Some(info.plural.to_owned()),
                namespace: (!p.target.namespace.is_empty()).then(|| p.target.namespace.clone()),
                name: Some(p.target.name.clone()),
                verb: Some(verb.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let client = impersonation.client(user, groups).map_err(|e| unavailable(crate::model::error::error_chain(&e)))?;
    let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client);
    let answer = api
        .create(&kube::api::PostParams::default(), &review)
        .await
        .map_err(|e| unavailable(crate::policy::target::describe(&e)))?;
    let status = answer.status.unwrap_or_default();
    if status.allowed {
        return Ok(());
    }
    let ns = if p.target.namespace.is_empty() { String::new() } else { format!(" in {}", p.target.namespace) };
    Err(ApproverRbacError::Denied(format!(
        "the cluster's RBAC does not let {user} {verb} {} {}{ns}, so they may not approve proposal {}{}",
        info.plural,
        p.target.name,
        p.id,
        status.reason.filter(|r| !r.is_empty()).map(|r| format!(" ({r})")).unwrap_or_default()
    )))
}
