//! How many users a stage admits: a number, or everyone.

use std::{borrow::Cow, fmt, str::FromStr};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

/// Users admitted to the new experience. `All` is above every count.
///
/// Serialized as a string (`"500"` or `"All"`), the way `status.rollout.users` shows it; a bare
/// JSON number is accepted too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Users {
    /// At most this many users (0 = nobody).
    Count(u64),
    /// Everyone.
    All,
}

impl Users {
    /// Nobody admitted.
    pub const NONE: Users = Users::Count(0);

    /// Reads a stage's `users` field: a positive integer, or the string `All`.
    pub fn from_stage_users(value: &IntOrString) -> Result<Users, String> {
        match value {
            IntOrString::Int(n) if *n > 0 => Ok(Users::Count(*n as u64)),
            IntOrString::Int(n) => Err(format!("{n} is not a positive number")),
            IntOrString::String(s) => match s.parse() {
                Ok(Users::Count(0)) | Err(_) => {
                    Err(format!("{s:?} is not a positive number or All"))
                }
                Ok(users) => Ok(users),
            },
        }
    }
}

impl Default for Users {
    fn default() -> Self {
        Users::NONE
    }
}

impl fmt::Display for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Users::Count(n) => write!(f, "{n}"),
            Users::All => f.write_str("All"),
        }
    }
}

impl FromStr for Users {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "All" {
            return Ok(Users::All);
        }
        s.parse()
            .map(Users::Count)
            .map_err(|_| format!("{s:?} is not a number of users or All"))
    }
}

impl Serialize for Users {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Users {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Users;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of users or \"All\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Users, E> {
                Ok(Users::Count(n))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Users, E> {
                u64::try_from(n)
                    .map(Users::Count)
                    .map_err(|_| E::custom(format!("{n} users is negative")))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Users, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl schemars::JsonSchema for Users {
    fn schema_name() -> Cow<'static, str> {
        "Users".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Users admitted: a number, or `All`.",
            "pattern": "^(All|[0-9]+)$",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_above_every_count() {
        assert!(Users::All > Users::Count(u64::MAX));
        assert!(Users::Count(100) < Users::Count(500));
        assert_eq!(Users::default(), Users::NONE);
    }

    #[test]
    fn stage_users_accept_positive_numbers_and_all_only() {
        let ok = |v| Users::from_stage_users(&v).unwrap();
        assert_eq!(ok(IntOrString::Int(100)), Users::Count(100));
        assert_eq!(ok(IntOrString::String("500".into())), Users::Count(500));
        assert_eq!(ok(IntOrString::String("All".into())), Users::All);
        for bad in [
            IntOrString::Int(0),
            IntOrString::Int(-5),
            IntOrString::String("0".into()),
            IntOrString::String("all".into()),
            IntOrString::String("lots".into()),
        ] {
            assert!(Users::from_stage_users(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users_serialize_as_the_status_string_and_read_numbers_too() {
        assert_eq!(
            serde_json::to_string(&Users::Count(500)).unwrap(),
            "\"500\""
        );
        assert_eq!(serde_json::to_string(&Users::All).unwrap(), "\"All\"");
        assert_eq!(
            serde_json::from_str::<Users>("\"All\"").unwrap(),
            Users::All
        );
        assert_eq!(
            serde_json::from_str::<Users>("1500").unwrap(),
            Users::Count(1500)
        );
        assert!(serde_json::from_str::<Users>("-1").is_err());
    }
}
