//! The ids of stored things.

use rand::RngCore;

/// An identifier with a readable prefix (`usr_…`, `run_…`): the creation
/// time in milliseconds (12 hex digits), then 96 random bits.
///
/// Time first, because ids are primary keys: new rows land at the end of
/// the key's index, on the same few pages (docs/store-decisions.md).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let millis = super::now_millis() & 0xffff_ffff_ffff;
    format!("{prefix}_{millis:012x}{}", hex::encode(bytes))
}

/// The creation time (Unix ms) an id made by [`new_id`] carries.
pub fn id_time(id: &str) -> Option<i64> {
    let (_, rest) = id.split_once('_')?;
    i64::from_str_radix(rest.get(..12)?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::new_id;

    #[test]
    fn ids_sort_by_creation_time_and_never_repeat() {
        let first = new_id("run");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_id("run");
        assert!(first < later, "{first} then {later}");
        assert_eq!(first.len(), "run_".len() + 12 + 24, "{first}");
        let many: std::collections::HashSet<String> = (0..10_000).map(|_| new_id("run")).collect();
        assert_eq!(many.len(), 10_000);
    }
}
