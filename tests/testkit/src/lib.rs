//! Test-only helpers for kubemedic, kept out of the product crate so that the
//! daemon binary carries none of them.
//!
//! - [`slack`]: a stand-in for Slack's Web API on `127.0.0.1:0`.
//! - [`llm`]: a scripted LLM provider (OpenAI-compatible and Anthropic wire formats).
//! - [`oidc`]: an OpenID Connect provider (authorization code + PKCE) for browser sign-in.
//! - [`fakeapi`]: a fake apiserver (objects by path, dry-run, recorded writes) and a fixture.
//! - [`store`]: the contract every `Store` implementation passes.
//! - [`build`]: builders for test values (`Proposal::test()`, `Incident::test()`).
//! - Crash points: this crate turns on kubemedic's `crash-points` feature, so
//!   tests that depend on it can stop the approvals service where a SIGKILL
//!   would (`kubemedic::approvals::CrashPoint`, re-exported here).
//!
//! kubemedic's own unit tests can use only what exchanges no kubemedic type (they would
//! see a second copy of the crate's types): [`fakeapi`] deals in kube and serde values
//! only. Tests that need the rest live in `daemon/tests/` or `tests/e2e/`.

pub mod build;
pub mod fakeapi;
pub mod llm;
pub mod oidc;
pub mod slack;
pub mod store;

pub use build::Sample;
pub use kubemedic::approvals::CrashPoint;
