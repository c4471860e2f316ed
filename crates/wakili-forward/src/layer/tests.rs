use super::*;

fn all_active(now: Millis) -> LayerActivity {
    let mut activity = LayerActivity::new();
    for rid in Rid::ALL {
        activity.on_packet(rid, now);
    }
    activity
}

/// A selector settled on `rid` with all layers sent and an estimate that fits it.
fn settled_on(rid: Rid, config: &LayerConfig) -> LayerSelector {
    let mut selector = LayerSelector::new();
    selector.set_estimate(config.bitrates.get(rid) + 1, Millis(0), config);
    assert_eq!(
        selector.decide(Millis(0), &all_active(Millis(0)), config),
        Some(rid)
    );
    selector
}

#[test]
fn the_first_choice_is_the_highest_layer_the_estimate_covers() {
    let config = LayerConfig::default();
    let activity = all_active(Millis(0));
    let mut none = LayerSelector::new();
    assert_eq!(none.decide(Millis(0), &activity, &config), Some(Rid::Q));
    let mut rich = LayerSelector::new();
    rich.set_estimate(2_000_000, Millis(0), &config);
    assert_eq!(rich.decide(Millis(0), &activity, &config), Some(Rid::F));
    let mut middling = LayerSelector::new();
    middling.set_estimate(700_000, Millis(0), &config);
    assert_eq!(middling.decide(Millis(0), &activity, &config), Some(Rid::H));
}

#[test]
fn the_first_estimate_is_a_first_choice_not_a_step_up() {
    let config = LayerConfig::default();
    let mut selector = LayerSelector::new();
    let now = Millis(0);
    assert_eq!(
        selector.decide(now, &all_active(now), &config),
        Some(Rid::Q)
    );
    // 60 ms later the first estimate arrives: straight to f, no 3 s hold.
    let now = Millis(60);
    selector.set_estimate(5_000_000, now, &config);
    assert_eq!(
        selector.decide(now, &all_active(now), &config),
        Some(Rid::F)
    );
}

#[test]
fn a_falling_estimate_steps_down_at_once_to_the_layer_that_fits() {
    let config = LayerConfig::default();
    let mut selector = settled_on(Rid::F, &config);
    let now = Millis(100);
    let activity = all_active(now);
    // 1.4 Mbit/s is within the 10 % tolerance of f's 1.5 Mbit/s: stay.
    selector.set_estimate(1_400_000, now, &config);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::F));
    // 400 kbit/s is under f and h (less tolerance): straight to q, no waiting.
    selector.set_estimate(400_000, now, &config);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::Q));
    // Even under q's bitrate, q is kept.
    selector.set_estimate(50_000, now, &config);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::Q));
}

#[test]
fn stepping_up_needs_a_surplus_sustained_for_the_hold_time() {
    let config = LayerConfig::default();
    let mut selector = settled_on(Rid::Q, &config);
    // 650 kbit/s > 500k × 1.2: h becomes possible, but only after 3 s of it.
    for ms in (0..3_000).step_by(500) {
        let now = Millis(1_000 + ms);
        selector.set_estimate(650_000, now, &config);
        assert_eq!(
            selector.decide(now, &all_active(now), &config),
            Some(Rid::Q),
            "{ms} ms into the surplus"
        );
    }
    let now = Millis(4_000);
    selector.set_estimate(650_000, now, &config);
    assert_eq!(
        selector.decide(now, &all_active(now), &config),
        Some(Rid::H)
    );
}

#[test]
fn a_noisy_estimate_does_not_make_layers_flap() {
    let config = LayerConfig::default();
    let mut selector = settled_on(Rid::H, &config);
    // Alternating 2 Mbit/s and 600 kbit/s: f's surplus never lasts, h always fits.
    for i in 1..=40u64 {
        let now = Millis(i * 500);
        let bps = if i % 2 == 0 { 2_000_000 } else { 600_000 };
        selector.set_estimate(bps, now, &config);
        assert_eq!(
            selector.decide(now, &all_active(now), &config),
            Some(Rid::H),
            "sample {i}"
        );
    }
}

#[test]
fn the_recommendation_caps_the_layer() {
    let config = LayerConfig::default();
    let mut selector = settled_on(Rid::F, &config);
    let now = Millis(10);
    let activity = all_active(now);
    selector.set_cap(Quality::Medium);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::H));
    selector.set_cap(Quality::Low);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::Q));
    // Lifting the cap is a step up like any other: it waits for the hold time.
    selector.set_cap(Quality::High);
    selector.set_estimate(5_000_000, now, &config);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::Q));
    let later = Millis(3_010);
    assert_eq!(
        selector.decide(later, &all_active(later), &config),
        Some(Rid::F)
    );
}

#[test]
fn a_forced_layer_overrides_the_cap_but_not_pause() {
    let config = LayerConfig::default();
    let mut selector = LayerSelector::new();
    selector.set_estimate(2_000_000, Millis(0), &config);
    let now = Millis(10);
    let activity = all_active(now);
    selector.set_cap(Quality::Low);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::Q));
    selector.force(Some(Rid::F));
    // The estimate (2M > 1.5M × 1.2) has had room for f since 0: f, the cap notwithstanding.
    let later = Millis(3_010);
    assert_eq!(
        selector.decide(later, &all_active(later), &config),
        Some(Rid::F)
    );
    selector.force(Some(Rid::H));
    assert_eq!(
        selector.decide(later, &all_active(later), &config),
        Some(Rid::H)
    );
    selector.set_paused(true);
    assert_eq!(selector.decide(later, &activity, &config), None);
    selector.set_paused(false);
    selector.force(None);
    // Back to the rules: the cap says q.
    assert_eq!(
        selector.decide(later, &all_active(later), &config),
        Some(Rid::Q)
    );
}

#[test]
fn a_forced_layer_above_the_estimate_gives_the_best_layer_that_fits() {
    let config = LayerConfig::default();
    let mut selector = LayerSelector::new();
    // 1 Mbit/s covers h, not f.
    selector.set_estimate(1_000_000, Millis(0), &config);
    selector.force(Some(Rid::F));
    let activity = all_active(Millis(0));
    assert_eq!(selector.decide(Millis(0), &activity, &config), Some(Rid::H));
    // A falling estimate takes it further down at once, as without a forced layer.
    selector.set_estimate(300_000, Millis(100), &config);
    assert_eq!(
        selector.decide(Millis(100), &all_active(Millis(100)), &config),
        Some(Rid::Q)
    );
    // Without an estimate (estimation off) the forced layer is taken as it is, up or down.
    let mut blind = LayerSelector::new();
    assert_eq!(blind.decide(Millis(0), &activity, &config), Some(Rid::Q));
    blind.force(Some(Rid::F));
    assert_eq!(blind.decide(Millis(0), &activity, &config), Some(Rid::F));
    blind.force(Some(Rid::H));
    assert_eq!(blind.decide(Millis(0), &activity, &config), Some(Rid::H));
}

#[test]
fn a_forced_layer_is_reached_once_the_estimate_holds_it() {
    let config = LayerConfig::default();
    let mut selector = settled_on(Rid::Q, &config);
    selector.force(Some(Rid::F));
    // 2 Mbit/s > 1.5M × 1.2: f after the hold time, not before, and never above it.
    for ms in (0..3_000).step_by(500) {
        let now = Millis(1_000 + ms);
        selector.set_estimate(2_000_000, now, &config);
        assert_eq!(
            selector.decide(now, &all_active(now), &config),
            Some(Rid::Q),
            "{ms} ms into the surplus"
        );
    }
    let now = Millis(4_000);
    assert_eq!(
        selector.decide(now, &all_active(now), &config),
        Some(Rid::F)
    );
    selector.force(Some(Rid::H));
    selector.set_estimate(10_000_000, now, &config);
    assert_eq!(
        selector.decide(now, &all_active(now), &config),
        Some(Rid::H)
    );
}

#[test]
fn a_stopped_layer_is_not_chosen() {
    let config = LayerConfig::default();
    let mut selector = settled_on(Rid::F, &config);
    // f's last packet was at 0; q and h keep coming.
    let mut activity = all_active(Millis(0));
    let now = Millis(1_000);
    activity.on_packet(Rid::Q, now);
    activity.on_packet(Rid::H, now);
    selector.set_estimate(5_000_000, now, &config);
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::H));
    // Forcing f cannot bring it back either: the closest sent layer below it wins.
    selector.force(Some(Rid::F));
    assert_eq!(selector.decide(now, &activity, &config), Some(Rid::H));
    // When f resumes, the long-standing surplus takes the subscriber straight back up.
    selector.force(None);
    activity.on_packet(Rid::F, Millis(4_000));
    let later = Millis(4_000);
    activity.on_packet(Rid::H, later);
    activity.on_packet(Rid::Q, later);
    assert_eq!(selector.decide(later, &activity, &config), Some(Rid::F));
}

#[test]
fn nothing_is_chosen_when_paused_or_when_no_allowed_layer_is_sent() {
    let config = LayerConfig::default();
    let mut selector = settled_on(Rid::H, &config);
    selector.set_paused(true);
    assert_eq!(
        selector.decide(Millis(0), &all_active(Millis(0)), &config),
        None
    );
    selector.set_paused(false);
    // Capped to q while only h and f are sent: nothing, rather than breaking the cap.
    let mut activity = LayerActivity::new();
    activity.on_packet(Rid::H, Millis(0));
    activity.on_packet(Rid::F, Millis(0));
    selector.set_cap(Quality::Low);
    assert_eq!(selector.decide(Millis(0), &activity, &config), None);
    assert_eq!(
        LayerSelector::new().decide(Millis(0), &LayerActivity::new(), &config),
        None
    );
}

#[test]
fn rids_and_profiles_round_trip() {
    for rid in Rid::ALL {
        assert_eq!(Rid::parse(rid.as_str()), Some(rid));
    }
    assert_eq!(Rid::parse("x"), None);
    assert_eq!(Quality::from_profile("medium").highest_rid(), Rid::H);
    assert_eq!(Quality::from_profile("low").highest_rid(), Rid::Q);
    assert_eq!(Quality::from_profile("whatever"), Quality::High);
}
