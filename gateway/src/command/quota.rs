//! GETQUOTA, GETQUOTAROOT and SETQUOTA (RFC 9208 4.1): a user has one quota root, named
//! [`QUOTA_ROOT`], over all their mailboxes, with a STORAGE limit (KiB), a MESSAGE
//! limit, both or neither; a user without limits has no quota root. The limits are the
//! administrator's (users file, PostgreSQL, `[quota]`): SETQUOTA is refused, and
//! QUOTASET is not advertised.

use imap_codec::imap_types::core::{AString, Vec1};
use imap_codec::imap_types::extensions::quota::{QuotaGet, Resource as WireResource};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Data, Response};
use pluto_model::{Quota, Resource, Usage};

use crate::names::{mailbox_name, to_wire};
use crate::response::{CmdError, CmdResult, Done, code};
use crate::session::{Authenticated, Client};

/// The name of every user's one quota root (as Dovecot's `quota = count:User quota`).
pub(super) const QUOTA_ROOT: &str = "User quota";

impl Client {
    pub(crate) async fn cmd_getquotaroot(
        &mut self,
        login: &Authenticated,
        mailbox: Mailbox<'static>,
    ) -> CmdResult {
        let name = mailbox_name(&mailbox)?;
        // The mailbox must exist (NONEXISTENT otherwise), whatever its quota.
        login.store.status(&login.user, &name).await?;
        let limited = login.quota.is_limited();
        let roots = if limited { vec![root()?] } else { Vec::new() };
        self.send(&Response::Data(Data::QuotaRoot {
            mailbox: to_wire(&name),
            roots,
        }))
        .await?;
        if limited {
            self.send_quota(login).await?;
        }
        Ok(Done::ok("Getquotaroot completed"))
    }

    pub(crate) async fn cmd_getquota(
        &mut self,
        login: &Authenticated,
        root: AString<'static>,
    ) -> CmdResult {
        if root.as_ref() != QUOTA_ROOT.as_bytes() || !login.quota.is_limited() {
            return Err(CmdError::no_code(code("NONEXISTENT"), "No such quota root"));
        }
        self.send_quota(login).await?;
        Ok(Done::ok("Getquota completed"))
    }

    pub(crate) async fn cmd_setquota(&mut self) -> CmdResult {
        Err(CmdError::no_code(
            code("NOPERM"),
            "Quota limits are set by the administrator",
        ))
    }

    /// `* QUOTA "User quota" (STORAGE used limit MESSAGE used limit)`, the limited
    /// resources only.
    async fn send_quota(&mut self, login: &Authenticated) -> Result<(), CmdError> {
        let usage = login.store.usage(&login.user).await?;
        let Ok(quotas) = Vec1::try_from(resources(&login.quota, usage)) else {
            return Ok(());
        };
        self.send(&Response::Data(Data::Quota {
            root: root()?,
            quotas,
        }))
        .await
    }
}

fn root() -> Result<AString<'static>, CmdError> {
    AString::try_from(QUOTA_ROOT).map_err(|_| CmdError::bad("quota root name"))
}

/// The limited resources with their usage and limit, in RFC 9208's units (STORAGE in
/// KiB: the usage rounded up, the limit down, so a full quota never shows room).
fn resources(quota: &Quota, usage: Usage) -> Vec<QuotaGet<'static>> {
    quota
        .limits()
        .map(|(resource, limit)| match resource {
            Resource::Storage => QuotaGet {
                resource: WireResource::Storage,
                usage: usage.storage_kib(),
                limit: limit / 1024,
            },
            Resource::Message => QuotaGet {
                resource: WireResource::Message,
                usage: usage.messages,
                limit,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_limited_resources_are_reported_in_rfc_units() {
        let quota = Quota {
            storage_bytes: Some(10 * 1024 + 512),
            messages: Some(0),
        };
        let got = resources(&quota, Usage::new(1025, 3));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].resource, WireResource::Storage);
        assert_eq!((got[0].usage, got[0].limit), (2, 10));
        let both = Quota {
            storage_bytes: Some(1024),
            messages: Some(5),
        };
        let got = resources(&both, Usage::new(0, 3));
        assert_eq!(got[1].resource, WireResource::Message);
        assert_eq!((got[1].usage, got[1].limit), (3, 5));
        assert!(resources(&Quota::default(), Usage::new(1, 1)).is_empty());
    }
}
