//! Exact handling of DynamoDB numbers.
//!
//! A DynamoDB `N` is a decimal string of up to 38 significant digits with an exponent between
//! -130 and +125. It is parsed here into *digits × 10^exponent* without ever passing through a
//! float, then scaled into an `i128` for `Decimal128`; a value that would need rounding or more
//! digits than the declared precision is refused with a reason, never adjusted. A text outside
//! DynamoDB's own limits (a 39th significant digit, `1E+126`, `1E-131`) is refused too:
//! DynamoDB could not have produced it and would not take it back.

/// A parsed number: `(-1)^negative × digits × 10^exponent`, `digits` without leading or
/// trailing zeros (empty for zero). Parsing allocates nothing: the codec parses every `N` of
/// every item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub negative: bool,
    digits: [u8; MAX_DIGITS],
    len: u8,
    pub exponent: i64,
}

impl Parsed {
    /// The significant digits (ASCII), most significant first.
    pub fn digits(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }
}

/// Most significant digits of a DynamoDB number.
pub const MAX_DIGITS: usize = 38;
/// Smallest exponent of a DynamoDB number in scientific notation (`1E-130`).
const MIN_ADJUSTED_EXPONENT: i64 = -130;
/// Largest exponent of a DynamoDB number in scientific notation (`9.99…E+125`).
const MAX_ADJUSTED_EXPONENT: i64 = 125;

/// Largest exponent magnitude accepted while parsing (DynamoDB allows -130..=125; anything
/// far beyond is refused before arithmetic could overflow).
const MAX_EXPONENT: i64 = 10_000;

/// Parses the text of an `N` (`-12.50`, `1E+3`, `.5`, `7.`).
pub(crate) fn parse(text: &str) -> Result<Parsed, String> {
    let bad = || format!("{text:?} is not a number");
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&c) = bytes.first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        i = 1;
    }
    let mut digits = [0u8; MAX_DIGITS];
    // Significant digits seen (may exceed MAX_DIGITS: counted for the error message) and
    // zeros seen since the last non-zero digit (significant only if another one follows).
    let mut significant: i64 = 0;
    let mut pending_zeros: i64 = 0;
    let mut frac_len: i64 = 0;
    let mut seen_digit = false;
    let mut seen_point = false;
    while i < bytes.len() {
        match bytes[i] {
            c @ b'0'..=b'9' => {
                seen_digit = true;
                if seen_point {
                    frac_len += 1;
                }
                if c == b'0' {
                    // Leading zeros are never significant.
                    if significant > 0 {
                        pending_zeros += 1;
                    }
                } else {
                    for _ in 0..pending_zeros {
                        if let Some(slot) = usize::try_from(significant)
                            .ok()
                            .and_then(|s| digits.get_mut(s))
                        {
                            *slot = b'0';
                        }
                        significant += 1;
                    }
                    pending_zeros = 0;
                    if let Some(slot) = usize::try_from(significant)
                        .ok()
                        .and_then(|s| digits.get_mut(s))
                    {
                        *slot = c;
                    }
                    significant += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => break,
            _ => return Err(bad()),
        }
        i += 1;
    }
    if !seen_digit {
        return Err(bad());
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() {
        // bytes[i] is the exponent marker.
        let exp_text = &text[i + 1..];
        let unsigned = exp_text.strip_prefix(['+', '-']).unwrap_or(exp_text);
        if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        exponent = exp_text
            .parse::<i64>()
            .ok()
            .filter(|e| e.abs() <= MAX_EXPONENT)
            .ok_or_else(|| format!("{text:?} has an exponent out of range"))?;
    }
    // Leading zeros of the fraction were skipped above but still count in `frac_len`;
    // trailing zeros were not stored and move into the exponent.
    exponent = exponent - frac_len + pending_zeros;
    if significant == 0 {
        return Ok(Parsed {
            negative: false,
            digits,
            len: 0,
            exponent: 0,
        });
    }
    // DynamoDB refuses (and so can never hand out) numbers beyond these limits; accepting one
    // here would write a lake value that cannot be synced back.
    let Some(len) = u8::try_from(significant)
        .ok()
        .filter(|l| usize::from(*l) <= MAX_DIGITS)
    else {
        return Err(format!(
            "{text} has {significant} significant digits, more than DynamoDB's {MAX_DIGITS}"
        ));
    };
    // `d.ddd × 10^adjusted`: DynamoDB's range is 1E-130 ..= 9.99…(38 digits)E+125.
    let adjusted = exponent + significant - 1;
    if !(MIN_ADJUSTED_EXPONENT..=MAX_ADJUSTED_EXPONENT).contains(&adjusted) {
        return Err(format!(
            "{text} is outside DynamoDB's number range (magnitude 1E-130 to 9.9999999999999999999999999999999999999E+125)"
        ));
    }
    Ok(Parsed {
        negative,
        digits,
        len,
        exponent,
    })
}

/// The unscaled `i128` of `text` at `scale`, if it fits `precision` digits exactly.
pub(crate) fn to_unscaled(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let p = parse(text)?;
    let digits = p.digits();
    if digits.is_empty() {
        return Ok(0);
    }
    let shift = p.exponent + i64::from(scale);
    if shift < 0 {
        return Err(format!(
            "{text} has more than {scale} fractional digits (no rounding)"
        ));
    }
    let total = digits.len() as i64 + shift;
    if total > i64::from(precision) {
        return Err(format!(
            "{text} does not fit decimal({precision},{scale}) ({total} integer+scale digits)"
        ));
    }
    // At most 38 digits: fits i128 (max ≈ 1.7e38).
    let mut v: i128 = 0;
    for &d in digits {
        v = v * 10 + i128::from(d - b'0');
    }
    for _ in 0..shift {
        v = v
            .checked_mul(10)
            .ok_or_else(|| format!("{text} overflows"))?;
    }
    Ok(if p.negative { -v } else { v })
}

/// The parsed number when a JSON number with its digits is exact: a double reads it back as
/// exactly this decimal (at most 17 significant digits, and the shortest text of the nearest
/// double has the same digits). `None` means the number must travel as text.
pub(crate) fn exact_json_number(text: &str) -> Option<Parsed> {
    let p = parse(text).ok()?;
    if p.digits().len() > 17 {
        return None;
    }
    if p.digits().len() <= 15 && p.exponent >= 0 && p.digits().len() as i64 + p.exponent <= 15 {
        // An integer below 10^15: every double holds it exactly.
        return Some(p);
    }
    let f: f64 = text.parse().ok().filter(|f: &f64| f.is_finite())?;
    // ryu prints the shortest digits that read back as `f`.
    let mut buf = ryu::Buffer::new();
    let shortest = parse(buf.format_finite(f)).ok()?;
    (shortest == p).then_some(p)
}

/// Writes `p` as a JSON number: plain digits when short, else with an exponent.
pub(crate) fn write_decimal(out: &mut Vec<u8>, p: &Parsed) {
    let digits = p.digits();
    if digits.is_empty() {
        out.push(b'0');
        return;
    }
    if p.negative {
        out.push(b'-');
    }
    let k = digits.len() as i64;
    let e = p.exponent;
    if e >= 0 && k + e <= 21 {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', e as usize));
    } else if e < 0 && -e < k {
        let split = (k + e) as usize;
        out.extend_from_slice(&digits[..split]);
        out.push(b'.');
        out.extend_from_slice(&digits[split..]);
    } else if e < 0 && -e - k <= 6 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-e - k) as usize));
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.extend_from_slice(itoa::Buffer::new().format(e + k - 1).as_bytes());
    }
}

/// An `i64` from an integral `N`.
pub(crate) fn to_i64(text: &str) -> Result<i64, String> {
    let v = to_unscaled(text, 38, 0).map_err(|_| format!("{text} is not an integer"))?;
    i64::try_from(v).map_err(|_| format!("{text} does not fit a 64-bit integer"))
}

/// The nearest double of `text` (the `double` type is a measurement by declaration).
pub(crate) fn to_f64(text: &str) -> Result<f64, String> {
    parse(text)?;
    let v: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{text} is out of the range of a double"))
    }
}

/// DynamoDB's canonical text of `unscaled × 10^-scale`: no exponent, no trailing fractional
/// zeros, `-` only for non-zero values.
pub(crate) fn format_unscaled(unscaled: i128, scale: i8) -> String {
    let negative = unscaled < 0;
    let mut digits = unscaled.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    if digits.len() <= scale {
        digits = format!("{}{digits}", "0".repeat(scale - digits.len() + 1));
    }
    let (int, frac) = digits.split_at(digits.len() - scale);
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(digits.len() + 2);
    if negative {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// Like [`format_unscaled`] but also for negative scales (`5 × 10^3` → `5000`).
pub(crate) fn format_unscaled_any(unscaled: i128, scale: i8) -> String {
    if scale >= 0 {
        format_unscaled(unscaled, scale)
    } else if unscaled == 0 {
        "0".to_string()
    } else {
        format!(
            "{unscaled}{}",
            "0".repeat(usize::from(scale.unsigned_abs()))
        )
    }
}

/// A DynamoDB `N` text for a double: plain digits when short, else scientific notation.
pub(crate) fn format_f64(v: f64) -> Result<String, String> {
    if !v.is_finite() {
        return Err(format!("{v} cannot be stored in DynamoDB"));
    }
    let plain = format!("{v}");
    if plain.len() <= 24 {
        return Ok(plain);
    }
    Ok(format!("{v:e}").replace('e', "E"))
}

/// Whether two `N` texts denote the same number (`1.50` = `15E-1`).
pub fn numbers_equal(a: &str, b: &str) -> bool {
    matches!((parse(a), parse(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        assert_eq!(to_unscaled("12.5", 10, 2).unwrap(), 1250);
        assert_eq!(to_unscaled("-0.01", 10, 2).unwrap(), -1);
        assert_eq!(to_unscaled("1E+3", 10, 0).unwrap(), 1000);
        assert_eq!(to_unscaled("15E-1", 10, 1).unwrap(), 15);
        assert_eq!(to_unscaled(".5", 3, 1).unwrap(), 5);
        assert_eq!(to_unscaled("7.", 3, 0).unwrap(), 7);
        assert_eq!(to_unscaled("-0", 3, 0).unwrap(), 0);
        assert_eq!(to_unscaled("0.000", 3, 0).unwrap(), 0);
        let max = "9".repeat(38);
        assert_eq!(to_unscaled(&max, 38, 0).unwrap().to_string(), max);
        assert_eq!(
            to_unscaled(&format!("-{max}"), 38, 0).unwrap().to_string(),
            format!("-{max}")
        );
    }

    #[test]
    fn refuses_rounding_and_overflow() {
        assert!(
            to_unscaled("1.005", 10, 2)
                .unwrap_err()
                .contains("fractional")
        );
        assert!(
            to_unscaled("123456", 5, 0)
                .unwrap_err()
                .contains("does not fit")
        );
        assert!(to_unscaled("1E38", 38, 0).is_err());
        assert!(to_unscaled("1E-10000", 38, 0).is_err());
        assert!(to_unscaled("1E99999999999999999999", 38, 0).is_err());
        for bad in [
            "", "-", ".", "1e", "1e+", "abc", "1.2.3", "NaN", "inf", "0x10", " 1", "1_0",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(to_i64("9223372036854775808").is_err());
        assert_eq!(to_i64("-9223372036854775808").unwrap(), i64::MIN);
        assert!(to_f64("1E400").is_err());
    }

    #[test]
    fn dynamodb_limits_are_enforced() {
        let max = format!("9.{}E+125", "9".repeat(37));
        for ok in [
            max.as_str(),
            "1E-130",
            "-1E-130",
            "12345678901234567890123456789012345678",
            "0E+999",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "123456789012345678901234567890123456789",
            "1E+126",
            "1E-131",
            "10E+125",
            "0.1E-130",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // Trailing zeros are not significant digits.
        assert!(parse(&format!("1{}", "0".repeat(100))).is_ok());
        assert!(to_f64("1E200").is_err(), "a double DynamoDB cannot store");
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(format_unscaled(1250, 2), "12.5");
        assert_eq!(format_unscaled(-1, 2), "-0.01");
        assert_eq!(format_unscaled(0, 2), "0");
        assert_eq!(format_unscaled(15, 8), "0.00000015");
        assert!(numbers_equal("1.5E-7", "0.00000015"));
        assert!(numbers_equal("-0", "0"));
        assert!(!numbers_equal("1", "10"));
        assert_eq!(format_f64(0.1).unwrap(), "0.1");
        assert_eq!(format_f64(1e300).unwrap(), "1E300");
    }
}
