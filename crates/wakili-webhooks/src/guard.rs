//! Where webhooks may go: every address a URL's host resolves to must pass the address policy
//! ([`AddressPolicy`]: no loopback, private, link-local or special-purpose address unless the
//! settings open them), and the connection is made to an address that passed, so a DNS answer
//! that changes between the check and the connection (DNS rebinding) gains nothing.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use wakili_core::net::AddressPolicy;

use crate::WebhookError;

/// A resolver that refuses names resolving to any address the policy refuses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuardedResolver(pub(crate) AddressPolicy);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs = resolve(&host, policy).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The addresses `host` resolves to, all allowed by `policy`; refused when any is not (a name
/// with one public and one private address would otherwise reach the private one sometimes).
pub(crate) async fn resolve(
    host: &str,
    policy: AddressPolicy,
) -> Result<Vec<SocketAddr>, WebhookError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| WebhookError::Unreachable(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(WebhookError::Unreachable(format!("{host} has no address")));
    }
    if let Some(refused) = addrs.iter().find(|a| !policy.allows(a.ip())) {
        return Err(WebhookError::Refused(format!(
            "{host} resolves to {}, a loopback, private or special-purpose address \
             (webhooks.allow_loopback / allow_private open them)",
            refused.ip()
        )));
    }
    Ok(addrs)
}

/// Checks that `url` may be sent to: its form, and where its host points now.
pub(crate) async fn check(url: &str, policy: AddressPolicy) -> Result<(), WebhookError> {
    match host(url)? {
        Host::Ip(ip) => literal(ip, policy),
        Host::Name(name) => resolve(&name, policy).await.map(drop),
    }
}

/// A URL's host.
pub(crate) enum Host {
    /// An IP literal (`http://10.0.0.1/`), which reqwest connects to without resolving.
    Ip(IpAddr),
    /// A name, resolved by [`GuardedResolver`].
    Name(String),
}

/// The host of `url`, after checking the URL's form.
pub(crate) fn host(url: &str) -> Result<Host, WebhookError> {
    wakili_core::webhook::endpoint::check_url(url)
        .map_err(|e| WebhookError::Invalid(e.to_string()))?;
    let parsed =
        reqwest::Url::parse(url).map_err(|e| WebhookError::Invalid(format!("url: {e}")))?;
    let Some(host) = parsed.host_str() else {
        return Err(WebhookError::Invalid("url: a URL with a host".into()));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Ok(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(host.to_owned()),
    })
}

/// An IP-literal host, which reqwest connects to without resolving.
pub(crate) fn literal(ip: IpAddr, policy: AddressPolicy) -> Result<(), WebhookError> {
    if policy.allows(ip) {
        Ok(())
    } else {
        Err(WebhookError::Refused(format!(
            "{ip} is a loopback, private or special-purpose address \
             (webhooks.allow_loopback / allow_private open them)"
        )))
    }
}

/// The HTTP client webhooks go out with: the guarded resolver, no redirects (a redirect could
/// lead anywhere), no proxy from the environment, the attempt deadline.
pub(crate) fn client(
    policy: AddressPolicy,
    timeout: std::time::Duration,
) -> Result<reqwest::Client, WebhookError> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(policy)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("Wakili-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WebhookError::Unreachable(format!("cannot build the HTTP client: {e}")))
}
