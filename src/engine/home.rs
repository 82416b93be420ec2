//! What a person sees on their own page of the bot (Slack's App Home): their
//! requests, open and recent, and, for an approver, the new requests
//! waiting for a decision that they may take (an extension waiting for
//! approvers is asked on its card, and not listed here). The engine decides what each person may
//! see; a chat adapter renders it, and its buttons go through the same
//! engine paths as everywhere else (End now: [`Engine::end_now`]).
//!
//! Invariant: a person sees only their own requests, and the pending
//! requests of others only when their chat service says they are an
//! approver, never their own (four eyes: not by chat identity, nor by the
//! email their request was resolved with).

use chrono::TimeDelta;

use super::{Delivery, Engine};
use crate::domain::{ChatUserId, Request};

/// How far back finished requests are shown.
pub const RECENT_DAYS: i64 = 14;
/// The most of a person's own requests shown, newest first.
pub const MINE_SHOWN: u32 = 15;
/// The most pending requests shown to an approver, oldest first.
pub const PENDING_SHOWN: u32 = 20;

/// One person's overview, as the engine allows them to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// Whose page it is.
    pub user: ChatUserId,
    /// Their requests: every open one, then those of the last
    /// [`RECENT_DAYS`], each part newest first, at most [`MINE_SHOWN`]
    /// (open ones before finished ones, so End now is never cut off).
    pub mine: Vec<Request>,
    /// For an approver, the others' requests waiting for a decision,
    /// oldest first, at most [`PENDING_SHOWN`]; `None` for everyone else
    /// (and when the chat service could not say).
    pub to_decide: Option<Vec<Request>>,
}

impl Engine {
    /// The overview of `user`, or `None` when `delivery` was seen before
    /// (a retried event: its view was published already, and the next
    /// opening of the page publishes a fresh one anyway).
    #[tracing::instrument(skip_all, fields(user = %user))]
    pub async fn home(
        &self,
        user: &ChatUserId,
        delivery: Option<Delivery>,
    ) -> anyhow::Result<Option<Home>> {
        if let Some(delivery) = delivery {
            let first = self
                .store
                .first_sighting(&delivery.key, self.now(), delivery.keep_until)
                .await?;
            if !first {
                tracing::info!("an App Home event delivered again; not published twice");
                return Ok(None);
            }
        }
        let since = self.now() - TimeDelta::days(RECENT_DAYS);
        let mine = self.store.requests_of(user, since, MINE_SHOWN).await?;
        let to_decide = match self.approver(user).await {
            Ok(Some(approver)) => {
                let pending = self
                    .store
                    .pending_approval(user.platform(), PENDING_SHOWN)
                    .await?;
                // Never their own, by chat identity or by account (email).
                let own = |r: &Request| match (approver.email.as_ref(), r.email()) {
                    (Some(mine), Some(theirs)) => {
                        mine.as_str().eq_ignore_ascii_case(theirs.as_str())
                    }
                    _ => false,
                };
                Some(
                    pending
                        .into_iter()
                        .filter(|r| &r.requester != user && !own(r))
                        .collect(),
                )
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not check approver membership for the App Home");
                None
            }
        };
        Ok(Some(Home {
            user: user.clone(),
            mine,
            to_decide,
        }))
    }
}
