//! Rotation policies without PostgreSQL: which fields a policy has, what
//! values they take, and what is due for a tenant's active key version at
//! a given time (docs/KEY-ROTATION.md). The extension reads the stored
//! policy and the version's times, asks [`Policy::due`], and acts.
//!
//! Times are Unix microseconds; periods are whole seconds.

/// Longest period a policy accepts: 100 years.
pub const MAX_SECONDS: i64 = 100 * 366 * 24 * 3600;

/// The fields of a policy, as `pq.set_policy` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    RotationInterval,
    OverlapPeriod,
    NotificationBefore,
    AutoRotation,
    MaxKeyAge,
    /// `"cnsa2"`: new key material only of the CNSA 2.0 suites (0.11.0).
    RequireSuite,
}

impl Field {
    /// Every field, in the order the policy lists them.
    pub const ALL: [Field; 6] = [
        Field::RotationInterval,
        Field::OverlapPeriod,
        Field::NotificationBefore,
        Field::AutoRotation,
        Field::MaxKeyAge,
        Field::RequireSuite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::RotationInterval => "rotation_interval",
            Field::OverlapPeriod => "overlap_period",
            Field::NotificationBefore => "notification_before",
            Field::AutoRotation => "auto_rotation",
            Field::MaxKeyAge => "max_key_age",
            Field::RequireSuite => "require_suite",
        }
    }

    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The field names, comma-separated (for messages).
    pub fn names() -> String {
        Field::ALL.map(Field::name).join(", ")
    }
}

/// A period field's value: whole seconds, 1 (0 for `overlap_period`) to
/// [`MAX_SECONDS`]. The message says what is allowed.
pub fn check_seconds(field: Field, seconds: i64) -> Result<i64, String> {
    let least = i64::from(field != Field::OverlapPeriod);
    if seconds < least || seconds > MAX_SECONDS {
        return Err(format!("policy field {} must be between {least} and {MAX_SECONDS} seconds", field.name()));
    }
    Ok(seconds)
}

/// A tenant's rotation policy (seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub rotation_interval: Option<i64>,
    pub overlap_period: Option<i64>,
    pub notification_before: Option<i64>,
    pub auto_rotation: bool,
    pub max_key_age: Option<i64>,
    /// `require_suite = "cnsa2"`: versions are made only of ML-KEM-1024 and
    /// ML-DSA-87, and an active version of other suites encrypts and signs
    /// nothing (docs/KEY-ROTATION.md, "Suites").
    pub require_cnsa2: bool,
}

/// The one value `require_suite` takes besides null.
pub const REQUIRE_CNSA2: &str = "cnsa2";

/// A tenant's active key version, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveVersion {
    pub version: i32,
    /// When it became active (Unix microseconds).
    pub activated_at: i64,
    /// The version a rotation notice was last sent for.
    pub notified_version: Option<i32>,
    /// The version re-encryption was last queued for.
    pub reencrypted_version: Option<i32>,
}

/// What is due for one tenant at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// When the active version is due for rotation (with a rotation interval).
    pub rotation_at: Option<i64>,
    /// Rotate now (automatic rotation, and the interval has passed).
    pub rotate: bool,
    /// Send the rotation notice now (once per version).
    pub notify: bool,
    /// Queue re-encryption of the tenant's columns now (once per version,
    /// `overlap_period` after a rotation).
    pub reencrypt: bool,
}

const MICROS: i64 = 1_000_000;

impl Policy {
    /// The rules between fields: automatic rotation needs an interval, and
    /// the notice comes before it.
    pub fn check(&self) -> Result<(), String> {
        if self.auto_rotation && self.rotation_interval.is_none() {
            return Err("auto_rotation needs a rotation_interval".into());
        }
        if let (Some(before), Some(interval)) = (self.notification_before, self.rotation_interval) {
            if before >= interval {
                return Err("notification_before must be shorter than rotation_interval".into());
            }
        }
        Ok(())
    }

    /// What is due for `v` at `now` (Unix microseconds).
    pub fn due(&self, v: &ActiveVersion, now: i64) -> Due {
        let after = |seconds: i64| v.activated_at.saturating_add(seconds.saturating_mul(MICROS));
        let rotation_at = self.rotation_interval.map(after);
        let rotate = self.auto_rotation && rotation_at.is_some_and(|at| now >= at);
        let notify = self.auto_rotation
            && v.notified_version != Some(v.version)
            && match (self.rotation_interval, self.notification_before) {
                (Some(interval), Some(before)) => now >= after(interval - before),
                _ => false,
            };
        let reencrypt = v.version > 1
            && v.reencrypted_version != Some(v.version)
            && self.overlap_period.is_some_and(|overlap| now >= after(overlap));
        Due { rotation_at, rotate, notify, reencrypt }
    }
}

/// `unix_micros` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds
/// truncated), the form rotation notices carry.
pub fn utc_millis(unix_micros: i64) -> String {
    let millis = unix_micros.div_euclid(1000);
    let (days, ms_of_day) = (millis.div_euclid(86_400_000), millis.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (ms_of_day / 3_600_000, ms_of_day / 60_000 % 60, ms_of_day / 1000 % 60, ms_of_day % 1000);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn version(n: i32) -> ActiveVersion {
        ActiveVersion { version: n, activated_at: 1_767_225_600 * MICROS, notified_version: None, reencrypted_version: None }
    }

    #[test]
    fn fields_and_seconds() {
        assert_eq!(Field::parse("overlap_period"), Some(Field::OverlapPeriod));
        assert_eq!(Field::parse("rotation"), None);
        assert_eq!(
            Field::names(),
            "rotation_interval, overlap_period, notification_before, auto_rotation, max_key_age, require_suite"
        );
        assert_eq!(check_seconds(Field::OverlapPeriod, 0), Ok(0));
        assert!(check_seconds(Field::RotationInterval, 0).is_err());
        assert!(check_seconds(Field::MaxKeyAge, MAX_SECONDS + 1).is_err());
        assert!(check_seconds(Field::MaxKeyAge, -1).is_err());
        assert_eq!(check_seconds(Field::MaxKeyAge, MAX_SECONDS), Ok(MAX_SECONDS));
    }

    #[test]
    fn rules_between_fields() {
        assert!(Policy { auto_rotation: true, ..Policy::default() }.check().is_err());
        let p = Policy { rotation_interval: Some(10), notification_before: Some(10), ..Policy::default() };
        assert!(p.check().is_err());
        assert!(Policy { notification_before: Some(9), ..p }.check().is_ok());
    }

    #[test]
    fn due_rotation_notice_and_reencryption() {
        let p = Policy {
            rotation_interval: Some(30 * DAY),
            notification_before: Some(7 * DAY),
            overlap_period: Some(DAY),
            auto_rotation: true,
            max_key_age: None,
            require_cnsa2: false,
        };
        let v = version(3);
        let at = |days: i64| v.activated_at + days * DAY * MICROS;
        assert_eq!(p.due(&v, at(0)).rotation_at, Some(at(30)));
        assert_eq!(p.due(&v, at(0)), Due { rotation_at: Some(at(30)), rotate: false, notify: false, reencrypt: false });
        // One microsecond before each boundary, and on it.
        assert!(!p.due(&v, at(1) - 1).reencrypt);
        assert!(p.due(&v, at(1)).reencrypt);
        assert!(!p.due(&v, at(23) - 1).notify);
        assert!(p.due(&v, at(23)).notify);
        assert!(!p.due(&v, at(30) - 1).rotate);
        assert!(p.due(&v, at(30)).rotate);
        // Once per version.
        let done = ActiveVersion { notified_version: Some(3), reencrypted_version: Some(3), ..v };
        assert_eq!(p.due(&done, at(29)), Due { rotation_at: Some(at(30)), ..Due::default() });
        // Version 1 has nothing to re-encrypt; manual rotation is never due.
        assert!(!p.due(&version(1), at(2)).reencrypt);
        let manual = Policy { auto_rotation: false, ..p };
        assert!(!manual.due(&v, at(31)).rotate && !manual.due(&v, at(31)).notify);
        // No interval: nothing about rotation.
        let none = Policy { rotation_interval: None, auto_rotation: false, ..p };
        assert_eq!(none.due(&v, at(40)).rotation_at, None);
    }

    #[test]
    fn utc_millis_formats_like_to_char() {
        assert_eq!(utc_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_millis(1_798_761_600_123_456), "2027-01-01T00:00:00.123Z");
        assert_eq!(utc_millis(951_782_400_999_999), "2000-02-29T00:00:00.999Z");
        assert_eq!(utc_millis(1_709_251_199_000_000), "2024-02-29T23:59:59.000Z");
        assert_eq!(utc_millis(4_102_444_800_000_000), "2100-01-01T00:00:00.000Z");
    }
}
