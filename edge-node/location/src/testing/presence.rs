//! Which zonal-presence notifications a UE move causes (MEC 013 V2.2.1, zonal traffic): pure, so
//! the rules are tested without sockets or clocks.

use std::time::SystemTime;

use crate::model::{
    Link, TimeStamp, UserEventType, ZonalPresenceNotification, ZonalPresenceNotificationBody,
    ZonalTrafficSubscription, SUBSCRIPTION_LINK_REL,
};

/// Where a UE is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attachment<'a> {
    pub zone_id: &'a str,
    pub access_point_id: &'a str,
}

/// The (zone, event) pairs a move from `previous` to `next` causes: leaving the old zone and
/// entering the new one, or transferring between access points of the same zone.
pub(crate) fn presence_events<'a>(
    previous: Option<&Attachment<'a>>,
    next: &Attachment<'a>,
) -> Vec<(&'a str, UserEventType)> {
    match previous {
        None => vec![(next.zone_id, UserEventType::Entering)],
        Some(previous) if previous.zone_id != next.zone_id => vec![
            (previous.zone_id, UserEventType::Leaving),
            (next.zone_id, UserEventType::Entering),
        ],
        Some(previous) if previous.access_point_id != next.access_point_id => {
            vec![(next.zone_id, UserEventType::Transferring)]
        }
        Some(_) => Vec::new(),
    }
}

/// One notification to deliver: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub notify_url: String,
    pub body: ZonalPresenceNotificationBody,
}

/// The notifications every subscription wants for these events, in subscription order.
pub(crate) fn notifications_for(
    events: &[(&str, UserEventType)],
    subscriptions: &[ZonalTrafficSubscription],
    address: &str,
    previous_access_point_id: Option<&str>,
    current_access_point_id: &str,
    now: SystemTime,
) -> Vec<Outgoing> {
    let mut outgoing = Vec::new();
    for (zone_id, event) in events {
        for subscription in subscriptions {
            if subscription.zone_id != *zone_id || !subscription.wants(*event) {
                continue;
            }
            let link = subscription
                .resource_url
                .iter()
                .map(|href| Link {
                    rel: SUBSCRIPTION_LINK_REL.to_owned(),
                    href: href.clone(),
                })
                .collect();
            outgoing.push(Outgoing {
                notify_url: subscription.callback_reference.notify_url.clone(),
                body: ZonalPresenceNotificationBody {
                    zonal_presence_notification: ZonalPresenceNotification {
                        zone_id: (*zone_id).to_owned(),
                        address: address.to_owned(),
                        user_event_type: *event,
                        current_access_point_id: current_access_point_id.to_owned(),
                        previous_access_point_id: previous_access_point_id.map(str::to_owned),
                        timestamp: TimeStamp::from_system_time(now),
                        interest_realm: None,
                        callback_data: subscription.callback_reference.callback_data.clone(),
                        link,
                    },
                },
            });
        }
    }
    outgoing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CallbackReference;
    use std::time::{Duration, UNIX_EPOCH};

    fn at<'a>(zone_id: &'a str, access_point_id: &'a str) -> Attachment<'a> {
        Attachment {
            zone_id,
            access_point_id,
        }
    }

    fn subscription(
        zone: &str,
        url: &str,
        criteria: Option<Vec<UserEventType>>,
    ) -> ZonalTrafficSubscription {
        ZonalTrafficSubscription {
            callback_reference: CallbackReference {
                notify_url: url.into(),
                callback_data: Some(format!("data-{url}")),
                notification_format: None,
            },
            zone_id: zone.into(),
            client_correlator: None,
            duration: None,
            interest_realm: None,
            user_event_criteria: criteria,
            resource_url: Some(format!("{url}/sub")),
        }
    }

    #[test]
    fn first_sighting_enters() {
        assert_eq!(
            presence_events(None, &at("mall", "ap1")),
            vec![("mall", UserEventType::Entering)]
        );
    }

    #[test]
    fn zone_change_leaves_then_enters() {
        assert_eq!(
            presence_events(Some(&at("street", "ap9")), &at("mall", "ap1")),
            vec![
                ("street", UserEventType::Leaving),
                ("mall", UserEventType::Entering)
            ]
        );
    }

    #[test]
    fn access_point_change_in_a_zone_transfers_and_standing_still_is_silent() {
        assert_eq!(
            presence_events(Some(&at("mall", "ap1")), &at("mall", "ap2")),
            vec![("mall", UserEventType::Transferring)]
        );
        assert!(presence_events(Some(&at("mall", "ap1")), &at("mall", "ap1")).is_empty());
    }

    #[test]
    fn only_matching_zone_and_criteria_are_notified() {
        let subscriptions = vec![
            subscription("mall", "http://a", None),
            subscription("street", "http://b", Some(vec![UserEventType::Entering])),
            subscription("street", "http://c", Some(vec![UserEventType::Leaving])),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let events = presence_events(Some(&at("street", "ap9")), &at("mall", "ap1"));
        let outgoing = notifications_for(
            &events,
            &subscriptions,
            "acr:10.0.0.1",
            Some("ap9"),
            "ap1",
            now,
        );
        let summary: Vec<_> = outgoing
            .iter()
            .map(|o| {
                let n = &o.body.zonal_presence_notification;
                (o.notify_url.as_str(), n.zone_id.as_str(), n.user_event_type)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("http://c", "street", UserEventType::Leaving),
                ("http://a", "mall", UserEventType::Entering),
            ]
        );
        let first = &outgoing[0].body.zonal_presence_notification;
        assert_eq!(first.previous_access_point_id.as_deref(), Some("ap9"));
        assert_eq!(first.current_access_point_id, "ap1");
        assert_eq!(first.callback_data.as_deref(), Some("data-http://c"));
        assert_eq!(first.link[0].href, "http://c/sub");
        assert_eq!(first.timestamp.seconds, 1_700_000_000);
    }
}
