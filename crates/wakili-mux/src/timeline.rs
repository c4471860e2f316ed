//! Where each frame goes on the track's timeline: milliseconds from the track's origin.
//!
//! Within one stream (one SSRC, no restart) a frame's time comes from its RTP timestamp,
//! extended across the 32-bit wrap: the sender's capture clock, free of network jitter. A new
//! stream, and a stream that resumes after a pause its RTP timestamps do not account for, are
//! placed by arrival instead, so a gap stays a gap of the same length in the file.
//!
//! Arrival-based placement subtracts the smallest lag seen so far between arrival and RTP
//! time (the network delay floor), so that a resumed stream lines up with where the old one
//! would have been, not with a jittery arrival.

use std::time::{Duration, Instant, SystemTime};

use crate::seq::TsUnwrapper;

/// How far ahead of the arrival clock RTP time may run before it is not believed (a sender
/// that re-randomized its timestamps without a new SSRC).
const MAX_RTP_LEAD_MS: i64 = 5_000;

/// An RTCP sender report's mapping of the sender's wall clock to RTP time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// SSRC of the stream the report describes.
    pub ssrc: u32,
    /// The sender's wall-clock time (NTP timestamp) of the report.
    pub ntp_time: SystemTime,
    /// The RTP timestamp that corresponds to `ntp_time`.
    pub rtp_timestamp: u32,
}

/// Where the track's timeline sits in wall-clock time, to align it with other tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineOrigin {
    /// The server's wall-clock time of timecode 0, from packet arrival: comparable across all
    /// tracks recorded by the same server (within network jitter, tens of milliseconds).
    pub wall_clock: SystemTime,
    /// The publisher's wall-clock time (NTP, from its RTCP sender reports) of timecode 0, once
    /// a sender report for the first stream arrived: exact between the audio and video tracks
    /// of one publisher (lip sync), but offset by that publisher's clock error otherwise.
    pub sender_ntp: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy)]
struct Epoch {
    ts: TsUnwrapper,
    base_ts: u64,
    base_ms: i64,
    /// Smallest `arrival_ms - rtp_ms` seen in this epoch.
    min_lag_ms: i64,
    last_arrival: Instant,
}

/// The timeline of one track.
#[derive(Debug)]
pub(crate) struct Timeline {
    clock_rate: i64,
    anchor: (Instant, SystemTime),
    fixed_origin: Option<Instant>,
    origin: Option<Instant>,
    pause: Duration,
    tolerance_ms: i64,
    epoch: Option<Epoch>,
    restart_pending: bool,
    carry_lag_ms: i64,
    last_ms: Option<u64>,
    first_frame: Option<(u32, u32, i64)>,
    sender_ntp: Option<SystemTime>,
    rebases: u64,
}

/// Milliseconds from `b` to `a`, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> i64 {
    if a >= b {
        i64::try_from(a.duration_since(b).as_millis()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from(b.duration_since(a).as_millis()).unwrap_or(i64::MAX)
    }
}

fn shift(time: SystemTime, ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        time.checked_add(d).unwrap_or(time)
    } else {
        time.checked_sub(d).unwrap_or(time)
    }
}

impl Timeline {
    pub(crate) fn new(
        clock_rate: u32,
        anchor: (Instant, SystemTime),
        fixed_origin: Option<Instant>,
        pause: Duration,
        tolerance: Duration,
    ) -> Self {
        Self {
            clock_rate: i64::from(clock_rate.max(1)),
            anchor,
            fixed_origin,
            origin: None,
            pause,
            tolerance_ms: i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX),
            epoch: None,
            restart_pending: false,
            carry_lag_ms: 0,
            last_ms: None,
            first_frame: None,
            sender_ntp: None,
            rebases: 0,
        }
    }

    /// The next frame starts a new stream (new SSRC, new timestamp base).
    pub(crate) fn restart(&mut self) {
        self.restart_pending = true;
    }

    /// How often the timeline was re-anchored to arrival after its first frame (restarts,
    /// pauses RTP time did not show, implausible timestamp jumps).
    pub(crate) fn rebases(&self) -> u64 {
        self.rebases
    }

    /// Places the frame of stream `ssrc` with RTP timestamp `ts` that arrived at `arrival`:
    /// its timecode in milliseconds from the origin, never below the previous frame's.
    pub(crate) fn place(&mut self, ssrc: u32, ts: u32, arrival: Instant) -> u64 {
        let origin = *self
            .origin
            .get_or_insert(self.fixed_origin.unwrap_or(arrival));
        let arrival_ms = signed_ms(arrival, origin);
        let floor = self
            .last_ms
            .map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let placed = match self.epoch.as_mut().filter(|_| !self.restart_pending) {
            Some(epoch) => {
                let ext = epoch.ts.extend(u64::from(ts));
                let delta = i64::try_from(ext).unwrap_or(i64::MAX)
                    - i64::try_from(epoch.base_ts).unwrap_or(i64::MAX);
                let rtp_ms = epoch.base_ms + delta.saturating_mul(1000) / self.clock_rate;
                let wall_ms = arrival_ms - epoch.min_lag_ms;
                let paused = arrival.saturating_duration_since(epoch.last_arrival) >= self.pause;
                let believable = rtp_ms >= floor
                    && rtp_ms <= wall_ms + MAX_RTP_LEAD_MS
                    && !(paused && wall_ms > rtp_ms + self.tolerance_ms);
                if believable {
                    epoch.min_lag_ms = epoch.min_lag_ms.min(arrival_ms - rtp_ms);
                    epoch.last_arrival = arrival;
                    Some(rtp_ms)
                } else {
                    None
                }
            }
            None => None,
        };
        let ms = match placed {
            Some(ms) => ms,
            None => {
                if self.epoch.is_some() {
                    self.rebases += 1;
                    self.carry_lag_ms = self.epoch.map_or(self.carry_lag_ms, |e| e.min_lag_ms);
                }
                self.restart_pending = false;
                let base_ms = if self.last_ms.is_some() {
                    (arrival_ms - self.carry_lag_ms).max(floor + 1)
                } else {
                    arrival_ms.max(0)
                };
                let mut unwrap = TsUnwrapper::default();
                let base_ts = unwrap.extend(u64::from(ts));
                self.epoch = Some(Epoch {
                    ts: unwrap,
                    base_ts,
                    base_ms,
                    min_lag_ms: arrival_ms - base_ms,
                    last_arrival: arrival,
                });
                base_ms
            }
        };
        let ms = u64::try_from(ms).unwrap_or(0);
        self.last_ms = Some(ms);
        if self.first_frame.is_none() {
            self.first_frame = Some((ssrc, ts, i64::try_from(ms).unwrap_or(0)));
        }
        ms
    }

    /// Takes a sender report; the first one for the first stream fixes
    /// [`TimelineOrigin::sender_ntp`].
    pub(crate) fn sender_report(&mut self, report: SenderReport) {
        if self.sender_ntp.is_some() {
            return;
        }
        let Some((ssrc, ts, ms)) = self.first_frame else {
            return;
        };
        if report.ssrc != ssrc {
            return;
        }
        // Signed distance in RTP ticks from the report to the first frame, across the wrap.
        let ticks = i64::from(ts.wrapping_sub(report.rtp_timestamp) as i32);
        let first_frame_ntp = shift(report.ntp_time, ticks * 1000 / self.clock_rate);
        self.sender_ntp = Some(shift(first_frame_ntp, -ms));
    }

    /// The origin in wall-clock terms, once the first frame is placed.
    pub(crate) fn origin(&self) -> Option<TimelineOrigin> {
        let origin = self.origin?;
        let (at, wall) = self.anchor;
        Some(TimelineOrigin {
            wall_clock: shift(wall, signed_ms(origin, at)),
            sender_ntp: self.sender_ntp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline(t0: Instant) -> Timeline {
        Timeline::new(
            90_000,
            (
                t0,
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ),
            None,
            Duration::from_secs(1),
            Duration::from_millis(250),
        )
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn frames_are_placed_by_rtp_time_not_by_jittery_arrival() {
        let t0 = Instant::now();
        let mut tl = timeline(t0);
        assert_eq!(tl.place(1, 1000, at(t0, 0)), 0);
        assert_eq!(tl.place(1, 1000 + 3000, at(t0, 80)), 33);
        assert_eq!(tl.place(1, 1000 + 6000, at(t0, 81)), 66);
        assert_eq!(tl.rebases(), 0);
    }

    #[test]
    fn rtp_time_continues_across_the_32_bit_wrap() {
        let t0 = Instant::now();
        let mut tl = timeline(t0);
        let start = u32::MAX - 4499;
        assert_eq!(tl.place(1, start, at(t0, 0)), 0);
        assert_eq!(tl.place(1, start.wrapping_add(9000), at(t0, 100)), 100);
        assert_eq!(tl.place(1, start.wrapping_add(18000), at(t0, 200)), 200);
    }

    #[test]
    fn a_restart_is_placed_by_arrival_so_the_gap_stays() {
        let t0 = Instant::now();
        let mut tl = timeline(t0);
        tl.place(1, 5000, at(t0, 0));
        tl.place(1, 5000 + 90_000, at(t0, 1000));
        tl.restart();
        let ms = tl.place(2, 123_456_789, at(t0, 4000));
        assert_eq!(ms, 4000);
        assert_eq!(tl.place(2, 123_456_789 + 9000, at(t0, 4100)), 4100);
        assert_eq!(tl.rebases(), 1);
    }

    #[test]
    fn a_pause_that_rtp_time_does_not_show_is_taken_from_arrival() {
        let t0 = Instant::now();
        let mut tl = timeline(t0);
        tl.place(1, 0, at(t0, 0));
        tl.place(1, 9000, at(t0, 100));
        // Three seconds without packets, then RTP time carries on as if nothing happened.
        assert_eq!(tl.place(1, 18000, at(t0, 3100)), 3100);
        // A pause RTP time does show is left to RTP time.
        assert_eq!(tl.place(1, 18000 + 180_000, at(t0, 5110)), 5100);
    }

    #[test]
    fn a_timestamp_that_jumps_back_never_makes_time_go_back() {
        let t0 = Instant::now();
        let mut tl = timeline(t0);
        tl.place(1, 900_000, at(t0, 0));
        tl.place(1, 909_000, at(t0, 100));
        let ms = tl.place(1, 0, at(t0, 133));
        assert!(ms > 100, "{ms}");
    }

    #[test]
    fn the_sender_clock_of_the_origin_comes_from_the_first_sender_report() {
        let t0 = Instant::now();
        let mut tl = timeline(t0);
        tl.place(7, 90_000, at(t0, 0));
        let ntp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        tl.sender_report(SenderReport {
            ssrc: 7,
            ntp_time: ntp,
            rtp_timestamp: 180_000,
        });
        let origin = tl.origin().expect("placed");
        assert_eq!(origin.sender_ntp, Some(ntp - Duration::from_secs(1)));
        assert_eq!(
            origin.wall_clock,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }
}
