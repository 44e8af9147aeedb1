//! Test-only helpers for kubemedic, kept out of the product crate so that the
//! daemon binary carries none of them.
//!
//! - [`slack`]: a stand-in for Slack's Web API on `127.0.0.1:0`.
//! - [`llm`]: a scripted LLM provider (OpenAI-compatible and Anthropic wire formats).
//! - [`store`]: the contract every `Store` implementation passes.
//! - [`build`]: builders for test values (`Proposal::test()`, `Incident::test()`).
//! - Crash points: this crate turns on kubemedic's `crash-points` feature, so
//!   tests that depend on it can stop the approvals service where a SIGKILL
//!   would (`kubemedic::approvals::CrashPoint`, re-exported here).
//!
//! kubemedic's own unit tests cannot use this crate (they would see a second
//! copy of kubemedic's types); tests that need these helpers live in
//! `daemon/tests/` or `tests/e2e/`.

pub mod build;
pub mod llm;
pub mod slack;
pub mod store;

pub use build::Sample;
pub use kubemedic::approvals::CrashPoint;
