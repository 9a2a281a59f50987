//! Render groups: viewers whose rendering would be identical share one composite, one encoder
//! and one broadcast. This table decides who is in which group and when groups come and go;
//! the frame path only reads it.
//!
//! The rules it keeps:
//! - one group per distinct key; a viewer is always in exactly one group;
//! - a group is created on demand (the caller starts its encoder, whose first frame is an IDR)
//!   and removed once it has been empty for the grace period;
//! - a viewer whose key changes keeps receiving its current group until the target group emits
//!   a keyframe, so its stream switches on an IDR with no gap and no black frame.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A viewer, as numbered by the delivery layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ViewerId(pub u64);

/// A render group. Ids are never reused, so a stale id can never name a newer group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupId(pub u64);

/// How long an empty group is kept before it is removed, unless configured otherwise. A viewer
/// reconnecting or zooming back within this time finds its group (and encoder) still warm.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Result of [`GroupTable::join`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinOutcome {
    /// The group the viewer is now in.
    pub group: GroupId,
    /// True when the group is new: the caller must start its composite and encoder.
    pub created: bool,
}

/// Result of [`GroupTable::request_key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// The viewer's current group already has that key; any pending move was cancelled.
    Unchanged { group: GroupId },
    /// The viewer stays in `from` until `to` emits its next keyframe (see
    /// [`GroupTable::on_keyframe`]). When `created`, the caller must start `to`'s encoder; its
    /// first frame is an IDR, so the move completes on the next rendered frame.
    Pending {
        from: GroupId,
        to: GroupId,
        created: bool,
    },
}

/// A move committed by [`GroupTable::on_keyframe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// The viewer that moved.
    pub viewer: ViewerId,
    /// The group it received until this keyframe.
    pub from: GroupId,
    /// The group it receives from this keyframe on.
    pub to: GroupId,
}

/// A call that does not fit the table's state; the table is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("viewer {0:?} is already in a group")]
    AlreadyJoined(ViewerId),
    #[error("viewer {0:?} is not in any group")]
    UnknownViewer(ViewerId),
}

#[derive(Debug)]
struct Group<K> {
    key: K,
    members: BTreeSet<ViewerId>,
    /// Viewers waiting for this group's next keyframe; still members of their old group.
    incoming: BTreeSet<ViewerId>,
    /// When the group last became empty (no members and nobody incoming).
    empty_since: Option<Duration>,
}

impl<K> Group<K> {
    fn is_unused(&self) -> bool {
        self.members.is_empty() && self.incoming.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct Seat {
    group: GroupId,
    pending: Option<GroupId>,
}

/// Every render group and every viewer's place in one. Generic over the render key `K` (zone
/// overlays, personal items, ROI, rendition), which it only compares and hashes.
#[derive(Debug)]
pub struct GroupTable<K> {
    grace: Duration,
    next_id: u64,
    groups: BTreeMap<GroupId, Group<K>>,
    by_key: HashMap<K, GroupId>,
    seats: HashMap<ViewerId, Seat>,
}

impl<K: Clone + Eq + Hash + Debug> Default for GroupTable<K> {
    fn default() -> Self {
        Self::new(DEFAULT_GRACE)
    }
}

impl<K: Clone + Eq + Hash + Debug> GroupTable<K> {
    /// An empty table whose empty groups are removed after `grace`.
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            next_id: 0,
            groups: BTreeMap::new(),
            by_key: HashMap::new(),
            seats: HashMap::new(),
        }
    }

    /// Puts a new viewer into the group for `key`, creating it when none exists. An existing
    /// group (even one in its grace period) is joined at once: a new subscriber starts at the
    /// group's newest GOP, which begins with an IDR.
    pub fn join(&mut self, viewer: ViewerId, key: K) -> Result<JoinOutcome, GroupError> {
        if self.seats.contains_key(&viewer) {
            return Err(GroupError::AlreadyJoined(viewer));
        }
        let (group, created) = self.group_for(key);
        let g = self.group_mut(group);
        g.members.insert(viewer);
        g.empty_since = None;
        self.seats.insert(
            viewer,
            Seat {
                group,
                pending: None,
            },
        );
        Ok(JoinOutcome { group, created })
    }

    /// Removes a viewer (and any move it had pending). Returns the group it left; that group
    /// starts its grace period if it is now empty.
    pub fn leave(&mut self, viewer: ViewerId, now: Duration) -> Result<GroupId, GroupError> {
        let seat = self
            .seats
            .remove(&viewer)
            .ok_or(GroupError::UnknownViewer(viewer))?;
        if let Some(target) = seat.pending {
            let g = self.group_mut(target);
            g.incoming.remove(&viewer);
            Self::mark_if_unused(g, now);
        }
        let g = self.group_mut(seat.group);
        g.members.remove(&viewer);
        Self::mark_if_unused(g, now);
        Ok(seat.group)
    }

    /// Asks to move a viewer to the group for `new_key`. The viewer stays where it is until the
    /// target's next keyframe; a later request replaces an earlier pending one, and asking for
    /// the current key cancels it.
    pub fn request_key(
        &mut self,
        viewer: ViewerId,
        new_key: K,
        now: Duration,
    ) -> Result<KeyChange, GroupError> {
        let seat = *self
            .seats
            .get(&viewer)
            .ok_or(GroupError::UnknownViewer(viewer))?;
        let current_key_matches = self.group_ref(seat.group).key == new_key;
        if current_key_matches
            || seat
                .pending
                .is_some_and(|p| self.group_ref(p).key != new_key)
        {
            if let Some(old_target) = seat.pending {
                let g = self.group_mut(old_target);
                g.incoming.remove(&viewer);
                Self::mark_if_unused(g, now);
                self.seat_mut(viewer).pending = None;
            }
        }
        if current_key_matches {
            return Ok(KeyChange::Unchanged { group: seat.group });
        }
        let (to, created) = self.group_for(new_key);
        let g = self.group_mut(to);
        g.incoming.insert(viewer);
        g.empty_since = None;
        self.seat_mut(viewer).pending = Some(to);
        Ok(KeyChange::Pending {
            from: seat.group,
            to,
            created,
        })
    }

    /// The group `group` emitted a keyframe: every viewer waiting for it moves in now. Returns
    /// the moves, so the caller can switch each viewer's subscription on this very frame. An
    /// unknown (already removed) group moves nobody.
    pub fn on_keyframe(&mut self, group: GroupId, now: Duration) -> Vec<Move> {
        let incoming = match self.groups.get_mut(&group) {
            Some(g) => std::mem::take(&mut g.incoming),
            None => return Vec::new(),
        };
        let mut moves = Vec::with_capacity(incoming.len());
        for viewer in incoming {
            let seat = self.seat_mut(viewer);
            let from = seat.group;
            seat.group = group;
            seat.pending = None;
            let old = self.group_mut(from);
            old.members.remove(&viewer);
            Self::mark_if_unused(old, now);
            self.group_mut(group).members.insert(viewer);
            moves.push(Move {
                viewer,
                from,
                to: group,
            });
        }
        moves
    }

    /// Removes the groups that have been empty for at least the grace period and returns them,
    /// so the caller can stop their encoders and broadcasts.
    pub fn expire(&mut self, now: Duration) -> Vec<GroupId> {
        let grace = self.grace;
        let expired: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(_, g)| {
                g.empty_since
                    .is_some_and(|t| now.saturating_sub(t) >= grace)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            if let Some(g) = self.groups.remove(id) {
                self.by_key.remove(&g.key);
            }
        }
        expired
    }

    /// The group a viewer is currently receiving.
    pub fn group_of(&self, viewer: ViewerId) -> Option<GroupId> {
        self.seats.get(&viewer).map(|s| s.group)
    }

    /// The group a viewer will move to at that group's next keyframe, if any.
    pub fn pending_of(&self, viewer: ViewerId) -> Option<GroupId> {
        self.seats.get(&viewer).and_then(|s| s.pending)
    }

    /// Every live group (including empty ones in their grace period), in id order.
    pub fn groups(&self) -> Vec<GroupId> {
        self.groups.keys().copied().collect()
    }

    /// Groups that currently have members or viewers waiting to move in: those the frame path
    /// must render this frame.
    pub fn active_groups(&self) -> Vec<GroupId> {
        self.groups
            .iter()
            .filter(|(_, g)| !g.is_unused())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Members of a group (viewers receiving it now), in id order; empty for an unknown group.
    pub fn members(&self, group: GroupId) -> Vec<ViewerId> {
        self.groups
            .get(&group)
            .map(|g| g.members.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Viewers waiting for this group's next keyframe; the caller may force an IDR to speed
    /// their move up.
    pub fn incoming(&self, group: GroupId) -> Vec<ViewerId> {
        self.groups
            .get(&group)
            .map(|g| g.incoming.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The render key of a group.
    pub fn key_of(&self, group: GroupId) -> Option<&K> {
        self.groups.get(&group).map(|g| &g.key)
    }

    /// The group that renders `key`, if one is live.
    pub fn group_for_key(&self, key: &K) -> Option<GroupId> {
        self.by_key.get(key).copied()
    }

    /// Number of viewers in the table.
    pub fn viewer_count(&self) -> usize {
        self.seats.len()
    }

    /// The group for `key`, created when missing. Returns whether it was created.
    fn group_for(&mut self, key: K) -> (GroupId, bool) {
        if let Some(id) = self.by_key.get(&key) {
            return (*id, false);
        }
        let id = GroupId(self.next_id);
        self.next_id += 1;
        self.by_key.insert(key.clone(), id);
        self.groups.insert(
            id,
            Group {
                key,
                members: BTreeSet::new(),
                incoming: BTreeSet::new(),
                empty_since: None,
            },
        );
        (id, true)
    }

    fn mark_if_unused(g: &mut Group<K>, now: Duration) {
        if g.is_unused() && g.empty_since.is_none() {
            g.empty_since = Some(now);
        }
    }

    fn group_ref(&self, id: GroupId) -> &Group<K> {
        self.groups
            .get(&id)
            .expect("a seated viewer's groups are live: groups with viewers never expire")
    }

    fn group_mut(&mut self, id: GroupId) -> &mut Group<K> {
        self.groups
            .get_mut(&id)
            .expect("a seated viewer's groups are live: groups with viewers never expire")
    }

    fn seat_mut(&mut self, viewer: ViewerId) -> &mut Seat {
        self.seats
            .get_mut(&viewer)
            .expect("viewers listed in a group are seated: leave removes both together")
    }
}

/// Puts watched groups `(group, viewers)` in the order one frame renders them: most viewers
/// first, so under load the frames most people wait for are out soonest. Equally watched groups
/// take turns at the front, frame by frame (`frame` is the frame's sequence number): the group
/// rendered last finishes its encode last, and a fixed order would give one rendering's viewers
/// the worst latency of every frame.
pub fn render_order(watched: &mut [(GroupId, usize)], frame: u64) {
    watched.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    for equals in watched.chunk_by_mut(|a, b| a.1 == b.1) {
        let turn = (frame % equals.len() as u64) as usize;
        equals.rotate_left(turn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const GRACE: Duration = Duration::from_secs(2);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn same_key_shares_a_group_and_new_key_creates_one() {
        let mut t = GroupTable::new(GRACE);
        let a = t.join(ViewerId(1), "mall").unwrap();
        let b = t.join(ViewerId(2), "mall").unwrap();
        let c = t.join(ViewerId(3), "default").unwrap();
        assert!(a.created && !b.created && c.created);
        assert_eq!(a.group, b.group);
        assert_ne!(a.group, c.group);
        assert_eq!(t.members(a.group), vec![ViewerId(1), ViewerId(2)]);
        assert_eq!(t.key_of(c.group), Some(&"default"));
        assert_eq!(
            t.join(ViewerId(1), "default"),
            Err(GroupError::AlreadyJoined(ViewerId(1)))
        );
    }

    #[test]
    fn two_zones_six_viewers_a_coupon_and_a_zoom_make_four_groups() {
        // The render key of the acceptance run: zone, personal coupon, zoom.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        struct Key {
            zone: &'static str,
            coupon: Option<&'static str>,
            zoom: Option<(u32, u32, u32, u32)>,
        }
        let plain = |zone| Key {
            zone,
            coupon: None,
            zoom: None,
        };
        let mut t = GroupTable::new(GRACE);
        let keys = [
            plain("yintai-mall"),
            plain("yintai-mall"),
            Key {
                coupon: Some("Li Wei"),
                ..plain("yintai-mall")
            },
            plain("default"),
            plain("default"),
            Key {
                zoom: Some((960, 540, 1920, 1080)),
                ..plain("default")
            },
        ];
        for (i, key) in keys.into_iter().enumerate() {
            t.join(ViewerId(i as u64), key).unwrap();
        }
        assert_eq!(t.groups().len(), 4);
        assert_eq!(t.group_of(ViewerId(0)), t.group_of(ViewerId(1)));
        assert_eq!(t.group_of(ViewerId(3)), t.group_of(ViewerId(4)));
        assert_ne!(t.group_of(ViewerId(0)), t.group_of(ViewerId(2)));
        assert_ne!(t.group_of(ViewerId(3)), t.group_of(ViewerId(5)));
        // A MEC notification moves viewer 4 into the mall: it joins the mall's plain group at
        // that group's next keyframe.
        let to = t.group_of(ViewerId(0)).unwrap();
        assert_eq!(
            t.request_key(ViewerId(4), plain("yintai-mall"), ms(0))
                .unwrap(),
            KeyChange::Pending {
                from: t.group_of(ViewerId(3)).unwrap(),
                to,
                created: false
            }
        );
        t.on_keyframe(to, ms(1_000));
        assert_eq!(t.members(to), vec![ViewerId(0), ViewerId(1), ViewerId(4)]);
    }

    #[test]
    fn a_key_change_waits_for_the_target_keyframe() {
        let mut t = GroupTable::new(GRACE);
        let mall = t.join(ViewerId(1), "mall").unwrap().group;
        let change = t.request_key(ViewerId(1), "zoomed", ms(10)).unwrap();
        let KeyChange::Pending { from, to, created } = change else {
            panic!("expected a pending move, got {change:?}");
        };
        assert_eq!((from, created), (mall, true));
        // Until the keyframe the viewer keeps receiving the mall group, which stays alive.
        assert_eq!(t.group_of(ViewerId(1)), Some(mall));
        assert!(t.expire(ms(10_000)).is_empty());
        assert_eq!(
            t.on_keyframe(to, ms(20)),
            vec![Move {
                viewer: ViewerId(1),
                from: mall,
                to
            }]
        );
        assert_eq!(t.group_of(ViewerId(1)), Some(to));
        // The old group is empty now and goes after the grace period, not before.
        assert!(t.expire(ms(20) + GRACE - ms(1)).is_empty());
        assert_eq!(t.expire(ms(20) + GRACE), vec![mall]);
        assert_eq!(t.group_for_key(&"mall"), None);
    }

    #[test]
    fn asking_for_the_current_key_cancels_a_pending_move() {
        let mut t = GroupTable::new(GRACE);
        let mall = t.join(ViewerId(1), "mall").unwrap().group;
        let KeyChange::Pending { to, .. } = t.request_key(ViewerId(1), "zoomed", ms(1)).unwrap()
        else {
            panic!("expected a pending move");
        };
        assert_eq!(
            t.request_key(ViewerId(1), "mall", ms(2)).unwrap(),
            KeyChange::Unchanged { group: mall }
        );
        assert_eq!(t.pending_of(ViewerId(1)), None);
        assert!(t.on_keyframe(to, ms(3)).is_empty());
        assert_eq!(t.expire(ms(2) + GRACE), vec![to]);
    }

    #[test]
    fn a_group_in_grace_is_revived_by_a_joiner() {
        let mut t = GroupTable::new(GRACE);
        let g = t.join(ViewerId(1), "mall").unwrap().group;
        t.leave(ViewerId(1), ms(100)).unwrap();
        let again = t.join(ViewerId(2), "mall").unwrap();
        assert_eq!(
            again,
            JoinOutcome {
                group: g,
                created: false
            }
        );
        assert!(t.expire(ms(100) + GRACE * 10).is_empty());
        assert_eq!(
            t.leave(ViewerId(1), ms(0)),
            Err(GroupError::UnknownViewer(ViewerId(1)))
        );
    }

    #[test]
    fn a_keyframe_of_an_unknown_group_moves_nobody() {
        let mut t: GroupTable<u8> = GroupTable::new(GRACE);
        assert!(t.on_keyframe(GroupId(42), ms(0)).is_empty());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Join(u64, u8),
        Leave(u64),
        Request(u64, u8),
        Keyframe(u64),
        Expire,
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..8u64, 0..4u8).prop_map(|(v, k)| Op::Join(v, k)),
            (0..8u64).prop_map(Op::Leave),
            (0..8u64, 0..4u8).prop_map(|(v, k)| Op::Request(v, k)),
            (0..12u64).prop_map(Op::Keyframe),
            Just(Op::Expire),
            (0..3_000u64).prop_map(Op::Wait),
        ]
    }

    /// Checks the table's invariants; `present` is the set of viewers the test has seated.
    fn check(t: &GroupTable<u8>, present: &HashSet<ViewerId>, now: Duration) {
        // Every viewer is in exactly one group.
        for v in present {
            let homes: Vec<_> = t
                .groups()
                .into_iter()
                .filter(|g| t.members(*g).contains(v))
                .collect();
            assert_eq!(homes.len(), 1, "{v:?} is in {homes:?}");
            assert_eq!(t.group_of(*v), Some(homes[0]));
            // A pending move never leaves a viewer without a group: its target is live too.
            if let Some(p) = t.pending_of(*v) {
                assert!(t.key_of(p).is_some());
                assert!(t.incoming(p).contains(v));
            }
        }
        let seated: usize = t.groups().iter().map(|g| t.members(*g).len()).sum();
        assert_eq!(seated, present.len());
        // Groups with members correspond one to one with the distinct current keys.
        let keys: HashSet<u8> = present
            .iter()
            .map(|v| *t.key_of(t.group_of(*v).unwrap()).unwrap())
            .collect();
        let with_members = t
            .groups()
            .into_iter()
            .filter(|g| !t.members(*g).is_empty())
            .count();
        assert_eq!(with_members, keys.len());
        // Keys are unique across live groups.
        let all_keys: HashSet<u8> = t.groups().iter().map(|g| *t.key_of(*g).unwrap()).collect();
        assert_eq!(all_keys.len(), t.groups().len());
        // No empty group outlives its grace period once expire has run.
        for g in t.groups() {
            let unused = t.members(g).is_empty() && t.incoming(g).is_empty();
            if unused {
                let since = t.groups[&g]
                    .empty_since
                    .expect("an unused group records when it emptied");
                assert!(
                    now.saturating_sub(since) < GRACE,
                    "{g:?} empty since {since:?} at {now:?}"
                );
            }
        }
    }

    #[test]
    fn the_most_watched_render_first_and_equals_take_turns() {
        let mut firsts = BTreeMap::new();
        for frame in 0..12 {
            let mut watched = [
                (GroupId(0), 2),
                (GroupId(3), 5),
                (GroupId(1), 2),
                (GroupId(2), 2),
            ];
            render_order(&mut watched, frame);
            assert_eq!(watched[0], (GroupId(3), 5), "most viewers first");
            *firsts.entry(watched[1].0).or_insert(0) += 1;
        }
        // Over 12 frames each of the three equally watched groups leads them 4 times.
        assert_eq!(firsts.values().copied().collect::<Vec<_>>(), [4, 4, 4]);
    }

    proptest! {
        #[test]
        fn grouping_invariants_hold_over_random_operations(ops in proptest::collection::vec(op(), 1..120)) {
            let mut t = GroupTable::new(GRACE);
            let mut present = HashSet::new();
            let mut now = Duration::ZERO;
            for op in ops {
                match op {
                    Op::Join(v, k) => {
                        let joined = t.join(ViewerId(v), k).is_ok();
                        prop_assert_eq!(joined, present.insert(ViewerId(v)));
                    }
                    Op::Leave(v) => {
                        let left = t.leave(ViewerId(v), now).is_ok();
                        prop_assert_eq!(left, present.remove(&ViewerId(v)));
                    }
                    Op::Request(v, k) => {
                        let r = t.request_key(ViewerId(v), k, now);
                        prop_assert_eq!(r.is_ok(), present.contains(&ViewerId(v)));
                        if let Ok(KeyChange::Pending { to, .. }) = r {
                            prop_assert_eq!(t.key_of(to), Some(&k));
                        }
                    }
                    Op::Keyframe(g) => {
                        let waiting = t.incoming(GroupId(g));
                        let moves = t.on_keyframe(GroupId(g), now);
                        prop_assert_eq!(moves.iter().map(|m| m.viewer).collect::<Vec<_>>(), waiting);
                        for m in moves {
                            prop_assert_eq!(t.group_of(m.viewer), Some(GroupId(g)));
                        }
                    }
                    Op::Expire => {}
                    Op::Wait(d) => now += Duration::from_millis(d),
                }
                // The frame path runs expire every frame; check after it as it would.
                t.expire(now);
                check(&t, &present, now);
            }
        }
    }
}
