//! The simulated image registry: which image references can be pulled.
//!
//! The default set is `tests/nodesim/registry.yaml` (compiled in); `--registry FILE` replaces it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

/// The default registry file, compiled in.
pub const DEFAULT: &str = include_str!("../registry.yaml");

/// Errors loading a registry file.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The file could not be read.
    #[error("read registry file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid registry document.
    #[error("parse registry: {0}")]
    Parse(#[source] serde_yaml_ng::Error),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    images: BTreeMap<String, Vec<String>>,
}

/// Repositories and the tags they hold.
#[derive(Debug, Clone)]
pub struct Registry {
    repos: BTreeMap<String, Vec<String>>,
}

/// An image reference split into its repository and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Normalised repository (`nginx`, `ghcr.io/org/app`).
    pub repository: String,
    /// The tag (`latest` when none was written), or the digest.
    pub reference: String,
    /// True when `reference` is a digest.
    pub digest: bool,
}

/// Splits and normalises an image reference as a container runtime would.
pub fn parse_image(image: &str) -> ImageRef {
    let (name, reference, digest) = match image.split_once('@') {
        Some((n, d)) => (n, d.to_string(), true),
        None => {
            // A ':' after the last '/' is a tag; before it, a registry port.
            let slash = image.rfind('/').map_or(0, |i| i + 1);
            match image[slash..].rfind(':') {
                Some(i) => (&image[..slash + i], image[slash + i + 1..].to_string(), false),
                None => (image, "latest".to_string(), false),
            }
        }
    };
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    ImageRef { repository: name.to_string(), reference, digest }
}

impl Registry {
    /// Parses a registry document.
    ///
    /// # Errors
    /// When the YAML is not `images: {repository: [tags]}`.
    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        let f: File = serde_yaml_ng::from_str(text).map_err(RegistryError::Parse)?;
        let repos = f.images.into_iter().map(|(k, v)| (parse_image(&format!("{k}:x")).repository, v)).collect();
        Ok(Registry { repos })
    }

    /// Loads a registry file.
    ///
    /// # Errors
    /// When the file cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RegistryError::Read { path: path.display().to_string(), source })?;
        Registry::parse(&text)
    }

    /// The compiled-in default registry.
    pub fn default_set() -> Registry {
        Registry::parse(DEFAULT).expect("the compiled-in registry.yaml is valid")
    }

    /// Ok when the image can be pulled; otherwise the runtime's error text (what a kubelet puts
    /// after `Failed to pull image "…": `).
    ///
    /// # Errors
    /// The pull error message when the repository or tag is missing.
    pub fn pull(&self, image: &str) -> Result<(), String> {
        let r = parse_image(image);
        let full = if r.repository.contains('/') && r.repository.split('/').next().is_some_and(|h| h.contains('.')) {
            r.repository.clone()
        } else if r.repository.contains('/') {
            format!("docker.io/{}", r.repository)
        } else {
            format!("docker.io/library/{}", r.repository)
        };
        let sep = if r.digest { '@' } else { ':' };
        let full_ref = format!("{full}{sep}{}", r.reference);
        match self.repos.get(&r.repository) {
            None => Err(format!(
                "rpc error: code = Unknown desc = failed to pull and unpack image \"{full_ref}\": failed to resolve \
                 reference \"{full_ref}\": pull access denied, repository does not exist or may require authorization: \
                 server message: insufficient_scope: authorization failed"
            )),
            Some(tags) if r.digest || tags.iter().any(|t| t == "*" || *t == r.reference) => Ok(()),
            Some(_) => Err(format!(
                "rpc error: code = NotFound desc = failed to pull and unpack image \"{full_ref}\": failed to resolve \
                 reference \"{full_ref}\": {full_ref}: not found"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(parse_image("nginx").reference, "latest");
        assert_eq!(parse_image("docker.io/library/nginx:1.25").repository, "nginx");
        let r = parse_image("localhost:5000/app:2");
        assert_eq!((r.repository.as_str(), r.reference.as_str()), ("localhost:5000/app", "2"));
        let d = parse_image("ghcr.io/a/b@sha256:abc");
        assert!(d.digest);
        assert_eq!(d.repository, "ghcr.io/a/b");
    }

    #[test]
    fn default_registry_holds_scenario_images_and_not_the_bad_ones() {
        let reg = Registry::default_set();
        for ok in ["nginx:1.25.3", "nginx", "docker.io/library/nginx:1.27", "ghcr.io/kubemedic-demo/legacy:3.1.0"] {
            assert!(reg.pull(ok).is_ok(), "{ok}");
        }
        let bad_tag = reg.pull("nginx:1.25.33").unwrap_err();
        assert!(bad_tag.contains("docker.io/library/nginx:1.25.33: not found"), "{bad_tag}");
        let no_repo = reg.pull("ghcr.io/nobody/nothing:1").unwrap_err();
        assert!(no_repo.contains("repository does not exist"), "{no_repo}");
        assert!(reg.pull("ghcr.io/kubemedic-demo/legacy:3.2.0-rc1").is_err());
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(Registry::parse("images: [nginx]").is_err());
        assert!(Registry::parse("imgs: {}").is_err());
        let star = Registry::parse("images: {app: ['*']}").unwrap();
        assert!(star.pull("app:anything").is_ok());
    }
}
