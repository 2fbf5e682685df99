//! Durations as people write them: `"500ms"`, `"90s"`, `"15m"`, `"2h"`,
//! `"30d"`.

/// The milliseconds of `text` (a whole number and a unit: `ms`, `s`, `m`,
/// `h`, `d`); `None` if it is not one or overflows.
pub fn millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let unit_ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_in_each_unit_and_refusals() {
        assert_eq!(super::millis("500ms"), Some(500));
        assert_eq!(super::millis(" 90s"), Some(90_000));
        assert_eq!(super::millis("15m"), Some(900_000));
        assert_eq!(super::millis("2h"), Some(7_200_000));
        assert_eq!(super::millis("30d"), Some(2_592_000_000));
        for bad in ["", "10", "s", "1.5h", "-1s", "1w", "99999999999999999999d"] {
            assert_eq!(super::millis(bad), None, "{bad}");
        }
    }
}
