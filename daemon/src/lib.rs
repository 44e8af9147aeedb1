//! kubemedic: an event-driven remediation daemon for Kubernetes.
//!
//! How one incident flows through the modules:
//!
//! ```text
//!  watch ──┐                                              ┌ approvals::slack ┐
//!  alerts ─┼─► signal ─► rules ─► incident ─► agent ─► approvals::proposal ─► approvals (apply, verify)
//!  drift ──┘                      (store)   (builtin|llm,  (policy, dry-run)   └ mcp / CLI ┘
//!                                             tools)
//! ```
//!
//! - [`config`]: the configuration file; [`cluster`]: client and scope.
//! - [`watch`]: kube-runtime watchers → [`signal::Signal`]s; [`alerts`]: Alertmanager webhooks → signals.
//! - [`rules`]: `rules/*.yaml` match signals to workflows; [`incident`]: signals folded by fingerprint.
//! - [`prompts`]: `prompts/*.md` workflows; [`tools`]: the read and mutation tools (transport-free).
//! - [`agent`]: runs a workflow ([`agent::builtin`] or [`agent::llm`]) into a [`agent::Diagnosis`].
//! - [`policy`]: the patch policy; [`approvals`]: proposal state machine, Slack, apply and verify.
//! - [`mcp`]: the MCP server (stdio and streamable HTTP), its auth and auth discovery,
//!   the byte budget every tool result keeps to, the read-only surface.
//! - [`store`]: durable state (embedded or NATS KV); [`bus`]: `kubemedic.>` events.
//! - [`drift`]: nightly drift reports; [`telemetry`]: spans, metrics, audit trail.
//! - [`names`]: namespace and object names checked as the apiserver does, before any API path.
//! - [`listener`]: serving HTTP with connection, header and body bounds.
//! - [`app`]: the one place that wires them together.

pub mod agent;
pub mod alerts;
pub mod app;
pub mod approvals;
pub mod bus;
pub mod cluster;
pub mod config;
pub mod drift;
pub mod incident;
pub mod leader;
pub mod listener;
pub mod mcp;
pub mod names;
pub mod pipeline;
pub mod policy;
pub mod prompts;
pub mod redact;
pub mod rules;
pub mod signal;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod watch;
