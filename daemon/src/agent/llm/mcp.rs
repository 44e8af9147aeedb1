//! The LLM runner's tools: MCP clients of kubemedic's own server (in-process,
//! over `tokio::io::duplex`) and of optional extra servers (child process or
//! streamable HTTP). Only read-only tools are lent to the model: changes
//! come back as proposals in its final answer and pass the policy like any other.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, Tool};
use rmcp::service::{RoleClient, RunningService};
use serde::Deserialize;
use serde_json::Value;

/// A connected MCP client.
pub type Client = RunningService<RoleClient, ()>;

/// Opens a fresh connection to kubemedic's own MCP server for one run. The
/// server behind it must act with the operator role at most.
pub type Connector = Arc<dyn Fn() -> BoxFuture<'static, Result<Client, String>> + Send + Sync>;

/// A connector serving `make()` in-process over an in-memory duplex pipe.
pub fn in_process<S, F>(make: F) -> Connector
where
    S: rmcp::ServerHandler + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let make = Arc::new(make);
    Arc::new(move || {
        let make = make.clone();
        Box::pin(async move {
            let (server_io, client_io) = tokio::io::duplex(64 * 1024);
            let server = make();
            tokio::spawn(async move {
                match server.serve(server_io).await {
                    Ok(running) => {
                        let _ = running.waiting().await;
                    }
                    Err(e) => tracing::warn!(error = %e, "in-process MCP server failed to start"),
                }
            });
            ().serve(client_io).await.map_err(|e| format!("cannot connect to the in-process MCP server: {e}"))
        })
    })
}

/// The connector to kubemedic's own MCP server for the LLM runner: the
/// server always acts as the agent with the operator role at most, so
/// nothing the model asks for can be more than a proposal.
pub fn kubemedic(server: crate::mcp::server::KubemedicServer) -> Connector {
    use crate::model::identity::Role;
    use crate::tools::{Caller, Transport};
    let caller = Caller::new("kubemedic-agent", Role::Operator, Transport::Agent);
    let server = server.with_caller(caller);
    in_process(move || server.clone())
}

/// An extra MCP server that lends the model more tools.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExtraServer {
    /// A child process speaking MCP over stdio.
    Stdio {
        /// Prefix of its tools' names (`name__tool`).
        name: String,
        /// Program to run.
        command: String,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// Extra environment variables.
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// A streamable-HTTP MCP endpoint.
    Http {
        /// Prefix of its tools' names (`name__tool`).
        name: String,
        /// Endpoint URL, e.g. `http://127.0.0.1:9000/mcp`.
        url: String,
        /// Environment variable holding a bearer token, if the server needs one.
        #[serde(default)]
        bearer_token_env: Option<String>,
    },
}

impl ExtraServer {
    pub fn name(&self) -> &str {
        match self {
            Self::Stdio { name, .. } | Self::Http { name, .. } => name,
        }
    }

    async fn connect(&self) -> Result<Client, String> {
        match self {
            Self::Stdio { name, command, args, env } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env).kill_on_drop(true);
                let transport = rmcp::transport::TokioChildProcess::new(cmd)
                    .map_err(|e| format!("cannot start MCP server {name} ({command}): {e}"))?;
                ().serve(transport).await.map_err(|e| format!("MCP server {name}: {e}"))
            }
            Self::Http { name, url, bearer_token_env } => {
                use rmcp::transport::StreamableHttpClientTransport;
                use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                if let Some(var) = bearer_token_env {
                    let token =
                        std::env::var(var).map_err(|_| format!("MCP server {name}: env var {var} is not set"))?;
                    config = config.auth_header(token);
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                ().serve(transport).await.map_err(|e| format!("MCP server {name} at {url}: {e}"))
            }
        }
    }
}

/// A tool as offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Name the model uses (`server__tool` for extra servers).
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub schema: Value,
}

/// All connected servers and the read-only tools they lend.
pub struct Toolbox {
    clients: Vec<Client>,
    /// Model-facing name → (client index, server-side name).
    routes: BTreeMap<String, (usize, String)>,
    pub specs: Vec<ToolSpec>,
    /// Tools left out (not read-only), for the notes.
    pub withheld: Vec<String>,
}

fn read_only(t: &Tool) -> bool {
    t.annotations.as_ref().and_then(|a| a.read_only_hint).unwrap_or(false)
}

impl Toolbox {
    /// Connect to kubemedic's server (if any) and the extra servers; a
    /// server that fails is skipped and reported in `errors`.
    pub async fn connect(own: Option<&Connector>, extra: &[ExtraServer]) -> (Self, Vec<String>) {
        let mut errors = Vec::new();
        let mut clients: Vec<(String, Client)> = Vec::new();
        if let Some(connect) = own {
            match connect().await {
                Ok(c) => clients.push((String::new(), c)),
                Err(e) => errors.push(e),
            }
        }
        for server in extra {
            match server.connect().await {
                Ok(c) => clients.push((format!("{}__", server.name()), c)),
                Err(e) => errors.push(e),
            }
        }
        let mut me = Self { clients: Vec::new(), routes: BTreeMap::new(), specs: Vec::new(), withheld: Vec::new() };
        for (prefix, client) in clients {
            let index = me.clients.len();
            match client.list_all_tools().await {
                Ok(tools) => {
                    for t in tools {
                        let name = format!("{prefix}{}", t.name);
                        if !read_only(&t) {
                            me.withheld.push(name);
                            continue;
                        }
                        me.specs.push(ToolSpec {
                            name: name.clone(),
                            description: t.description.clone().map(|d| d.to_string()).unwrap_or_default(),
                            schema: Value::Object((*t.input_schema).clone()),
                        });
                        me.routes.insert(name, (index, t.name.to_string()));
                    }
                }
                Err(e) => errors.push(format!("cannot list tools of MCP server {prefix}: {e}")),
            }
            me.clients.push(client);
        }
        (me, errors)
    }

    /// Call a tool; the text handed back to the model (errors included, as text).
    pub async fn call(&self, name: &str, args: &Value) -> Result<String, String> {
        let Some((index, server_name)) = self.routes.get(name) else {
            return Err(format!("unknown or withheld tool {name}"));
        };
        let arguments = match args {
            Value::Object(m) => m.clone(),
            Value::Null => Default::default(),
            other => return Err(format!("arguments of {name} must be a JSON object, got {other}")),
        };
        let params = CallToolRequestParams::new(server_name.clone()).with_arguments(arguments);
        let result = self.clients[*index].call_tool(params).await.map_err(|e| format!("tool {name} failed: {e}"))?;
        let text = match &result.structured_content {
            Some(v) => v.to_string(),
            None => {
                result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join("\n")
            }
        };
        if result.is_error == Some(true) { Err(format!("tool {name} returned an error: {text}")) } else { Ok(text) }
    }

    /// Close every connection.
    pub async fn close(self) {
        for c in self.clients {
            let _ = c.cancel().await;
        }
    }
}
