//! Reserved hosts: capture URLs whose host makes the simulator behave in a set
//! way every time, so a test can ask for one outcome without touching the
//! fault knobs.
//!
//! | host (or any subdomain) | behaviour |
//! | --- | --- |
//! | `bot-blocked.test` | the capture ends FAILED with [`BOT_PROTECTION_REASON`] |
//! | `early-webhook.test` | the capture completes at once and its webhook is delivered, and its answer awaited, before the create request is answered |
//! | `lost-webhook.test` | the capture completes normally but its webhook is never sent, so only PeekShot's read endpoint tells the outcome |
//! | `answer-lost.test` | the capture is created and completes normally, but the create's answer is never sent (the connection is closed), so the client cannot tell whether it was created |
//!
//! `.test` is reserved by RFC 2606 and never resolves, so no real site can be
//! mistaken for one of these. Any other host completes normally (the simulator
//! never fetches the URL).

use url::Url;

/// The host whose captures are blocked by the site's bot protection.
pub const BOT_BLOCKED_HOST: &str = "bot-blocked.test";

/// The host whose webhook arrives before the create answer.
pub const EARLY_WEBHOOK_HOST: &str = "early-webhook.test";

/// The host whose captures complete but whose webhook is never sent.
pub const LOST_WEBHOOK_HOST: &str = "lost-webhook.test";

/// The host whose create answers are lost after the capture was created.
pub const ANSWER_LOST_HOST: &str = "answer-lost.test";

/// The error of a capture of [`BOT_BLOCKED_HOST`].
pub const BOT_PROTECTION_REASON: &str =
    "Capture failed: the site blocked automated access (bot protection)";

/// The set behaviour of a reserved host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedHost {
    /// The capture ends FAILED with [`BOT_PROTECTION_REASON`].
    BotBlocked,
    /// The capture completes at once and its webhook precedes the create answer.
    EarlyWebhook,
    /// The capture completes normally and its webhook is never sent.
    LostWebhook,
    /// The capture is created, but the create's answer is dropped.
    AnswerLost,
}

impl ReservedHost {
    /// The reserved behaviour of `url`'s host, if it has one. The url crate
    /// lowercases domain names, so `Bot-Blocked.TEST` matches too.
    pub fn of(url: &Url) -> Option<Self> {
        let host = url.host_str()?;
        if is_within(host, BOT_BLOCKED_HOST) {
            Some(Self::BotBlocked)
        } else if is_within(host, EARLY_WEBHOOK_HOST) {
            Some(Self::EarlyWebhook)
        } else if is_within(host, LOST_WEBHOOK_HOST) {
            Some(Self::LostWebhook)
        } else if is_within(host, ANSWER_LOST_HOST) {
            Some(Self::AnswerLost)
        } else {
            None
        }
    }
}

/// True when `host` is `domain` or one of its subdomains; a host that merely
/// ends with the same letters (`notbot-blocked.test`) is not.
fn is_within(host: &str, domain: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reserved(url: &str) -> Option<ReservedHost> {
        Url::parse(url).ok().as_ref().and_then(ReservedHost::of)
    }

    #[test]
    fn reserved_hosts_and_their_subdomains_are_recognised() {
        assert_eq!(
            reserved("https://bot-blocked.test/"),
            Some(ReservedHost::BotBlocked)
        );
        assert_eq!(
            reserved("http://shop.Bot-Blocked.TEST/cart?x=1"),
            Some(ReservedHost::BotBlocked)
        );
        assert_eq!(
            reserved("https://early-webhook.test"),
            Some(ReservedHost::EarlyWebhook)
        );
        assert_eq!(
            reserved("https://a.b.early-webhook.test./page"),
            Some(ReservedHost::EarlyWebhook)
        );
        assert_eq!(
            reserved("https://lost-webhook.test/run-7"),
            Some(ReservedHost::LostWebhook)
        );
    }

    #[test]
    fn lookalike_hosts_are_not_reserved() {
        assert_eq!(reserved("https://notbot-blocked.test/"), None);
        assert_eq!(reserved("https://not-lost-webhook.test/"), None);
        assert_eq!(reserved("https://bot-blocked.test.example.com/"), None);
        assert_eq!(reserved("https://example.com/bot-blocked.test"), None);
    }
}
