//! kubemedic: an event-driven remediation daemon for Kubernetes.
//!
//! How one incident flows through the modules:
//!
//! ```text
//!  watch ──┐                                                       ┌ slack (buttons) ┐
//!  alerts ─┼─► Signal ─► rules ─► incident::tracker ─► pipeline ─► agent ─► approvals ─► apply, verify
//!  drift ──┘   (model)            (fold, cooldown)     (queue,     (builtin|llm    (policy,     └ mcp / CLI ┘
//!                                                       workers,    over tools)     dry-run)
//!                                                       retry)
//! ```
//!
//! The modules are layered; a module imports only from its own layer (without loops) and
//! the layers below. `architecture_tests` reads every `crate::…` path and keeps it so.
//!
//! 1. **model**, plain types and pure state machines: [`model::signal`],
//!    [`model::incident`], [`model::diagnosis`], [`model::proposal`] (lifecycle) with
//!    [`model::precondition`], [`model::identity`] (callers and roles), [`model::error`].
//!    [`signal`] re-exports `model::signal` for older paths.
//! 2. **adapters**, one outside thing each: [`names`] (DNS-1123 names before any API path),
//!    [`cluster`] (client, scope, its config section), [`listener`] (bounded HTTP serving,
//!    its config section), [`redact`] (the exit gate), [`store`] (embedded or NATS KV),
//!    [`bus`] (`kubemedic.>` events, incident queue), [`telemetry`] (spans, metrics,
//!    audit), [`leader`] (Lease election), [`prompts`] and [`rules`] (the files), [`auth`]
//!    (tokens and OIDC for MCP, the approvals API and the webhook), [`slack`] (Web API
//!    client, signing, Block Kit).
//! 3. **services**: [`policy`] (the patch policy), [`watch`] and [`alerts`] (intake →
//!    signals), [`incident`] (the tracker), [`drift`] (reports), [`approvals`]
//!    (submit, decide, apply, verify, the approvals HTTP API).
//! 4. **tools, mcp, agents and the web UI**: [`tools`] (reads and proposals, transport-free),
//!    [`mcp`] (the MCP server over them, stdio and HTTP, auth discovery, the result budget,
//!    read-only), [`agent`] (the built-in and LLM runners), [`ui`] (the web pages under
//!    `/ui/`: OIDC sign-in, incidents with their causal graph, proposals with Approve /
//!    Reject through the approvals service, live from the bus).
//! 5. **pipeline**: [`pipeline`], the incident path from tracker to proposal.
//! 6. **app**: [`app`] (wiring and commands, the demo) and [`config`] (the file, which
//!    gathers every module's section).

pub mod agent;
pub mod alerts;
pub mod app;
pub mod approvals;
#[cfg(test)]
mod architecture_tests;
pub mod auth;
pub mod bus;
pub mod cluster;
pub mod config;
pub mod drift;
pub mod incident;
pub mod leader;
pub mod listener;
pub mod mcp;
pub mod model;
pub mod names;
pub mod pipeline;
pub mod policy;
pub mod prompts;
pub mod redact;
pub mod rules;
pub mod signal;
pub mod slack;
pub mod store;
pub mod telemetry;
pub mod tools;
pub mod ui;
pub mod watch;
