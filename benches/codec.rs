//! Placeholder replaced by the codec benches (issue #3).
fn main() {}
