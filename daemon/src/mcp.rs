//! The MCP surface (resources, tools, prompts), independent of transport;
//! stdio and streamable HTTP are a few lines each.

pub mod auth;
pub mod catalog;
pub mod resources;
pub mod server;

pub use server::KubemedicServer;
