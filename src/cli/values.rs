//! Value parsers for numeric options: each states its range, and a value outside it is
//! refused by name before anything runs.

/// Longest duration any option accepts: ten years, far beyond any run, far below overflow.
pub const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Whole seconds, 1 to [`MAX_SECONDS`].
pub fn whole_seconds() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=MAX_SECONDS)
}

/// A ring size in MiB: a power of two from `min` to 1024.
pub fn ring_mib(min: u32) -> impl Fn(&str) -> Result<u32, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let mib: u32 = text
            .parse()
            .map_err(|_| format!("`{text}` is not a whole number of MiB"))?;
        if !mib.is_power_of_two() || !(min..=1024).contains(&mib) {
            return Err(format!(
                "{mib} MiB: a ring must be a power of two from {min} to 1024 MiB"
            ));
        }
        Ok(mib)
    }
}

/// A point in a recording, in seconds from its start: finite, 0 to [`MAX_SECONDS`].
pub fn recording_offset(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !seconds.is_finite() || !(0.0..=MAX_SECONDS as f64).contains(&seconds) {
        return Err(format!(
            "{text}: give a number of seconds from 0 to {MAX_SECONDS}"
        ));
    }
    Ok(seconds)
}

/// A replay pacing factor: 0 (as fast as possible), or 0.001 to 1000000.
pub fn speed_factor(text: &str) -> Result<f64, String> {
    let speed: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !(speed == 0.0 || (1e-3..=1e6).contains(&speed)) {
        return Err(format!(
            "{text}: the speed is 0 (as fast as possible) or a factor from 0.001 to 1000000"
        ));
    }
    Ok(speed)
}
