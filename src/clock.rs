//! The server clock in Unix seconds (B-GEN-3). A leaf module: it imports nothing from the crate,
//! so any module may use it.
//!
//! This is the raw wall clock. The rule that stored times never decrease lives in the db-writer
//! (`store::writer`), which takes the larger of this and the last time it stored.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now in Unix seconds: 0 before 1970, saturating after 2106.
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn after_2020() {
        // 2020-01-01T00:00:00Z
        assert!(super::unix_now() > 1_577_836_800);
    }
}
