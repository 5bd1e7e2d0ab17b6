//! Per-user quota limits as a Dovecot user database states them, so that a Dovecot
//! `passwd-file` with quotas works unchanged: the extra fields (the eighth field of a
//! line, `key=value` pairs separated by spaces) may hold
//!
//! - `userdb_quota_rule=*:storage=1G` (Dovecot 2.3; also `quota_rule`, and
//!   `quota_rule2`, `quota_rule3`, … which add to it): limits separated by `:` after the
//!   mailbox `*`: `storage=SIZE` (KiB without a suffix, as in Dovecot), `bytes=SIZE`
//!   (bytes without a suffix), `messages=N`;
//! - `userdb_quota_storage_size=1G` and `userdb_quota_message_count=N` (Dovecot 2.4;
//!   also without the `userdb_` prefix).
//!
//! SIZE is a number with an optional suffix `b`, `k`, `M`, `G`, `T` (powers of 1024,
//! case-insensitive). `0` means no limit. What pluto cannot honour — a rule for another
//! mailbox (`Trash:storage=+100M`), a relative or percent limit, `ignore` — is reported
//! and left out, so the resource falls back to the configuration's default.

use pluto_model::Quota;

/// The quota limits stated by a line's extra fields, and a description of each field
/// that was about quotas but could not be used (for a warning; never holds a secret:
/// extra fields hold no password).
pub fn from_extra_fields(fields: &str) -> (Quota, Vec<String>) {
    let mut quota = Quota::default();
    let mut problems = Vec::new();
    for field in fields.split_ascii_whitespace() {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        let key = key.strip_prefix("userdb_").unwrap_or(key);
        let result = if key == "quota_rule"
            || key
                .strip_prefix("quota_rule")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        {
            parse_rule(value).map(|rule| quota = rule.or(quota))
        } else if key == "quota_storage_size" {
            parse_size(value, 1).map(|n| quota.storage_bytes = Some(n))
        } else if key == "quota_message_count" {
            parse_count(value).map(|n| quota.messages = Some(n))
        } else {
            continue;
        };
        if let Err(reason) = result {
            problems.push(format!("{key}: {reason}"));
        }
    }
    (quota, problems)
}

/// A Dovecot quota rule, `*:storage=1G:messages=1000`.
pub fn parse_rule(rule: &str) -> Result<Quota, String> {
    let (mailbox, limits) = rule
        .split_once(':')
        .ok_or_else(|| format!("{rule:?} is not MAILBOX:LIMITS"))?;
    if mailbox != "*" {
        return Err(format!(
            "only rules for every mailbox (*) are supported, not {mailbox:?}"
        ));
    }
    let mut quota = Quota::default();
    for limit in limits.split(':') {
        let (key, value) = limit
            .split_once('=')
            .ok_or_else(|| format!("{limit:?} is not KEY=VALUE"))?;
        match key {
            "storage" => quota.storage_bytes = Some(parse_size(value, 1024)?),
            "bytes" => quota.storage_bytes = Some(parse_size(value, 1)?),
            "messages" => quota.messages = Some(parse_count(value)?),
            other => return Err(format!("unknown limit {other:?}")),
        }
    }
    Ok(quota)
}

/// A size: digits and an optional suffix (b, k, M, G, T; powers of 1024); without a
/// suffix the number counts `unit` bytes.
pub fn parse_size(text: &str, unit: u64) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (a number, then b, k, M, G or T)"))?;
    let multiplier = match suffix.to_ascii_lowercase().as_str() {
        "" => unit,
        "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size (a number, then b, k, M, G or T)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_count(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a number of messages"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dovecot_rules_and_fields_are_read() {
        let (q, problems) = from_extra_fields("userdb_quota_rule=*:storage=1G");
        assert_eq!(q.storage_bytes, Some(1 << 30));
        assert_eq!(q.messages, None);
        assert!(problems.is_empty());

        // Without a suffix, storage is in KiB and bytes in bytes, as in Dovecot.
        let (q, _) = from_extra_fields("quota_rule=*:storage=100:messages=7");
        assert_eq!((q.storage_bytes, q.messages), (Some(102_400), Some(7)));
        let (q, _) = from_extra_fields("userdb_quota_rule=*:bytes=100");
        assert_eq!(q.storage_bytes, Some(100));

        // quota_rule2 adds to quota_rule; Dovecot 2.4's names; other fields ignored.
        let (q, problems) = from_extra_fields(
            "userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=10M userdb_quota_rule2=*:messages=50",
        );
        assert_eq!((q.storage_bytes, q.messages), (Some(10 << 20), Some(50)));
        assert!(problems.is_empty());
        let (q, _) =
            from_extra_fields("userdb_quota_storage_size=2048 quota_message_count=0 nice=1");
        assert_eq!((q.storage_bytes, q.messages), (Some(2048), Some(0)));
    }

    #[test]
    fn what_cannot_be_honoured_is_reported_and_left_out() {
        for bad in [
            "userdb_quota_rule=Trash:storage=+100M",
            "userdb_quota_rule=*:storage=10%",
            "userdb_quota_rule=*:ignore",
            "userdb_quota_rule=*:storage=1Q",
            "userdb_quota_rule=*:storage=99999999999999999999",
            "userdb_quota_rule=*:storage=18446744073709551615T",
            "userdb_quota_rule=*:messages=-1",
            "userdb_quota_rule=storage",
            "userdb_quota_storage_size=",
        ] {
            let (q, problems) = from_extra_fields(bad);
            assert_eq!(q, Quota::default(), "{bad}");
            assert_eq!(problems.len(), 1, "{bad}");
        }
    }
}
