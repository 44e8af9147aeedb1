//! Who may decide in Slack: Slack user ids and user-group ids mapped to the
//! same roles as MCP callers (`slack.approvers`). Group membership is read
//! with `usergroups.users.list` and cached for `group_cache_seconds`.
//!
//! A Slack user is known to kubemedic as `slack:<user id>` unless the mapping
//! gives an `identity` (the MCP/CLI user name of the same person), which is
//! what the no-self-approval rule compares with the proposal's requester.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{SlackClient, SlackError};
use crate::model::identity::Role;

/// One mapped Slack user: a role, or a role and the identity used elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum UserEntry {
    /// `U123: approver`
    Role(Role),
    /// `U123: {role: approver, identity: alice}`
    Full {
        role: Role,
        /// The MCP/CLI user name of the same person, so they cannot approve what they proposed there.
        #[serde(default)]
        identity: Option<String>,
    },
}

impl UserEntry {
    pub fn role(&self) -> Role {
        match self {
            Self::Role(r) | Self::Full { role: r, .. } => *r,
        }
    }
}

/// `slack.approvers`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ApproversConfig {
    /// Slack user id (`U…`/`W…`) → role or `{role, identity}`.
    #[serde(default)]
    pub users: BTreeMap<String, UserEntry>,
    /// Slack user-group id (`S…`) → role; members are read with `usergroups.users.list`.
    #[serde(default)]
    pub groups: BTreeMap<String, Role>,
    /// How long a group's member list is cached, in seconds.
    #[serde(default = "default_cache")]
    pub group_cache_seconds: u64,
}

fn default_cache() -> u64 {
    300
}

impl ApproversConfig {
    /// At least one user or group must hold the approver role: a mapping nobody can approve
    /// with is a mistake, and no mapping would let anyone in the channel approve.
    pub fn validate(&self) -> Result<(), String> {
        for id in self.users.keys() {
            if !is_id(id, &['U', 'W']) {
                return Err(format!("users: {id:?} is not a Slack user id (U… or W…)"));
            }
        }
        for id in self.groups.keys() {
            if !is_id(id, &['S']) {
                return Err(format!("groups: {id:?} is not a Slack user-group id (S…)"));
            }
        }
        let approver = self.users.values().any(|u| u.role() >= Role::Approver)
            || self.groups.values().any(|r| *r >= Role::Approver);
        if !approver {
            return Err("no user or group holds the approver role".into());
        }
        if self.group_cache_seconds == 0 {
            return Err("group_cache_seconds must be > 0".into());
        }
        Ok(())
    }
}

fn is_id(id: &str, first: &[char]) -> bool {
    id.len() >= 3 && id.starts_with(first) && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A Slack user as the approval rules see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackPrincipal {
    /// Highest role from the user entry and the groups they are in; `None` = unmapped.
    pub role: Option<Role>,
    /// For the no-self-approval rule.
    pub identity: String,
}

/// The resolver, with its group cache.
/// Prefix of the identity of a Slack user who has no identity mapping (`slack:<user id>`).
pub const UNMAPPED_PREFIX: &str = "slack:";

#[derive(Debug)]
pub struct SlackApprovers {
    config: ApproversConfig,
    cache: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl SlackApprovers {
    pub fn new(config: ApproversConfig) -> Self {
        Self { config, cache: Mutex::new(HashMap::new()) }
    }

    /// Identity of a Slack user: the mapped one, else `slack:<id>`.
    pub fn identity(&self, user: &str) -> String {
        match self.config.users.get(user) {
            Some(UserEntry::Full { identity: Some(i), .. }) if !i.trim().is_empty() => i.trim().to_owned(),
            _ => format!("{UNMAPPED_PREFIX}{user}"),
        }
    }

    /// The user's role: their own entry, raised by any mapped group they belong to. A group
    /// whose members cannot be read counts as not containing the user (fail closed).
    pub async fn resolve(&self, slack: Option<&SlackClient>, user: &str) -> SlackPrincipal {
        let mut role = self.config.users.get(user).map(UserEntry::role);
        for (group, group_role) in &self.config.groups {
            if role.is_some_and(|r| r >= *group_role) {
                continue;
            }
            match self.members(slack, group).await {
                Ok(members) if members.iter().any(|m| m == user) => {
                    role = Some(role.map_or(*group_role, |r| r.max(*group_role)));
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(group, error = %crate::model::error::error_chain(&err), "cannot read Slack user-group members; treating the user as not in it");
                }
            }
        }
        SlackPrincipal { role, identity: self.identity(user) }
    }

    async fn members(&self, slack: Option<&SlackClient>, group: &str) -> Result<Vec<String>, SlackError> {
        let ttl = Duration::from_secs(self.config.group_cache_seconds);
        {
            let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, members)) = cache.get(group)
                && at.elapsed() < ttl
            {
                return Ok(members.clone());
            }
        }
        let Some(slack) = slack else {
            return Err(SlackError::Api { method: "usergroups.users.list".into(), error: "no Slack client".into() });
        };
        let members = slack.usergroup_members(group).await?;
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(group.to_owned(), (Instant::now(), members.clone()));
        Ok(members)
    }

    /// The card's "who may approve": mentions of mapped users and groups holding the approver role.
    pub fn mentions(&self) -> String {
        let users =
            self.config.users.iter().filter(|(_, e)| e.role() >= Role::Approver).map(|(u, _)| format!("<@{u}>"));
        let groups = self
            .config
            .groups
            .iter()
            .filter(|(_, r)| **r >= Role::Approver)
            .map(|(g, _)| format!("members of <!subteam^{g}>"));
        users.chain(groups).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> ApproversConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn mapping_forms_and_validation() {
        let c = parse(
            "users: {U1AAA: approver, U2BBB: {role: admin, identity: alice}, U3CCC: viewer}\ngroups: {S9ONCALL: approver}\n",
        );
        c.validate().unwrap();
        let a = SlackApprovers::new(c);
        assert_eq!(a.identity("U2BBB"), "alice");
        assert_eq!(a.identity("U1AAA"), "slack:U1AAA");
        assert_eq!(a.mentions(), "<@U1AAA>, <@U2BBB>, members of <!subteam^S9ONCALL>");

        let err = parse("users: {U3CCC: viewer}\n").validate().unwrap_err();
        assert!(err.contains("approver role"), "{err}");
        assert!(ApproversConfig::default().validate().is_err());
        assert!(parse("users: {alice: approver}\n").validate().unwrap_err().contains("not a Slack user id"));
        assert!(parse("groups: {U1AAA: approver}\n").validate().unwrap_err().contains("user-group id"));
        assert!(serde_yaml_ng::from_str::<ApproversConfig>("users: {U1AAA: root}\n").is_err());
    }

    #[tokio::test]
    async fn users_resolve_without_groups_and_unreadable_groups_fail_closed() {
        let a = SlackApprovers::new(parse("users: {U1AAA: approver, U3CCC: operator}\ngroups: {S9ONCALL: approver}\n"));
        assert_eq!(a.resolve(None, "U1AAA").await.role, Some(Role::Approver));
        // Without a Slack client the group cannot be read: the operator stays an operator.
        assert_eq!(a.resolve(None, "U3CCC").await.role, Some(Role::Operator));
        assert_eq!(a.resolve(None, "U0GUEST").await.role, None);
    }
}
