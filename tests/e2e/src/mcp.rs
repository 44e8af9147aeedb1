//! MCP clients of the real `kubemedic mcp` binary over stdio, shared by the e2e tests: a
//! config written as YAML, the child-process transport, a client that accepts every
//! confirmation, and tool-call parameters from JSON.

use std::path::Path;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction,
    Implementation,
};
use rmcp::service::RequestContext;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient};
use serde_json::{Value, json};

/// An MCP client that accepts every confirmation (elicitation) it is asked.
#[derive(Clone)]
pub struct Accepting;

impl ClientHandler for Accepting {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("kubemedic-e2e", "0"),
        )
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true})))
    }
}

/// Write `config` as kubemedic's YAML configuration file at `path`.
pub fn write_config(path: &Path, config: &Value) {
    std::fs::write(path, serde_yaml_ng::to_string(config).unwrap()).unwrap();
}

/// `kubemedic mcp [extra] --config CONFIG` as a child-process transport (logs at warn).
pub fn stdio(config: &Path, extra: &[&str]) -> TokioChildProcess {
    let mut cmd = tokio::process::Command::new(crate::daemon::bin());
    cmd.arg("mcp").args(extra).arg("--config").arg(config).env("RUST_LOG", "warn");
    TokioChildProcess::new(cmd).expect("spawn kubemedic mcp")
}

/// `tools/call` parameters for `name` with the JSON object `args`.
pub fn call(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned()).with_arguments(args.as_object().cloned().unwrap())
}
