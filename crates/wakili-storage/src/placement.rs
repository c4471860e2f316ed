//! Where copies of a chunk belong. Sans-IO.
//!
//! Every chunk should live on the first `replicas` providers of the configured order (the
//! "wanted" ones). While one of those cannot be written, another provider stands in, so a chunk
//! still has `replicas` copies; when the wanted provider comes back it is filled too.

/// Providers a chunk held by `holders` should be copied to now, in order. `order` is every
/// provider in configuration order; `available` says which can be written at the moment.
pub fn copy_targets(
    holders: &[String],
    order: &[String],
    replicas: usize,
    available: impl Fn(&str) -> bool,
) -> Vec<String> {
    let missing = |name: &&String| !holders.contains(name) && available(name);
    let mut targets: Vec<String> = order
        .iter()
        .take(replicas)
        .filter(missing)
        .cloned()
        .collect();
    let copies = holders.iter().filter(|h| order.contains(h)).count() + targets.len();
    let stand_ins = order
        .iter()
        .skip(replicas)
        .filter(missing)
        .take(replicas.saturating_sub(copies))
        .cloned();
    targets.extend(stand_ins);
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_chunk_goes_to_the_wanted_providers_it_lacks() {
        let order = names(&["s3", "r2", "disk"]);
        assert_eq!(
            copy_targets(&names(&["s3"]), &order, 2, |_| true),
            names(&["r2"])
        );
        assert!(copy_targets(&names(&["r2", "s3"]), &order, 2, |_| true).is_empty());
        assert_eq!(
            copy_targets(&names(&["disk"]), &order, 3, |_| true),
            names(&["s3", "r2"])
        );
    }

    #[test]
    fn a_stand_in_keeps_the_replica_count_while_a_wanted_provider_is_down() {
        let order = names(&["s3", "r2", "disk"]);
        let s3_down = |name: &str| name != "s3";
        // Written to r2 while s3 was down: disk stands in for s3.
        assert_eq!(
            copy_targets(&names(&["r2"]), &order, 2, s3_down),
            names(&["disk"])
        );
        // Already two copies: nothing to do until s3 is back…
        assert!(copy_targets(&names(&["r2", "disk"]), &order, 2, s3_down).is_empty());
        // …then s3 is filled (the stand-in copy stays).
        assert_eq!(
            copy_targets(&names(&["r2", "disk"]), &order, 2, |_| true),
            names(&["s3"])
        );
    }

    #[test]
    fn nothing_is_copied_where_nothing_can_be_written() {
        let order = names(&["s3", "r2"]);
        assert!(copy_targets(&names(&["s3"]), &order, 2, |_| false).is_empty());
        // A holder that is no longer configured does not count as a copy.
        assert_eq!(
            copy_targets(&names(&["old"]), &order, 2, |_| true),
            names(&["s3", "r2"])
        );
    }
}
