//! Timestamps as each backend should store them.
//!
//! sqlx writes `DateTime<Utc>` to SQLite as RFC 3339 with a variable number of fractional digits,
//! which does not sort as text. [`DbTime`] writes a fixed-width UTC form instead (microseconds), so
//! range filters and keyset pagination compare correctly; on PostgreSQL it is a plain `TIMESTAMPTZ`.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{
    Decode, Encode, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
    sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef},
};

/// A UTC instant stored at microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DbTime(pub DateTime<Utc>);

impl From<DateTime<Utc>> for DbTime {
    fn from(value: DateTime<Utc>) -> Self {
        Self(value)
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        let text = self.0.to_rfc3339_opts(SecondsFormat::Micros, true);
        <String as Encode<Sqlite>>::encode(text, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Self(
            DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc),
        ))
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self(<DateTime<Utc> as Decode<Postgres>>::decode(value)?))
    }
}
