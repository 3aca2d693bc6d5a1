//! Times and durations as the command line takes them: `90s`, `15m`, `2h`, `1d`, or an
//! RFC 3339 time.

use anyhow::{Result, bail};

/// An RFC 3339 time, or a delay from now such as `90s`, `15m`, `2h`, `1d`, given as `flag`;
/// either within ten years of now ([`belfry::host::time_bounds`]).
pub(crate) fn parse_when(flag: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    use belfry::host::time_bounds;
    let now = chrono::Utc::now();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time_bounds::instant(
            flag,
            t.with_timezone(&chrono::Utc),
            now,
        )?);
    }
    // A delay here is from now, forward, and names its unit.
    if text.ends_with(|c: char| c.is_ascii_digit()) {
        bail!("{flag} `{text}`: the unit must be s, m, h or d");
    }
    let secs = match duration_of(text) {
        Ok(secs) if secs >= 0 => time_bounds::span_secs(flag, secs, 0)?,
        Err(e @ DurationError::TooLong) => bail!("{flag} `{text}`: {e}"),
        _ => bail!("{flag} `{text}`: expected an RFC 3339 time or a delay like 90s, 15m, 2h, 1d"),
    };
    Ok(time_bounds::after(flag, now, secs)?)
}

/// `90s`, `15m`, `2h`, `1d` or plain seconds, as seconds given as `flag`. The sign is kept:
/// whether a value makes sense is for its consumer to say.
pub(crate) fn duration_secs(flag: &str, text: &str) -> Result<i64> {
    duration_of(text).map_err(|e| match e {
        DurationError::Syntax => {
            anyhow::anyhow!("{flag} `{text}`: expected a duration like 90s, 15m, 2h or 1d")
        }
        e => anyhow::anyhow!("{flag} `{text}`: {e}"),
    })
}

/// Why a duration's text was refused: a too-long one is said as such wherever it is given.
#[derive(Debug)]
pub(crate) enum DurationError {
    Syntax,
    Unit,
    TooLong,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Syntax => f.write_str("expected a number and a unit"),
            DurationError::Unit => f.write_str("the unit must be s, m, h or d"),
            DurationError::TooLong => write!(
                f,
                "too long (at most {} seconds, ten years)",
                belfry::host::time_bounds::MAX_SPAN_SECS
            ),
        }
    }
}

pub(crate) fn duration_of(text: &str) -> std::result::Result<i64, DurationError> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|e: std::num::ParseIntError| match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                DurationError::TooLong
            }
            _ => DurationError::Syntax,
        })?;
    let per_unit: i64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(DurationError::Unit),
    };
    n.checked_mul(per_unit).ok_or(DurationError::TooLong)
}
