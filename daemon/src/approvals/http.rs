//! HTTP routes of the approval paths:
//! - `POST /slack/interactions`: Slack button clicks, signed (v0) and fresh
//!   (five minutes) or refused with 401 before anything is read;
//! - `GET /api/proposals/{id}`, `POST /api/proposals/{id}/approve|reject`:
//!   what `kubemedic approve|reject` calls, with a bearer token or OIDC JWT
//!   checked by the same authenticator as `/mcp` (approver and admin decide).
//!
//! Slack wants an answer within three seconds, so an approval is recorded
//! synchronously (the CAS decides who wins) and applied in the background.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};

use super::{ApprovalError, Approvals, Decision, ProposalState};
use crate::auth::{Authenticator, Role};
use crate::model::proposal::Proposal;
use crate::slack::{Secret, blocks, interaction, signature};

/// Who is calling the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    /// May approve or reject.
    pub approver: bool,
    /// Kubernetes groups (for the RBAC check with `auth.impersonate`).
    pub groups: Vec<String>,
}

/// Hex SHA-256 of a token, as stored in configuration (the same hash as `/mcp` tokens).
pub use crate::auth::token_hash;

/// What the routes need besides the service.
#[derive(Clone)]
pub struct HttpOptions {
    /// Slack signing secret; without it `/slack/interactions` answers 503.
    pub signing_secret: Option<Secret>,
    /// The same authenticator as `/mcp`: hashed bearer tokens and OIDC JWTs; the approver
    /// and admin roles may decide.
    pub auth: Arc<Authenticator>,
}

#[derive(Clone)]
struct AppState {
    approvals: Arc<Approvals>,
    options: HttpOptions,
}

/// The approval routes, to be merged into the daemon's router.
pub fn router(approvals: Arc<Approvals>, options: HttpOptions) -> Router {
    Router::new()
        .route("/slack/interactions", post(slack_interactions))
        .route("/api/proposals/{id}", get(get_proposal))
        .route("/api/proposals/{id}/approve", post(approve))
        .route("/api/proposals/{id}/reject", post(reject))
        .layer(axum::middleware::map_response(gate_response))
        .with_state(AppState { approvals, options })
}

/// Largest answer the gate reads whole (a proposal with its diff is far smaller).
const GATE_BODY_LIMIT: usize = 16 << 20;

/// The approvals API's sink: every JSON answer leaves through the redaction gate.
async fn gate_response(response: Response) -> Response {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, GATE_BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "answer too large to send"),
    };
    let out = match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) if json => {
            if !crate::redact::gate().value(&mut v) {
                bytes
            } else {
                Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
            }
        }
        _ => match crate::redact::gate().bytes(&bytes) {
            std::borrow::Cow::Borrowed(_) => bytes,
            std::borrow::Cow::Owned(b) => Bytes::from(b),
        },
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn slack_interactions(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &s.options.signing_secret else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "Slack is not configured");
    };
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = jiff::Timestamp::now().as_second();
    if let Err(err) = signature::verify(
        secret.expose().as_bytes(),
        h("x-slack-request-timestamp"),
        h("x-slack-signature"),
        &body,
        now,
    ) {
        tracing::warn!(reason = %err, "refused a Slack request");
        return error(StatusCode::UNAUTHORIZED, &err.to_string());
    }
    let click = match interaction::parse(&body) {
        Ok(Some(actions)) => actions.click(),
        Ok(None) => None,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let Some(click) = click else { return StatusCode::OK.into_response() };
    let approvals = s.approvals.clone();
    let principal = approvals.slack_principal(&click.user).await;
    let pre = if principal.role.is_none_or(|r| r < Role::Approver) {
        Some((
            "not mapped to the approver role in slack.approvers",
            "You do not hold the approver role in kubemedic (slack.approvers); nothing was changed.",
        ))
    } else if click.digest.is_none() {
        Some((
            "the click carries no content digest",
            "This button does not say which content it approves (an old or forged message); nothing was changed.",
        ))
    } else {
        None
    };
    if let Some((reason, reply)) = pre {
        tracing::warn!(user = %click.user, proposal = %click.proposal_id, reason, "refused a Slack decision");
        approvals.audit_refusal(&click.user, "slack", &click.proposal_id, click.approve, reason);
        if let Some(channel) = click.channel.as_deref() {
            approvals.tell_user(channel, &click.user, reply).await;
        }
        return StatusCode::OK.into_response();
    }
    let decision = Decision {
        user: &click.user,
        identity: &principal.identity,
        approve: click.approve,
        via: "slack",
        digest: click.digest.as_deref(),
    };
    let result = approvals.record(&click.proposal_id, &decision).await;
    let refusal = match result {
        Ok(p) => {
            if p.state == ProposalState::Approved {
                approvals.apply_later(p.id.clone(), "slack");
            }
            None
        }
        Err(ApprovalError::NotAllowed { .. }) => {
            Some("You are not on the approver list for this proposal; nothing was changed.".to_owned())
        }
        Err(ApprovalError::AlreadyDecided { state, by, .. }) => Some(format!(
            "This proposal is already {}{}; nothing was changed.",
            state.as_str(),
            by.map(|b| format!(" by {}", blocks::who(&b))).unwrap_or_default()
        )),
        Err(ApprovalError::Expired(_)) => Some("This proposal has expired; nothing was changed.".to_owned()),
        Err(ApprovalError::Tampered { .. }) => Some(
            "This proposal as stored is not what kubemedic offered (it was changed outside kubemedic); nothing was \
             changed."
                .to_owned(),
        ),
        Err(ApprovalError::IdentityUnknown { .. }) => Some(
            "A person proposed this change, and your Slack user has no identity mapping in slack.approvers, so \
             kubemedic cannot tell that you are not that person; nothing was changed."
                .to_owned(),
        ),
        Err(ApprovalError::SelfApproval { .. }) => {
            Some("You requested this proposal and may not approve it yourself; nothing was changed.".to_owned())
        }
        Err(ApprovalError::DigestMismatch { seen, now, .. }) => Some(format!(
            "This proposal's change is no longer the one this card showed (digest {seen}, now {now}); nothing was changed."
        )),
        Err(ApprovalError::NotFound(_)) => Some("kubemedic does not know this proposal.".to_owned()),
        Err(err) => {
            tracing::error!(proposal = %click.proposal_id, error = %crate::model::error::error_chain(&err), "cannot record a Slack decision");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "cannot record the decision");
        }
    };
    if let (Some(text), Some(channel)) = (refusal, click.channel.as_deref()) {
        s.approvals.tell_user(channel, &click.user, &text).await;
    }
    StatusCode::OK.into_response()
}

async fn caller(s: &AppState, headers: &HeaderMap) -> Result<Caller, Box<Response>> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match s.options.auth.authenticate(authorization).await {
        Ok(c) => Ok(Caller { approver: c.role >= Role::Approver, name: c.user, groups: c.groups }),
        Err(e) => {
            let mut resp = error(StatusCode::UNAUTHORIZED, &format!("a valid bearer token is required: {e}"));
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            Err(Box::new(resp))
        }
    }
}

async fn get_proposal(State(s): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(resp) = caller(&s, &headers).await {
        return *resp;
    }
    match s.approvals.get(&id).await {
        Ok(p) => Json(p).into_response(),
        Err(err) => api_error(&err),
    }
}

fn api_error(err: &ApprovalError) -> Response {
    error(api_status(err), &crate::model::error::error_chain(err))
}

fn api_status(err: &ApprovalError) -> StatusCode {
    match err {
        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
        ApprovalError::NotAllowed { .. }
        | ApprovalError::SelfApproval { .. }
        | ApprovalError::IdentityUnknown { .. } => StatusCode::FORBIDDEN,
        ApprovalError::DigestMismatch { .. } => StatusCode::CONFLICT,
        ApprovalError::AlreadyDecided { .. } | ApprovalError::Expired(_) | ApprovalError::OtherCluster { .. } => {
            StatusCode::CONFLICT
        }
        ApprovalError::Invalid(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Query of approve/reject: `digest`, the content digest the approver reviewed (optional: the
/// current one when absent; the CLI always sends it).
#[derive(Debug, Default, serde::Deserialize)]
pub struct DecideQuery {
    pub digest: Option<String>,
}

/// Why a decision was not recorded: the HTTP status and the message for the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    fn from_error(err: &ApprovalError) -> Self {
        Self { status: api_status(err), message: crate::model::error::error_chain(err) }
    }
}

/// A person's decision made over HTTP (the approvals API for the CLI, the web UI): the
/// approver role, `auth.impersonate`'s RBAC check, then [`Approvals::record_as`] with its
/// approver lists, self-approval, expiry and content digest checks. Every HTTP door decides
/// through here, so none has rules of its own. An approval is applied in the background.
pub async fn decide_as(
    approvals: &Arc<Approvals>,
    who: &Caller,
    id: &str,
    approve: bool,
    digest: Option<&str>,
    via: &'static str,
) -> Result<Proposal, Refusal> {
    if !who.approver {
        let message = format!("{} does not have the approver role", who.name);
        approvals.audit_refusal(&who.name, via, id, approve, "not an approver");
        return Err(Refusal { status: StatusCode::FORBIDDEN, message });
    }
    if approve && let Some(impersonation) = approvals.impersonation() {
        let p = approvals.get(id).await.map_err(|e| Refusal::from_error(&e))?;
        match crate::approvals::rbac::approver_may(impersonation, &who.name, &who.groups, &p).await {
            Ok(()) => {}
            Err(crate::approvals::rbac::ApproverRbacError::Denied(why)) => {
                approvals.audit_refusal(&who.name, via, id, approve, &why);
                return Err(Refusal { status: StatusCode::FORBIDDEN, message: why });
            }
            Err(err) => {
                let message = crate::model::error::error_chain(&err);
                return Err(Refusal { status: StatusCode::SERVICE_UNAVAILABLE, message });
            }
        }
    }
    let decision = Decision { user: &who.name, identity: &who.name, approve, via, digest };
    // With impersonation the change is then sent as the approver (sealed into the approval).
    let kube = approvals
        .impersonation()
        .map(|_| crate::model::proposal::KubeIdentity { user: who.name.clone(), groups: who.groups.clone() });
    let p = approvals.record_as(id, &decision, kube).await.map_err(|e| Refusal::from_error(&e))?;
    if p.state == ProposalState::Approved {
        approvals.apply_later(p.id.clone(), via);
    }
    Ok(p)
}

async fn decide(s: AppState, headers: HeaderMap, id: String, approve: bool, digest: Option<String>) -> Response {
    let who = match caller(&s, &headers).await {
        Ok(c) => c,
        Err(resp) => return *resp,
    };
    match decide_as(&s.approvals, &who, &id, approve, digest.as_deref(), "http").await {
        Ok(p) => (StatusCode::ACCEPTED, Json(p)).into_response(),
        Err(r) => error(r.status, &r.message),
    }
}

async fn approve(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DecideQuery>,
) -> Response {
    decide(s, headers, id, true, q.digest).await
}

async fn reject(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<DecideQuery>,
) -> Response {
    decide(s, headers, id, false, q.digest).await
}

/// Serve `app` alone on `addr` (tests, or a listener of its own); returns the bound address.
pub async fn spawn(
    addr: std::net::SocketAddr,
    app: Router,
) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let limits = crate::listener::ListenerLimits::default();
        let forever = tokio_util::sync::CancellationToken::new();
        if let Err(err) = crate::listener::serve(listener, app, &limits, 1 << 20, forever).await {
            tracing::warn!(error = %err, "approval routes stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    //! The API authenticates exactly like `/mcp`: hashed tokens and OIDC JWTs, with the
    //! role deciding who may approve or reject.

    use super::*;
    use crate::approvals::ApprovalsConfig;
    use crate::auth::jwt::tests::{TestIssuer, claims, config as oidc_config};
    use crate::auth::{AuthConfig, TokenConfig, token_hash};
    use crate::cluster::Cluster;
    use crate::store::Store;
    use crate::store::redb::RedbStore;

    async fn serve(issuer: &TestIssuer, dir: &std::path::Path) -> (String, Arc<Approvals>) {
        let jwks = dir.join("jwks.json");
        std::fs::write(&jwks, issuer.jwks_json()).unwrap();
        let mut oidc = oidc_config();
        oidc.jwks_file = Some(jwks);
        let auth = AuthConfig {
            tokens: vec![TokenConfig {
                name: "ci".into(),
                sha256: token_hash("viewer-t0ken"),
                role: Role::Viewer,
                groups: Vec::new(),
            }],
            oidc: Some(oidc),
            ..AuthConfig::default()
        };
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&dir.join("state")).unwrap());
        let offline = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let cluster = Cluster {
            name: "local".into(),
            client: kube::Client::try_from(offline).unwrap(),
            scope: Default::default(),
        };
        let approvals = Arc::new(Approvals::new(store, cluster, None, ApprovalsConfig::default()));
        let options = HttpOptions { signing_secret: None, auth: Arc::new(Authenticator::new(&auth).await.unwrap()) };
        let (addr, _task) = spawn(([127, 0, 0, 1], 0).into(), router(approvals.clone(), options)).await.unwrap();
        (format!("http://{addr}"), approvals)
    }

    #[tokio::test]
    async fn oidc_and_token_callers_are_checked_by_role() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TestIssuer::new();
        let (url, approvals) = serve(&issuer, dir.path()).await;
        let target = crate::model::proposal::TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "web".into(),
            resource_version: Some("42".into()),
            generation: None,
            content_digest: None,
        };
        let action = crate::model::proposal::Action::Patch {
            patch_type: crate::model::proposal::PatchType::Merge,
            body: json!({"spec": {"replicas": 2}}),
        };
        let now = jiff::Timestamp::now();
        let p = crate::model::proposal::Proposal {
            id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            ..crate::model::proposal::Proposal::new("local", target, action, now, jiff::SignedDuration::from_hours(1))
        };
        approvals.submit(p).await.unwrap();
        let http = reqwest::Client::new();
        let proposal = format!("{url}/api/proposals/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");

        let none = http.get(&proposal).send().await.unwrap();
        assert_eq!(none.status(), 401);
        let forged = format!("{}x", issuer.sign(&claims(&["sre"])));
        assert_eq!(http.get(&proposal).bearer_auth(forged).send().await.unwrap().status(), 401);
        let viewer = http.get(&proposal).bearer_auth("viewer-t0ken").send().await.unwrap();
        assert_eq!(viewer.status(), 200, "a viewer token may read");
        let dev = issuer.sign(&claims(&["dev"]));
        let refused = http.post(format!("{proposal}/reject")).bearer_auth(&dev).send().await.unwrap();
        assert_eq!(refused.status(), 403, "an OIDC viewer may not decide");
        let refused = http.post(format!("{proposal}/reject")).bearer_auth("viewer-t0ken").send().await.unwrap();
        assert_eq!(refused.status(), 403, "a viewer token may not decide");

        let sre = issuer.sign(&claims(&["sre"]));
        let decided = http.post(format!("{proposal}/reject")).bearer_auth(&sre).send().await.unwrap();
        assert_eq!(decided.status(), 202);
        let p = approvals.get("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").await.unwrap();
        assert_eq!(p.state, ProposalState::Rejected);
        assert_eq!(p.decided_by(), Some("ana@example.com"), "the decision is tied to the OIDC user");
    }
}
