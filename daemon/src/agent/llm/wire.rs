//! The two wire formats the LLM runner speaks: OpenAI-compatible chat
//! completions (`tools` / `tool_calls`; OpenAI, vLLM, Ollama, llama.cpp,
//! LiteLLM) and Anthropic Messages (`tool_use` / `tool_result`).

use serde::Deserialize;
use serde_json::{Value, json};

use super::mcp::ToolSpec;

/// Which API the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `POST {base_url}/chat/completions`.
    Openai,
    /// `POST {base_url}/v1/messages`.
    Anthropic,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// One model reply.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Turn {
    pub text: String,
    pub calls: Vec<ToolCall>,
    /// Input + output tokens the provider reports (estimated when it does not).
    pub tokens: u64,
}

/// The conversation in the provider's own message format.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub api: Api,
    pub system: String,
    pub messages: Vec<Value>,
}

impl Conversation {
    pub fn new(api: Api, system: &str, user: &str) -> Self {
        Self { api, system: system.to_owned(), messages: vec![json!({"role": "user", "content": user})] }
    }

    /// The endpoint path under the base URL.
    pub fn path(&self) -> &'static str {
        match self.api {
            Api::Openai => "/chat/completions",
            Api::Anthropic => "/v1/messages",
        }
    }

    /// The request body; `tools` empty = no tool use offered.
    pub fn body(&self, model: &str, tools: &[ToolSpec], max_tokens: u32, temperature: Option<f32>) -> Value {
        let mut body = match self.api {
            Api::Openai => {
                let mut messages = vec![json!({"role": "system", "content": self.system})];
                messages.extend(self.messages.iter().cloned());
                let mut b = json!({"model": model, "messages": messages, "max_tokens": max_tokens});
                if !tools.is_empty() {
                    b["tools"] = tools
                        .iter()
                        .map(|t| {
                            json!({"type": "function", "function": {
                                "name": t.name, "description": t.description, "parameters": t.schema}})
                        })
                        .collect();
                }
                b
            }
            Api::Anthropic => {
                let mut b = json!({"model": model, "system": self.system, "messages": self.messages,
                                   "max_tokens": max_tokens});
                if !tools.is_empty() {
                    b["tools"] = tools
                        .iter()
                        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.schema}))
                        .collect();
                }
                b
            }
        };
        if let Some(t) = temperature {
            body["temperature"] = json!(t);
        }
        body
    }

    /// Parse a response and append the assistant's message to the conversation.
    pub fn accept(&mut self, response: &Value) -> Result<Turn, String> {
        let turn = match self.api {
            Api::Openai => {
                let message = response
                    .pointer("/choices/0/message")
                    .ok_or_else(|| format!("no choices[0].message in response: {}", short(response)))?;
                let text = message.get("content").and_then(Value::as_str).unwrap_or_default().to_owned();
                let mut calls = Vec::new();
                for c in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let id = c.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let name = c.pointer("/function/name").and_then(Value::as_str).unwrap_or_default().to_owned();
                    let raw = c.pointer("/function/arguments").cloned().unwrap_or(Value::Null);
                    // Arguments arrive as a JSON string; some servers send an object.
                    let arguments = match raw {
                        Value::String(s) if s.trim().is_empty() => json!({}),
                        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                        Value::Null => json!({}),
                        v => v,
                    };
                    calls.push(ToolCall { id, name, arguments });
                }
                let tokens = response.pointer("/usage/total_tokens").and_then(Value::as_u64).unwrap_or_else(|| {
                    let p = response.pointer("/usage/prompt_tokens").and_then(Value::as_u64);
                    let c = response.pointer("/usage/completion_tokens").and_then(Value::as_u64);
                    p.zip(c).map(|(p, c)| p + c).unwrap_or_else(|| estimate(&self.messages, &text))
                });
                let mut m =
                    json!({"role": "assistant", "content": message.get("content").cloned().unwrap_or(Value::Null)});
                if let Some(tc) = message.get("tool_calls").filter(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
                    m["tool_calls"] = tc.clone();
                }
                self.messages.push(m);
                Turn { text, calls, tokens }
            }
            Api::Anthropic => {
                let content = response
                    .get("content")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("no content array in response: {}", short(response)))?;
                let mut text = String::new();
                let mut calls = Vec::new();
                for block in content {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
                        Some("tool_use") => calls.push(ToolCall {
                            id: block.get("id").and_then(Value::as_str).unwrap_or_default().to_owned(),
                            name: block.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                            arguments: block.get("input").cloned().unwrap_or_else(|| json!({})),
                        }),
                        _ => {}
                    }
                }
                let i = response.pointer("/usage/input_tokens").and_then(Value::as_u64);
                let o = response.pointer("/usage/output_tokens").and_then(Value::as_u64);
                let tokens = i.zip(o).map(|(i, o)| i + o).unwrap_or_else(|| estimate(&self.messages, &text));
                self.messages.push(json!({"role": "assistant", "content": content}));
                Turn { text, calls, tokens }
            }
        };
        Ok(turn)
    }

    /// Hand tool results back (`(call, text, is_error)`).
    pub fn tool_results(&mut self, results: Vec<(ToolCall, String, bool)>) {
        match self.api {
            Api::Openai => {
                for (call, text, _) in results {
                    self.messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": text}));
                }
            }
            Api::Anthropic => {
                let blocks: Vec<Value> = results
                    .into_iter()
                    .map(|(call, text, is_error)| {
                        json!({"type": "tool_result", "tool_use_id": call.id, "content": text, "is_error": is_error})
                    })
                    .collect();
                self.messages.push(json!({"role": "user", "content": blocks}));
            }
        }
    }

    /// A user message; for Anthropic merged into a trailing user turn (roles must alternate).
    pub fn user(&mut self, text: &str) {
        if self.api == Api::Anthropic
            && let Some(last) = self.messages.last_mut()
            && last.get("role").and_then(Value::as_str) == Some("user")
        {
            let content = last["content"].take();
            let mut blocks = match content {
                Value::Array(a) => a,
                Value::String(s) => vec![json!({"type": "text", "text": s})],
                _ => Vec::new(),
            };
            blocks.push(json!({"type": "text", "text": text}));
            last["content"] = Value::Array(blocks);
            return;
        }
        self.messages.push(json!({"role": "user", "content": text}));
    }
}

/// Rough token count (4 characters a token) for providers that report none.
fn estimate(messages: &[Value], text: &str) -> u64 {
    let chars: usize = messages.iter().map(|m| m.to_string().len()).sum::<usize>() + text.len();
    (chars / 4) as u64
}

fn short(v: &Value) -> String {
    crate::agent::builtin::gather::truncate(&v.to_string(), 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ToolSpec> {
        vec![ToolSpec { name: "events".into(), description: "d".into(), schema: json!({"type": "object"}) }]
    }

    #[test]
    fn openai_round_trip() {
        let mut c = Conversation::new(Api::Openai, "sys", "hello");
        let body = c.body("m", &tools(), 100, None);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["tools"][0]["function"]["name"], "events");
        let resp = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "events", "arguments": "{\"namespace\":\"a\"}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}});
        let turn = c.accept(&resp).unwrap();
        assert_eq!(turn.tokens, 15);
        assert_eq!(turn.calls[0].arguments, json!({"namespace": "a"}));
        c.tool_results(vec![(turn.calls[0].clone(), "ok".into(), false)]);
        assert_eq!(c.messages.last().unwrap()["tool_call_id"], "c1");
    }

    #[test]
    fn anthropic_round_trip_keeps_roles_alternating() {
        let mut c = Conversation::new(Api::Anthropic, "sys", "hello");
        let body = c.body("m", &tools(), 100, Some(0.0));
        assert_eq!(body["system"], "sys");
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
        let resp = json!({"content": [{"type": "text", "text": "looking"},
            {"type": "tool_use", "id": "t1", "name": "events", "input": {"namespace": "a"}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 3}});
        let turn = c.accept(&resp).unwrap();
        assert_eq!((turn.text.as_str(), turn.tokens), ("looking", 10));
        c.tool_results(vec![(turn.calls[0].clone(), "ok".into(), false)]);
        c.user("now answer");
        let last = c.messages.last().unwrap();
        assert_eq!(last["role"], "user");
        assert_eq!(last["content"][0]["type"], "tool_result");
        assert_eq!(last["content"][1]["text"], "now answer");
        assert_eq!(c.messages.len(), 3);
    }
}
