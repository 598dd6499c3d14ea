//! Calendar months in UTC, for usage queries ("2026-12").

use crate::DomainError;

/// A calendar month in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let err = || DomainError::invalid("month", "must look like 2026-12");
        let (y, m) = s.trim().split_once('-').ok_or_else(err)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(err());
        }
        let year: i32 = y.parse().map_err(|_| err())?;
        let month: u32 = m.parse().map_err(|_| err())?;
        if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) {
            return Err(err());
        }
        Ok(Self { year, month })
    }

    /// The month containing `ms` (unix milliseconds).
    pub fn of_ms(ms: i64) -> Self {
        let days = ms.div_euclid(86_400_000);
        // Inverse of days_from_civil.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Self { year, month }
    }

    /// `[start, end)` in unix milliseconds.
    pub fn range_ms(&self) -> (i64, i64) {
        let start = days_from_civil(self.year, self.month, 1) * 86_400_000;
        let (ny, nm) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        (start, days_from_civil(ny, nm, 1) * 86_400_000)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_and_cover_their_days() {
        let m = Month::parse("2026-12").expect("valid");
        assert_eq!(m.range_ms(), (1_796_083_200_000, 1_798_761_600_000));
        assert_eq!(Month::of_ms(1_796_083_200_000), m);
        assert_eq!(Month::of_ms(1_798_761_599_999), m);
        assert_eq!(
            Month::parse("2024-02").expect("v").range_ms().1
                - Month::parse("2024-02").expect("v").range_ms().0,
            29 * 86_400_000
        );
        assert_eq!(Month::of_ms(0).to_string(), "1970-01");
        for bad in ["2026-13", "2026-1", "26-12", "december", "", "2026-00"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }
}
