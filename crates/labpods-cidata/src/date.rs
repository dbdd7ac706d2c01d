//! ISO 9660 time stamps from Unix seconds (UTC).

use chrono::{DateTime, Datelike, Timelike};

/// "Not specified" (ECMA-119 8.4.26.1): sixteen '0' digits and offset 0.
pub const UNSET: [u8; 17] = *b"0000000000000000\0";

/// A UTC instant broken into its civil fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recording {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl Recording {
    /// Instants before 1900 or after 2155 are clamped (the directory record's year is one
    /// byte from 1900).
    pub fn from_unix(seconds: i64) -> Self {
        let seconds = seconds.clamp(-2_208_988_800, 5_996_851_199);
        let t = DateTime::from_timestamp(seconds, 0).unwrap_or_default();
        let byte = |n: u32| u8::try_from(n).unwrap_or(0);
        Self {
            year: i64::from(t.year()),
            month: byte(t.month()),
            day: byte(t.day()),
            hour: byte(t.hour()),
            minute: byte(t.minute()),
            second: byte(t.second()),
        }
    }

    /// The 7-byte form of directory records (ECMA-119 9.1.5).
    pub fn directory(&self) -> [u8; 7] {
        let year = u8::try_from(self.year - 1900).unwrap_or(0);
        [
            year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            0,
        ]
    }

    /// The 17-byte form of volume descriptors (ECMA-119 8.4.26.1).
    pub fn volume(&self) -> [u8; 17] {
        let digits = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        let mut out = [0u8; 17];
        out[..16].copy_from_slice(&digits.as_bytes()[..16]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_become_civil_utc_fields() {
        // 2027-01-15T08:00:00Z
        let r = Recording::from_unix(1_800_000_000);
        assert_eq!(r.volume(), *b"2027011508000000\0");
        assert_eq!(r.directory(), [127, 1, 15, 8, 0, 0, 0]);
        assert_eq!(Recording::from_unix(0).volume(), *b"1970010100000000\0");
        // Leap day.
        assert_eq!(
            Recording::from_unix(951_782_400).volume(),
            *b"2000022900000000\0"
        );
    }
}
